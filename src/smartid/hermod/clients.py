"""Hermod's allowed clients: the validated `HermodClient` and how an application.yml's
`allowed-clients` (kebab-case or camelCase) is read into them."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    ScalarEvent,
)
from ruamel.yaml.reader import ReaderError

from smartid.hermod.yaml import round_trip_yaml
from smartid.inputs import MAX_TEXT_BYTES, InputRefused, read_text
from smartid.masking import Secret

__all__ = [
    "FIELD_KEYS",
    "LIST_KEYS",
    "HermodClient",
    "HermodConfigError",
    "client_field",
    "generate_key",
    "load_document",
    "locate_clients",
    "parse_clients",
    "read_config",
]

# field -> (kebab-case key, camelCase key)
FIELD_KEYS: dict[str, tuple[str, str]] = {
    "client_id": ("client-id", "clientId"),
    "key": ("key", "key"),
    "callback_url": ("callback-url", "callbackUrl"),
    "callback_basic_auth": ("callback-basic-auth", "callbackBasicAuth"),
    "group": ("group", "group"),
}
LIST_KEYS = ("allowed-clients", "allowedClients")
_KEY = re.compile(r"[0-9A-Fa-f]{64}\Z")
# ':' would make base64(client-id:key) ambiguous; whitespace cannot survive a header.
_CLIENT_ID = re.compile(r"[^\s:]{1,128}\Z")
_URL = re.compile(r"https?://\S+\Z")
_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value')
# Bounds on what a document may make the suite build or walk. Spring Boot files use an anchor
# for a shared block now and then; a handful of aliases is plenty. Counting every node as the
# aliases expand it bounds each walk over the tree (an alias bomb is small as text and as
# ruamel's tree, whose aliases share one object, but exponential to walk).
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 64


class HermodConfigError(ValueError):
    """An application.yml (or a client) Hermod would not accept; the message is one sentence that
    names the client and key, never a key or password value."""

    def __init__(
        self, source: str, problem: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.source = source
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(f"{self.where}: {problem}")

    @property
    def where(self) -> str:
        """The file and, if known, the line and column."""
        if self.line is None:
            return self.source
        return f"{self.source} line {self.line}, column {self.column}"


@dataclass(frozen=True)
class HermodClient:
    """One entry of `allowed-clients`, validated when built."""

    client_id: str
    key: Secret
    callback_url: str | None = None
    callback_basic_auth: Secret | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        basic = self.callback_basic_auth.reveal() if self.callback_basic_auth else None
        found = _problem(self.client_id, self.key.reveal(), self.callback_url, basic, self.group)
        if found is not None:
            field, problem = found
            who = f"client '{self.client_id}'" if field != "client_id" else "client"
            raise HermodConfigError("HermodClient", f"{who}: {FIELD_KEYS[field][0]} {problem}")

    @property
    def api_key(self) -> Secret:
        """base64(client-id:key): the X-Api-Key header and IDM's "authentication token"."""
        raw = f"{self.client_id}:{self.key.reveal()}".encode()
        return Secret(
            base64.b64encode(raw).decode(), f"Hermod API key of client '{self.client_id}'"
        )

    @property
    def callback_user(self) -> str | None:
        if self.callback_basic_auth is None:
            return None
        return self.callback_basic_auth.reveal().partition(":")[0]


def generate_key() -> str:
    """A fresh client key as Hermod's generateclient page makes one: 64 hex characters."""
    return secrets.token_hex(32)


def _problem(
    client_id: object, key: object, url: object, basic: object, group: object
) -> tuple[str, str] | None:
    """The first (field, problem) that makes a client unusable, or None."""
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        return "client_id", "must be 1 to 128 characters without spaces or ':'"
    if not isinstance(key, str) or not _KEY.match(key):
        return "key", "is not 64 hexadecimal characters"
    if url is not None and (not isinstance(url, str) or not _URL.match(url)):
        return "callback_url", "is not an http(s) URL"
    if basic is not None and (not isinstance(basic, str) or ":" not in basic or "\n" in basic):
        return "callback_basic_auth", "is not user:password"
    if group is not None and (not isinstance(group, str) or not group.strip() or "\n" in group):
        return "group", "is not a one-line text"
    return None


