"""Hermod's `allowed-clients`: read from application.yml, printed as a client section, merged in.

Hermod (Smart ID Messaging) lists the API clients it accepts in its Spring Boot `application.yml`,
under `application.allowed-clients` in recent documentation and `allowedClients` / `clientId` /
`callbackUrl` / `callbackBasicAuth` in older (SMARTID-DOMAIN §4.2). Both spellings are read, at the
top level too, and an edit keeps the file's own spelling, comments and key order: it is a
hand-edited vendor file. A client authenticates with `X-Api-Key: base64(client-id:key)`, where
`key` is 64 hex characters (§4.3).
"""

from __future__ import annotations

import base64
import io
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import ComposerError
from ruamel.yaml.error import CommentMark, MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.tokens import CommentToken

from smartid.masking import Secret

__all__ = [
    "HermodClient",
    "HermodConfigError",
    "client_section",
    "generate_key",
    "merge_client",
    "parse_clients",
]

Style = Literal["kebab", "camel"]

# field -> (kebab-case key, camelCase key)
_NAMES: dict[str, tuple[str, str]] = {
    "client_id": ("client-id", "clientId"),
    "key": ("key", "key"),
    "callback_url": ("callback-url", "callbackUrl"),
    "callback_basic_auth": ("callback-basic-auth", "callbackBasicAuth"),
    "group": ("group", "group"),
}
_LIST = ("allowed-clients", "allowedClients")
_KEY = re.compile(r"[0-9A-Fa-f]{64}\Z")
# ':' would make base64(client-id:key) ambiguous; whitespace cannot survive a header.
_CLIENT_ID = re.compile(r"[^\s:]{1,128}\Z")
_URL = re.compile(r"https?://\S+\Z")
_CAMEL = re.compile(r"[a-z][a-z0-9]*[A-Z]")
_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value')


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
        where = f"{source} line {line}, column {column}" if line is not None else source
        super().__init__(f"{where}: {problem}")


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
            raise HermodConfigError("HermodClient", f"{who}: {_NAMES[field][0]} {problem}")

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


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # A wide line keeps long URLs and keys on the line where the file has them.
    yaml.width = 4096
    return yaml


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


def _load(yaml: YAML, text: str, source: str) -> Any:
    try:
        return yaml.load(text)
    except YAMLError as exc:
        raise _syntax_error(source, text, exc) from None


def _at(source: str, problem: str, position: Any) -> HermodConfigError:
    line, column = position
    return HermodConfigError(source, problem, line + 1, column + 1)


def _list_key(mapping: CommentedMap, source: str) -> str | None:
    present = [name for name in _LIST if name in mapping]
    if len(present) > 1:
        problem = "both allowed-clients and allowedClients are set"
        raise _at(source, problem, mapping.lc.key("allowedClients"))
    return present[0] if present else None


def _locate(root: Any, source: str) -> tuple[CommentedMap, str] | None:
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


def _field(item: CommentedMap, field: str, source: str) -> tuple[str | None, Any]:
    """(the key the file uses, its value) for one client field."""
    present = [name for name in dict.fromkeys(_NAMES[field]) if name in item]
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
    found = {field: _field(item, field, source) for field in _NAMES}
    values = {field: value for field, (_, value) in found.items()}
    label = _label(item, index)
    for field in ("client_id", "key"):
        if values[field] is None:
            missing = f"{label}: {_NAMES[field][0]} is missing"
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
    located = _locate(root, source)
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
            raise _at(source, problem, item.lc.value(_field(item, "client_id", source)[0]))
        first[client.client_id] = item.lc.line + 1
        clients.append(client)
    return clients


def parse_clients(text: str, source: str = "application.yml") -> list[HermodClient]:
    """The allowed clients of an application.yml, from `application.allowed-clients` if there,
    else a top-level list; kebab-case and camelCase keys alike. Raises HermodConfigError."""
    return _clients(_load(_yaml(), text, source), source)


# --- writing ----------------------------------------------------------------------------------


def _scalar(value: str) -> str:
    """`value` as a YAML scalar, quoted only where YAML would read it as something else."""
    stream = io.StringIO()
    _yaml().dump([value], stream)
    return stream.getvalue()[2:].rstrip("\n")


def _values(client: HermodClient) -> dict[str, str | None]:
    basic = client.callback_basic_auth
    return {
        "client_id": client.client_id,
        "key": client.key.reveal(),
        "callback_url": client.callback_url,
        "callback_basic_auth": basic.reveal() if basic is not None else None,
        "group": client.group,
    }


def _name(field: str, style: Style) -> str:
    return _NAMES[field][0 if style == "kebab" else 1]


