"""Hermod's `allowed-clients`: read from application.yml, printed as a client section, merged in.

Hermod (Smart ID Messaging) lists the API clients it accepts in its Spring Boot `application.yml`,
under `application.allowed-clients` in recent documentation and `allowedClients` / `clientId` /
`callbackUrl` / `callbackBasicAuth` in older (docs/vendor.md). Both spellings are read, at the
top level too, and an edit keeps the file's own spelling, comments and key order: it is a
hand-edited vendor file. A client authenticates with `X-Api-Key: base64(client-id:key)`, where
`key` is 64 hex characters (docs/vendor.md).

The client model and the reading live in `smartid.hermod.clients`, the comment-keeping ruamel
helpers in `smartid.hermod.yaml`; this module writes.
"""

from __future__ import annotations

import io
import re
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from smartid.hermod.clients import (
    FIELD_KEYS,
    LIST_KEYS,
    HermodClient,
    HermodConfigError,
    client_field,
    generate_key,
    load_document,
    locate_clients,
    parse_clients,
)
from smartid.hermod.yaml import (
    attach_following,
    detach_following,
    guess_indents,
    is_block,
    remove_key,
    round_trip_yaml,
    set_value,
    split_head,
)

__all__ = [
    "HermodClient",
    "HermodConfigError",
    "client_section",
    "generate_key",
    "merge_client",
    "parse_clients",
]

Style = Literal["kebab", "camel"]

_CAMEL = re.compile(r"[a-z][a-z0-9]*[A-Z]")


def _scalar(value: str) -> str:
    """`value` as a YAML scalar, quoted only where YAML would read it as something else."""
    stream = io.StringIO()
    round_trip_yaml().dump([value], stream)
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
    return FIELD_KEYS[field][0 if style == "kebab" else 1]


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
        present = next((n for n in FIELD_KEYS[field] if n in item), None)
        if value is None:
            if present is not None:
                remove_key(item, present)
        elif present is None:
            following = detach_following(item, item.lc.col)
            item[_name(field, style)] = value
            attach_following(item, following)
        elif str(item[present]) != value:
            # Only a changed value is replaced, so an unchanged one keeps its quoting.
            item[present] = value


def merge_client(text: str, client: HermodClient, source: str = "application.yml") -> str:
    """`text` with `client` added to allowed-clients, or its entry updated (matched by client-id),
    keeping comments, the other clients, key order and the file's key style. Idempotent.
    `source` names the file in a HermodConfigError."""
    if client in parse_clients(text, source):
        return text
    head, body = split_head(text)
    yaml = round_trip_yaml()
    root = load_document(yaml, body, source)
    if root is None:
        # Only comments (or nothing): keep them and add the list after them.
        head, root = head + body, CommentedMap()
        if head and not head.endswith("\n"):
            head += "\n"
    located = locate_clients(root, source)
    mapping, sequence, offset = guess_indents(root)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    if located is not None:
        _merge_into(located, client)
    else:
        style = _style_of(root, None)
        clients = CommentedSeq([_new_item(client, style)])
        application = root.get("application")
        if isinstance(application, CommentedMap):
            set_value(application, LIST_KEYS[0 if style == "kebab" else 1], clients)
        elif "application" in root:
            # `application:` with nothing under it yet.
            nested = CommentedMap([(LIST_KEYS[0 if style == "kebab" else 1], clients)])
            set_value(root, "application", nested)
        else:
            set_value(root, LIST_KEYS[0 if style == "kebab" else 1], clients)
    stream = io.StringIO()
    yaml.dump(root, stream)
    return head + stream.getvalue()


def _merge_into(located: tuple[CommentedMap, str], client: HermodClient) -> None:
    parent, list_key = located
    seq = parent[list_key]
    style = _style_of(parent, list_key)
    if seq is None or (isinstance(seq, CommentedSeq) and not seq):
        set_value(parent, list_key, CommentedSeq([_new_item(client, style)]))
        return
    for item in seq:
        if client_field(item, "client_id", "")[1] == client.client_id:
            item_style: Style = "camel" if "clientId" in item else "kebab"
            _update_item(item, client, item_style)
            return
    first = seq[0]
    style = "camel" if isinstance(first, CommentedMap) and "clientId" in first else style
    # Comment lines at the dashes' level or left of them are about what follows the list.
    following = detach_following(seq, seq.lc.col + 1) if is_block(seq) else ""
    seq.append(_new_item(client, style))
    attach_following(seq, following)
