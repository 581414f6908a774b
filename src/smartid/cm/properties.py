"""Java `.properties` text, read and written by the rules of java.util.Properties: '#' and '!'
comment lines, line continuations with a trailing backslash, '=', ':' or whitespace between key
and value, and backslash escapes including \\uXXXX (UTF-16 units); the writer emits ASCII only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

__all__ = ["PropertiesError", "format_properties", "parse_properties"]

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


class PropertiesError(ValueError):
    """A .properties text that does not parse; the message names a key or a property's number,
    never a value, since a value may be a password."""


def parse_properties(text: str) -> dict[str, str]:
    """The key/value pairs of a Java .properties text: '#' and '!' comments, line continuations
    with a trailing backslash, and backslash escapes including \\uXXXX. A later key replaces an
    earlier one, as in Java. PropertiesError for a malformed \\u escape."""
    properties: dict[str, str] = {}
    for number, line in enumerate(_logical_lines(text), start=1):
        raw_key, raw_value = _split_property(line)
        try:
            key = _unescape(raw_key)
        except ValueError:
            raise PropertiesError(f"the key of property {number} has a bad \\u escape") from None
        try:
            properties[key] = _unescape(raw_value)
        except ValueError:
            # The value may be the password: name the key, never show the value.
            raise PropertiesError(f"{key} has a bad \\u escape") from None
    return properties


def format_properties(properties: Mapping[str, str], *, comment: str) -> bytes:
    """`properties` as .properties bytes, one `key=value` line each in the mapping's order under
    a '# `comment`' line. The bytes are ASCII, so they mean the same to every reader."""
    if not all(" " <= char <= "~" for char in comment):
        raise ValueError("a .properties comment must be one line of printable ASCII")
    lines = [f"# {comment}"]
    lines += [f"{_escape(k, key=True)}={_escape(v, key=False)}" for k, v in properties.items()]
    return ("\n".join(lines) + "\n").encode("ascii")


def _logical_lines(text: str) -> Iterator[str]:
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:  # an odd number of backslashes continues the line
            pending += line[:-1]
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _split_property(line: str) -> tuple[str, str]:
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2  # an escaped character belongs to the key
            continue
        if char in "=:":
            return line[:index], line[index + 1 :].lstrip(" \t\f")
        if char in " \t\f":
            # "key = value": the whitespace may be followed by the real separator
            rest = line[index:].lstrip(" \t\f")
            if rest[:1] in ("=", ":"):
                rest = rest[1:].lstrip(" \t\f")
            return line[:index], rest
        index += 1
    return line, ""


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 == len(text):
            out.append(char)
            index += 1
            continue
        nxt = text[index + 1]
        if nxt == "u":
            digits = text[index + 2 : index + 6]
            if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                raise ValueError("bad \\u escape")
            out.append(chr(int(digits, 16)))
            index += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        index += 2
    # \uXXXX escapes are UTF-16 units: a character beyond the BMP came as a surrogate pair.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _escape(text: str, *, key: bool) -> str:
    """Java's escaping: what a reader would otherwise take as syntax, and non-ASCII as \\uXXXX
    (Java reads .properties as ISO-8859-1, so only ASCII means the same to every reader)."""
    out: list[str] = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char in "\t\n\r\f":
            out.append("\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}[char])
        elif (key and char in "=: #!") or (char == " " and index == 0):
            out.append("\\" + char)
        elif not " " <= char <= "~":
            out.append("".join(f"\\u{unit:04x}" for unit in _utf16_units(char)))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
