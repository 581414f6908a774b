"""Java `.properties` text, read and written by the `javaproperties` package, which follows
java.util.Properties: '#' and '!' comments, line continuations, '=', ':' or whitespace between key
and value, and backslash escapes including \\uXXXX; the writer emits ASCII only.
"""

from __future__ import annotations

from collections.abc import Mapping

import javaproperties
from javaproperties import InvalidUEscapeError, KeyValue

__all__ = ["PropertiesError", "format_properties", "parse_properties"]


class PropertiesError(ValueError):
    """A .properties text that does not parse; the message names a property's number and the key
    before it, never a value, since a value may be a password."""


def parse_properties(text: str) -> dict[str, str]:
    """The key/value pairs of a Java .properties text. A later key replaces an earlier one, as in
    Java. PropertiesError for a malformed \\u escape."""
    properties: dict[str, str] = {}
    count, previous = 0, None
    try:
        for element in javaproperties.parse(text):
            if isinstance(element, KeyValue):
                count += 1
                properties[element.key] = element.value
                previous = element.key
    except InvalidUEscapeError:
        # The library's message quotes the escape, which may be part of a password.
        after = f" (the one after {previous})" if previous is not None else ""
        raise PropertiesError(f"property {count + 1}{after} has a bad \\u escape") from None
    return properties


def format_properties(properties: Mapping[str, str], *, comment: str) -> bytes:
    """`properties` as .properties bytes, one `key=value` line each in the mapping's order under
    a '# `comment`' line. The bytes are ASCII, so they mean the same to every reader."""
    if not all(" " <= char <= "~" for char in comment):
        raise ValueError("a .properties comment must be one line of printable ASCII")
    body = javaproperties.dumps(properties, timestamp=False, sort_keys=False)
    return f"# {comment}\n{body}".encode("ascii")
