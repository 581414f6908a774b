"""ruamel.yaml round-trip helpers for editing a hand-written YAML file in place: comment lines stay
where a reader expects them and untouched lines keep their indentation."""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

__all__ = [
    "attach_following",
    "detach_following",
    "guess_indents",
    "is_block",
    "remove_key",
    "round_trip_yaml",
    "set_value",
    "split_head",
]


def round_trip_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # A wide line keeps long URLs and keys on the line where the file has them.
    yaml.width = 4096
    return yaml


def is_block(node: CommentedMap | CommentedSeq) -> bool:
    # Collections built here have no style yet and are written in block style.
    return node.fa.flow_style() is not True


def guess_indents(root: CommentedMap) -> tuple[int, int, int]:
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
            if isinstance(value, CommentedMap) and value and is_block(value):
                mapping = mapping or value.lc.col - column
                queue.append(value)
            elif isinstance(value, CommentedSeq) and value and is_block(value):
                offset = value.lc.col - column
                first = value[0]
                if isinstance(first, CommentedMap) and first and is_block(first):
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
        if isinstance(child, CommentedMap | CommentedSeq) and len(child) and is_block(child):
            node = child
            continue
        return node, slot, index
    return None


def detach_following(node: Any, keep_column: int) -> str:
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


def attach_following(node: Any, text: str) -> None:
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


def remove_key(item: CommentedMap, name: str) -> None:
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


def set_value(parent: CommentedMap, key: str, value: Any) -> None:
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
        attach_following(value, following)
        return
    following = detach_following(parent, parent.lc.col if parent.lc.line is not None else 0)
    parent[key] = value
    attach_following(parent, following)


def split_head(text: str) -> tuple[str, str]:
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
