"""Bounded reading of files the suite is given: the site file, secret files, Hermod's
application.yml. Each is read up to a size bound, decoded as UTF-8 (a bad byte is named by its
offset), and parsed with a nesting bound; every refusal is an `InputRefused` whose message is
the problem only, so that the caller, the one place that knows what the file is, names it.

Depth: tomllib and json have no depth option. Both are parsed with the interpreter's recursion
limit as the backstop and the result is measured afterwards without recursion. That is sound on
Python 3.11: tomllib is pure Python, whose calls no longer grow the C stack, and json's C scanner
enters every nesting level through Py_EnterRecursiveCall, so each raises a clean RecursionError
(translated here) before anything deeper than that limit is built; the size bound bounds the
time spent getting there. The measured depth then enforces the suite's own, much smaller bound
before pydantic, repr or any other recursive code walks the value. A pre-scan counting brackets
outside strings would need a second lexer for TOML's four kinds of strings, comments and table
headers, and a disagreement between the two would let a document through unmeasured.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "MAX_DEPTH",
    "MAX_TEXT_BYTES",
    "InputRefused",
    "decode_utf8",
    "deeper_than",
    "load_json",
    "load_toml",
    "read_bounded",
    "read_text",
]

# A site file, a secret file or an application.yml of a real deployment is a few kB.
MAX_TEXT_BYTES = 1024 * 1024
# The site file nests four levels (a table, an array of tables, a secret reference); a secret
# file one or two.
MAX_DEPTH = 32


class InputRefused(ValueError):
    """A file's content cannot be used; the message is the problem as a predicate of the file
    ("is not UTF-8 text: ..."), without its name (the caller names it); only the TOML parser's
    own message quotes any of the content."""

    def __init__(self, problem: str, *, key: str | None = None) -> None:
        self.problem = problem
        self.key = key
        super().__init__(problem)


def read_bounded(path: Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The file's bytes; InputRefused if it holds more than `limit`, found from its size before
    anything is read, and never reading more than one byte past the size it had then (a file
    that grows meanwhile is refused too). OSError as open() raises it."""
    with path.open("rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            return _read_stream(handle, limit)  # a pipe or device says no size
        size = status.st_size
        if size > limit:
            raise InputRefused(f"is {size} bytes, more than {limit}")
        # read(n) allocates n bytes first: asking for the size, not the limit, keeps a small
        # file's cost small.
        data = handle.read(size + 1)
    if len(data) > size:
        raise InputRefused(f"grew while it was read, to more than {size} bytes")
    return data


def _read_stream(handle: BinaryIO, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := handle.read(min(64 * 1024, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise InputRefused(f"is more than {limit} bytes")
    return b"".join(chunks)


def decode_utf8(data: bytes) -> str:
    """`data` as UTF-8 text; InputRefused naming the offset of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputRefused(
            f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason})"
        ) from None


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The file as UTF-8 text, within `limit` bytes."""
    return decode_utf8(read_bounded(path, limit))


def load_toml(text: str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The TOML document; InputRefused if it is not TOML or nests deeper than `max_depth`."""
    _check_size(text)
    try:
        document = tomllib.loads(text)
    except RecursionError:
        raise InputRefused(f"nests arrays or tables deeper than {max_depth} levels") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputRefused(f"is not valid TOML: {exc}") from None
    _check_depth(document, max_depth)
    return document


def load_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document; InputRefused if it is not JSON or nests deeper than `max_depth`.
    The parser's message is left out but for the place: it may quote the content."""
    _check_size(text)
    try:
        document = json.loads(text)
    except RecursionError:
        raise InputRefused(f"nests arrays or objects deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise InputRefused(f"is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    _check_depth(document, max_depth)
    return document


def deeper_than(document: object, max_depth: int) -> bool:
    """Whether a parsed JSON, TOML or YAML value nests containers more than `max_depth` levels
    (measured without recursion): the one depth bound of every parser of outside input."""
    try:
        _check_depth(document, max_depth)
    except InputRefused:
        return True
    return False


def _check_size(text: str) -> None:
    if len(text) > MAX_TEXT_BYTES:
        raise InputRefused(f"is larger than {MAX_TEXT_BYTES} characters")


def _check_depth(document: object, max_depth: int) -> None:
    """Refuse a value nested deeper than `max_depth`, naming the dotted key (list indices left
    out) that holds the too deep value."""
    stack: list[tuple[object, int, str]] = [(document, 0, "")]
    while stack:
        value, depth, key = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth >= max_depth:
            raise InputRefused(f"nests deeper than {max_depth} levels", key=key or None)
        if isinstance(value, list):
            stack.extend((child, depth + 1, key) for child in value)
            continue
        for name, child in value.items():
            child_key = f"{key}.{name}" if key else str(name)
            # The key names where the nesting goes wrong; past a line it says no more.
            stack.append((child, depth + 1, child_key if len(child_key) <= 80 else key))