def _block(node: CommentedMap | CommentedSeq) -> bool:
    # Collections built here have no style yet and are written in block style.
    return node.fa.flow_style() is not True


_COMMENTS = {
    "callback_url": "callback base URL for this client: Hermod POSTs to <url>/<command>",
    "callback_basic_auth": "optional basic-auth credentials Hermod sends on callbacks",
    "group": "optional: the same group for clients that share users (IDM and Digital Access)",
}


def client_section(client: HermodClient, style: Style = "kebab") -> str:
    """The client as Hermod's generateclient page prints it, to paste under allowed-clients."""
    lines = [f"# X-Api-Key: {client.api_key.reveal()}"]
    for field, value in _values(client).items():
        if value is None:
            continue
        if field in _COMMENTS:
            lines.append(f"  # {_COMMENTS[field]}")
        lead = "- " if field == "client_id" else "  "
        lines.append(f"{lead}{_name(field, style)}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def _style_of(root: CommentedMap, list_key: str | None) -> Style:
    """camel when the file spells its keys that way; a list key that exists decides alone."""
    if list_key is not None:
        return "camel" if list_key == "allowedClients" else "kebab"
    camel = kebab = 0
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, CommentedMap):
            for key, value in node.items():
                camel += isinstance(key, str) and bool(_CAMEL.match(key))
                kebab += isinstance(key, str) and "-" in key
                stack.append(value)
        elif isinstance(node, CommentedSeq):
            stack.extend(node)
    return "camel" if camel > kebab else "kebab"


def _indents(root: CommentedMap) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel's `indent()` takes them, guessed from the first
    nested mapping and block sequence of the file, so that untouched lines are written back as
    they were."""
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    queue: list[CommentedMap] = [root]
    while queue and (mapping is None or sequence is None):
        node = queue.pop(0)
        for key, value in node.items():
            column = node.lc.key(key)[1]
            if isinstance(value, CommentedMap) and value and _block(value):
                mapping = mapping or value.lc.col - column
                queue.append(value)
            elif isinstance(value, CommentedSeq) and value and _block(value):
                offset = value.lc.col - column
                first = value[0]
                if isinstance(first, CommentedMap) and first and _block(first):
                    sequence = sequence or (first.lc.col - column, offset)
                    queue.append(first)
                else:
                    sequence = sequence or (offset + 2, offset)
    mapping = mapping if mapping and mapping > 0 else 2
    if sequence is None:
        # No list yet: the usual Spring layout, dashes indented like a nested key.
        return mapping, mapping + 2, mapping
    seq_indent, offset = sequence
    return (mapping, seq_indent, offset) if seq_indent >= offset + 2 else (mapping, 2, 0)


def _last_comment(node: Any) -> tuple[Any, Any, int] | None:
    """(comment list owner, slot key, slot index) of the comment after the last scalar of a block
    collection: ruamel keeps there every comment line that follows the collection."""
    while isinstance(node, CommentedMap | CommentedSeq) and len(node):
        if isinstance(node, CommentedMap):
            slot: Any = list(node.keys())[-1]
            child, index = node[slot], 2
        else:
            slot, child, index = len(node) - 1, node[-1], 0
        if isinstance(child, CommentedMap | CommentedSeq) and len(child) and _block(child):
            node = child
            continue
        return node, slot, index
    return None


def _detach_following(node: Any, keep_column: int) -> str:
    """Cut the comment lines that follow `node` (beyond its end-of-line comment and the lines
    indented at `keep_column` or deeper) and return them, to be attached after new content."""
    found = _last_comment(node)
    if found is None:
        return ""
    owner, slot, index = found
    entry = owner.ca.items.get(slot)
    token = entry[index] if entry and len(entry) > index else None
    if not isinstance(token, CommentToken):
        return ""
    lines = token.value.splitlines(keepends=True)
    kept = lines[:1]
    rest = lines[1:]
    while rest and rest[0].strip().startswith("#"):
        if len(rest[0]) - len(rest[0].lstrip(" ")) < keep_column:
            break
        kept.append(rest.pop(0))
    if not rest:
        return ""
    token.value = "".join(kept)
    return "".join(rest)


def _attach_following(node: Any, text: str) -> None:
    if not text:
        return
    found = _last_comment(node)
    if found is None:
        return
    owner, slot, index = found
    entry = owner.ca.items.setdefault(slot, [None, None, None, None])
    token = entry[index]
    if isinstance(token, CommentToken):
        token.value = token.value + text
    else:
        entry[index] = CommentToken("\n" + text, CommentMark(0), None)


def _new_item(client: HermodClient, style: Style) -> CommentedMap:
    item = CommentedMap()
    for field, value in _values(client).items():
        if value is not None:
            item[_name(field, style)] = value
    return item


def _update_item(item: CommentedMap, client: HermodClient, style: Style) -> None:
    """Make an existing entry describe `client`: values changed in place, missing keys added at
    its end, keys of unset fields removed."""
    for field, value in _values(client).items():
        present = next((n for n in _NAMES[field] if n in item), None)
        if value is None:
            if present is not None:
                _remove_key(item, present)
        elif present is None:
            following = _detach_following(item, item.lc.col)
            item[_name(field, style)] = value
            _attach_following(item, following)
        elif str(item[present]) != value:
            # Only a changed value is replaced, so an unchanged one keeps its quoting.
            item[present] = value


def _remove_key(item: CommentedMap, name: str) -> None:
    """Delete a key; the comment lines after it move to the key before it (its own end-of-line
    comment goes with it)."""
    keys = list(item.keys())
    entry = item.ca.items.pop(name, None)
    del item[name]
    token = entry[2] if entry else None
    if isinstance(token, CommentToken):
        following = "".join(token.value.splitlines(keepends=True)[1:])
        position = keys.index(name)
        if following and position > 0:
            previous = item.ca.items.setdefault(keys[position - 1], [None, None, None, None])
            if isinstance(previous[2], CommentToken):
                previous[2].value += following
            else:
                previous[2] = CommentToken("\n" + following, CommentMark(0), None)


def _set_value(parent: CommentedMap, key: str, value: Any) -> None:
    """Set parent[key] to a new collection; comment lines that followed the old value stay after
    the new one."""
    if key in parent:
        entry = parent.ca.items.get(key)
        token = entry[2] if entry and len(entry) > 2 else None
        following = ""
        if isinstance(token, CommentToken):
            lines = token.value.splitlines(keepends=True)
            following = "".join(lines[1:])
            token.value = "".join(lines[:1])
        parent[key] = value
        _attach_following(value, following)
        return
    following = _detach_following(parent, parent.lc.col if parent.lc.line is not None else 0)
    parent[key] = value
    _attach_following(parent, following)


def _split_head(text: str) -> tuple[str, str]:
    """(comments and directives up to an explicit `---`, the rest): ruamel drops both."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "%")):
            continue
        if stripped == "---" or stripped.startswith("--- #"):
            return "".join(lines[: index + 1]), "".join(lines[index + 1 :])
        break
    return "", text