# --- reading ----------------------------------------------------------------------------------


def _syntax_error(source: str, text: str, exc: YAMLError) -> HermodConfigError:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        if isinstance(exc, ComposerError) and "another document" in problem:
            problem = "a second YAML document starts here; Hermod reads one"
        duplicate = _DUPLICATE.match(problem)
        if duplicate:
            # ruamel quotes both values; one of them may be a key.
            problem = f'found duplicate key "{duplicate.group(1)}"'
        if mark is None:
            return HermodConfigError(source, problem)
        return HermodConfigError(source, problem, mark.line + 1, mark.column + 1)
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        return HermodConfigError(source, f"unacceptable character: {exc.reason}", line, column)
    return HermodConfigError(source, "not valid YAML")


def read_config(path: Path) -> str:
    """The text of the application.yml at `path`, within the size bound and UTF-8; a bad file is
    a HermodConfigError naming it (and the byte offset of a bad byte). OSError as open() raises
    it."""
    try:
        return read_text(path)
    except InputRefused as exc:
        raise HermodConfigError(str(path), exc.problem) from None


def load_document(yaml: YAML, text: str, source: str) -> Any:
    """The round-trip tree of `text`; a syntax error or a document beyond the bounds (size,
    aliases, expanded nodes, depth) becomes a HermodConfigError with its place."""
    if len(text) > MAX_TEXT_BYTES:
        raise HermodConfigError(source, f"is larger than {MAX_TEXT_BYTES} characters")
    _check_flow_depth(text, source)
    try:
        _check_events(yaml.parse(text), source)
        return yaml.load(text)
    except YAMLError as exc:
        raise _syntax_error(source, text, exc) from None
    except RecursionError:  # a backstop: the depth bound stops nesting long before
        raise HermodConfigError(source, f"nests deeper than {MAX_DEPTH} levels") from None


# Brackets, and what hides them from the parser: quoted scalars and comments.
_FLOW_TOKEN = re.compile(r"""[\[\]{}]|"(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|#[^\n]*""")


def _check_flow_depth(text: str, source: str) -> None:
    """A fast refusal of deeply nested flow collections (`[[[[...`), which ruamel's scanner
    takes time to see through (its possible simple keys are kept per flow level). A bracket
    inside a plain scalar may count where YAML would not; a stray quote may hide some: the
    events' depth check below stays the authority, this only makes the usual attack cheap."""
    depth = 0
    for match in _FLOW_TOKEN.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise HermodConfigError(
                    source, f"nests deeper than {MAX_DEPTH} levels", line, column
                )
        elif bracket in "]}":
            depth = max(depth - 1, 0)


