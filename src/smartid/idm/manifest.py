"""Reading a JAR manifest or signature file (`META-INF/MANIFEST.MF`, `META-INF/*.SF`), as the JAR
File Specification defines them:

    manifest-file:  main-section newline *individual-section
    main-section:   version-info newline *main-attribute
    individual-section: "Name:" value newline *perentry-attribute
    header:         name ":" SPACE value; a value continues on lines starting with one SPACE
    newline:        CR LF | LF | CR (not followed by LF)

A signature file digests the manifest's sections byte for byte, so each section keeps its bytes
as written, its terminating blank line included. Attribute names are case-insensitive: they are
kept lower-cased. The reader parses untrusted bytes; its caller bounds their size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Manifest", "ManifestError", "Section", "read_manifest"]

_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


class ManifestError(ValueError):
    """The bytes are not a manifest; the message names the file and the line."""


@dataclass(frozen=True)
class Section:
    """One section: its attributes by lower-cased name, and its bytes as written."""

    attributes: Mapping[str, str]
    raw: bytes

    def get(self, name: str) -> str | None:
        return self.attributes.get(name.lower())


@dataclass(frozen=True)
class Manifest:
    """The main section and the individual sections by the entry they name."""

    main: Section
    sections: Mapping[str, Section]


def read_manifest(data: bytes, what: str) -> Manifest:
    """The manifest in `data`; ManifestError naming `what` and the line if it is malformed."""
    blocks = _blocks(_LINES.findall(data))
    if not blocks:
        raise ManifestError(f"{what} is empty")
    main = _section(blocks[0], what)
    sections: dict[str, Section] = {}
    for first_line, lines in blocks[1:]:
        section = _section((first_line, lines), what)
        name = section.get("Name")
        if name is None:
            raise ManifestError(f"{what}: the section at line {first_line} has no Name")
        if name in sections:
            raise ManifestError(f"{what} names the entry {name!r} twice")
        sections[name] = section
    return Manifest(main, MappingProxyType(sections))


def _blocks(lines: list[bytes]) -> list[tuple[int, list[bytes]]]:
    """The sections' lines (line endings kept), each with the number of its first line; a blank
    line ends a section and belongs to it; further blank lines belong to none."""
    blocks: list[tuple[int, list[bytes]]] = []
    current: list[bytes] = []
    start = 1
    for number, line in enumerate(lines, start=1):
        blank = line.rstrip(b"\r\n") == b""
        if blank:
            if current:
                current.append(line)
                blocks.append((start, current))
                current = []
            continue
        if not current:
            start = number
        current.append(line)
    if current:
        blocks.append((start, current))
    return blocks


def _section(block: tuple[int, list[bytes]], what: str) -> Section:
    first_line, lines = block
    headers: list[list[str]] = []
    for offset, line in enumerate(lines):
        number = first_line + offset
        try:
            text = line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(f"{what}: line {number} is not UTF-8") from None
        if not text:
            continue
        if text.startswith(" "):
            if not headers:
                raise ManifestError(f"{what}: line {number} continues no header")
            headers[-1].append(text[1:])
            continue
        name, separator, value = text.partition(": ")
        if not separator or not _NAME.match(name):
            raise ManifestError(f"{what}: line {number} is not a 'Name: value' header")
        headers.append([name, value])
    attributes: dict[str, str] = {}
    for name, *parts in headers:
        key = name.lower()
        if key in attributes:
            raise ManifestError(f"{what}: the section at line {first_line} has {name} twice")
        attributes[key] = "".join(parts)
    return Section(MappingProxyType(attributes), b"".join(lines))