def merge_client(text: str, client: HermodClient) -> str:
    """`text` with `client` added to allowed-clients, or its entry updated (matched by client-id),
    keeping comments, the other clients, key order and the file's key style. Idempotent."""
    source = "application.yml"
    if client in parse_clients(text, source):
        return text
    head, body = _split_head(text)
    yaml = _yaml()
    root = _load(yaml, body, source)
    if root is None:
        # Only comments (or nothing): keep them and add the list after them.
        head, root = head + body, CommentedMap()
        if head and not head.endswith("\n"):
            head += "\n"
    located = _locate(root, source)
    mapping, sequence, offset = _indents(root)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    if located is not None:
        _merge_into(located, client)
    else:
        style = _style_of(root, None)
        clients = CommentedSeq([_new_item(client, style)])
        application = root.get("application")
        if isinstance(application, CommentedMap):
            _set_value(application, _LIST[0 if style == "kebab" else 1], clients)
        elif "application" in root:
            # `application:` with nothing under it yet.
            nested = CommentedMap([(_LIST[0 if style == "kebab" else 1], clients)])
            _set_value(root, "application", nested)
        else:
            _set_value(root, _LIST[0 if style == "kebab" else 1], clients)
    stream = io.StringIO()
    yaml.dump(root, stream)
    return head + stream.getvalue()


def _merge_into(located: tuple[CommentedMap, str], client: HermodClient) -> None:
    parent, list_key = located
    seq = parent[list_key]
    style = _style_of(parent, list_key)
    if seq is None or (isinstance(seq, CommentedSeq) and not seq):
        _set_value(parent, list_key, CommentedSeq([_new_item(client, style)]))
        return
    for item in seq:
        if _field(item, "client_id", "")[1] == client.client_id:
            item_style: Style = "camel" if "clientId" in item else "kebab"
            _update_item(item, client, item_style)
            return
    first = seq[0]
    style = "camel" if isinstance(first, CommentedMap) and "clientId" in first else style
    # Comment lines at the dashes' level or left of them are about what follows the list.
    following = _detach_following(seq, seq.lc.col + 1) if _block(seq) else ""
    seq.append(_new_item(client, style))
    _attach_following(seq, following)