def _check_events(events: Any, source: str) -> None:
    """Refuse, from the parser's events and before anything is built, a document that nests
    deeper than MAX_DEPTH, uses more than MAX_ALIASES aliases or expands to more than
    MAX_EXPANDED_NODES nodes."""
    sizes: dict[str, int] = {}  # anchor -> nodes it expands to
    open_collections: list[tuple[str | None, int]] = []  # (anchor, nodes before it)
    expanded = aliases = 0
    for event in events:
        assert isinstance(event, Event)
        if isinstance(event, CollectionStartEvent):
            open_collections.append((event.anchor, expanded))
            expanded += 1
            if len(open_collections) > MAX_DEPTH:
                raise _marked(source, f"nests deeper than {MAX_DEPTH} levels", event)
        elif isinstance(event, CollectionEndEvent):
            anchor, before = open_collections.pop()
            if anchor is not None:
                sizes[anchor] = expanded - before
        elif isinstance(event, ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _marked(source, f"uses more than {MAX_ALIASES} aliases", event)
            expanded += sizes.get(event.anchor, 1)
        if expanded > MAX_EXPANDED_NODES:
            problem = f"expands to more than {MAX_EXPANDED_NODES} nodes (aliases of aliases?)"
            raise _marked(source, problem, event)


def _marked(source: str, problem: str, event: Event) -> HermodConfigError:
    mark = event.start_mark
    if mark is None:
        return HermodConfigError(source, problem)
    return HermodConfigError(source, problem, mark.line + 1, mark.column + 1)


def _at(source: str, problem: str, position: Any) -> HermodConfigError:
    line, column = position
    return HermodConfigError(source, problem, line + 1, column + 1)


def _list_key(mapping: CommentedMap, source: str) -> str | None:
    present = [name for name in LIST_KEYS if name in mapping]
    if len(present) > 1:
        problem = "both allowed-clients and allowedClients are set"
        raise _at(source, problem, mapping.lc.key("allowedClients"))
    return present[0] if present else None


def locate_clients(root: Any, source: str) -> tuple[CommentedMap, str] | None:
    """The mapping that holds the clients list and the list's key, or None."""
    if root is None:
        return None
    if not isinstance(root, CommentedMap):
        raise HermodConfigError(source, "the top level is not a mapping", 1, 1)
    application = root.get("application")
    if isinstance(application, CommentedMap):
        key = _list_key(application, source)
        if key is not None:
            return application, key
    elif application is not None:
        raise _at(source, "application is not a mapping", root.lc.value("application"))
    key = _list_key(root, source)
    return (root, key) if key is not None else None


def client_field(item: CommentedMap, field: str, source: str) -> tuple[str | None, Any]:
    """(the key the file uses, its value) for one client field."""
    present = [name for name in dict.fromkeys(FIELD_KEYS[field]) if name in item]
    if len(present) > 1:
        problem = f"{_label(item)}: {' and '.join(present)} are both set"
        raise _at(source, problem, item.lc.key(present[1]))
    if not present:
        return None, None
    value = item[present[0]]
    return present[0], str(value) if isinstance(value, str) else value


def _label(item: CommentedMap, index: int | None = None) -> str:
    client_id = item.get("client-id", item.get("clientId"))
    if isinstance(client_id, str) and client_id:
        return f"client '{client_id}'"
    return f"client #{index + 1}" if index is not None else "a client"


def _client(item: Any, index: int, seq: CommentedSeq, source: str) -> HermodClient:
    if not isinstance(item, CommentedMap):
        raise _at(source, f"client #{index + 1} is not a mapping", seq.lc.item(index))
    found = {field: client_field(item, field, source) for field in FIELD_KEYS}
    values = {field: value for field, (_, value) in found.items()}
    label = _label(item, index)
    for field in ("client_id", "key"):
        if values[field] is None:
            missing = f"{label}: {FIELD_KEYS[field][0]} is missing"
            raise _at(source, missing, (item.lc.line, item.lc.col))
    problem = _problem(*values.values())
    if problem is not None:
        field, what = problem
        name = found[field][0]
        where = item.lc.value(name) if name is not None else (item.lc.line, item.lc.col)
        raise _at(source, f"{label}: {name} {what}", where)
    origin = f"{source}: client '{values['client_id']}'"
    basic = values["callback_basic_auth"]
    return HermodClient(
        client_id=values["client_id"],
        key=Secret(values["key"], f"{origin} key"),
        callback_url=values["callback_url"],
        callback_basic_auth=None if basic is None else Secret(basic, f"{origin} basic auth"),
        group=values["group"],
    )


def _clients(root: Any, source: str) -> list[HermodClient]:
    located = locate_clients(root, source)
    if located is None:
        return []
    parent, list_key = located
    seq = parent[list_key]
    if seq is None:
        return []
    if not isinstance(seq, CommentedSeq):
        raise _at(source, f"{list_key} is not a list", parent.lc.value(list_key))
    clients: list[HermodClient] = []
    first: dict[str, int] = {}
    for index, item in enumerate(seq):
        client = _client(item, index, seq, source)
        if client.client_id in first:
            earlier = first[client.client_id]
            problem = f"client '{client.client_id}' is listed twice (first at line {earlier})"
            raise _at(source, problem, item.lc.value(client_field(item, "client_id", source)[0]))
        first[client.client_id] = item.lc.line + 1
        clients.append(client)
    return clients


def parse_clients(text: str, source: str = "application.yml") -> list[HermodClient]:
    """The allowed clients of an application.yml, from `application.allowed-clients` if there,
    else a top-level list; kebab-case and camelCase keys alike. Raises HermodConfigError."""
    return _clients(load_document(round_trip_yaml(), text, source), source)
