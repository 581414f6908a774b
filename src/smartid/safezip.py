"""Zips in and out. Reading an untrusted zip: names that could escape a folder, symbolic links and
sizes that could exhaust memory (too many entries, zip bombs) are refused, in one sentence naming
the entry, before any is read. Writing: the same files give the same bytes on every machine."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ZipLimits", "ZipRejected", "deterministic_zip", "entry_parts", "read_entries"]

# A zip is its entries plus headers; a larger upload cannot expand within the total, and refusing
# it first bounds what zipfile reads of the central directory.
_HEADER_ALLOWANCE = 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)
# The file type bits of a Unix mode, as a zip made on Unix keeps it in the external attributes.
_FILE_TYPE, _SYMLINK = 0o170000, 0o120000


class ZipRejected(ValueError):
    """A zip is not safe to read; the message is one sentence naming the entry or the zip."""


@dataclass(frozen=True, kw_only=True)
class ZipLimits:
    """The most a zip may hold: entries, expanded bytes in all and per entry, and the ratio of
    an entry's expanded to its compressed size."""

    entries: int
    total_bytes: int
    entry_bytes: int
    ratio: int

    @property
    def upload_bytes(self) -> int:
        return self.total_bytes + _HEADER_ALLOWANCE


def read_entries(
    data: bytes,
    limits: ZipLimits,
    *,
    what: str = "the zip",
    classify: Callable[[zipfile.ZipInfo, list[str]], bool] | None = None,
) -> dict[str, bytes]:
    """The bytes of every entry to keep, by name, after all names and sizes were found safe.

    `what` names the zip in refusals. `classify` gets each entry whose name is safe, with the
    name's '/'-separated parts; it may refuse the entry by raising its own error and returns True
    for an entry to read. Without it, every entry but a folder is read.
    """
    if len(data) > limits.upload_bytes:
        raise ZipRejected(f"{what} is {len(data)} bytes, more than {limits.upload_bytes}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise ZipRejected(f"{what} is not a zip file") from exc
    keep = classify or _is_file
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.entries:
            raise ZipRejected(f"{what} has {len(infos)} entries, more than {limits.entries}")
        kept: list[zipfile.ZipInfo] = []
        seen: set[str] = set()
        for info in infos:
            parts = entry_parts(info.filename)
            if info.flag_bits & 0x1:
                raise ZipRejected(f"entry {info.filename!r} is encrypted")
            if (info.external_attr >> 16) & _FILE_TYPE == _SYMLINK:
                # Unpacked, a link could point anywhere; no package or download needs one.
                raise ZipRejected(f"entry {info.filename!r} is a symbolic link")
            if info.filename in seen:
                raise ZipRejected(f"entry {info.filename!r} appears more than once")
            seen.add(info.filename)
            if keep(info, parts):
                kept.append(info)
        # Entries that are not read count too: a header declaring more than the limits is a lie
        # or a bomb, whichever entry it is.
        declared = 0
        for info in infos:
            declared += info.file_size
            _check_size(info.filename, info.file_size, info.compress_size, declared, limits, what)
        result: dict[str, bytes] = {}
        total = 0
        for info in kept:
            body = _read_bounded(archive, info, total, limits, what)
            total += len(body)
            result[info.filename] = body
        return result


def entry_parts(name: str) -> list[str]:
    """The entry name's '/'-separated parts, without a folder's final '/'; ZipRejected if the
    name could leave the folder the zip is unpacked into."""
    if "\\" in name:
        raise ZipRejected(f"entry {name!r} contains a backslash")
    if name.startswith("/"):
        raise ZipRejected(f"entry {name!r} is an absolute path")
    if re.match(r"[A-Za-z]:", name):
        raise ZipRejected(f"entry {name!r} names a drive")
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        raise ZipRejected(f"entry {name!r} leaves the folder it is unpacked into")
    if any(part in ("", ".") for part in parts):
        raise ZipRejected(f"entry {name!r} has an empty or '.' path component")
    return parts


def _is_file(info: zipfile.ZipInfo, parts: list[str]) -> bool:
    return not info.is_dir()


def _check_size(
    name: str, size: int, compressed: int, total: int, limits: ZipLimits, what: str
) -> None:
    """Refuse an entry whose size, declared or read, is beyond the limits."""
    if size > limits.entry_bytes:
        raise ZipRejected(f"entry {name!r} expands to more than {limits.entry_bytes} bytes")
    if total > limits.total_bytes:
        raise ZipRejected(f"entry {name!r} expands {what} past {limits.total_bytes} bytes")
    if size > limits.ratio * max(compressed, 1):
        raise ZipRejected(f"entry {name!r} is compressed more than {limits.ratio}:1")


def _read_bounded(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, before: int, limits: ZipLimits, what: str
) -> bytes:
    """The entry's bytes, reading at most one byte past the limits: headers can lie."""
    limit = min(limits.entry_bytes, limits.total_bytes - before)
    try:
        with archive.open(info) as handle:
            body = handle.read(limit + 1)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ZipRejected(f"entry {info.filename!r} is corrupt ({exc})") from exc
    _check_size(info.filename, len(body), info.compress_size, before + len(body), limits, what)
    return body


def deterministic_zip(files: Mapping[str, bytes], *, mode: int, first: Sequence[str] = ()) -> bytes:
    """Sorted entries, fixed times, Unix attributes with permission bits `mode`, stored
    uncompressed: zlib builds (zlib, zlib-ng) compress differently, which would make the sha256
    of a zip depend on the machine that built it. The entries named in `first` come first, in
    that order (a JAR's manifest and signature files lead it)."""
    leading = [name for name in first if name in files]
    order = leading + sorted(set(files) - set(leading))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in order:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # Unix, whatever the building machine
            info.external_attr = mode << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()
