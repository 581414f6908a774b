"""Reading an untrusted zip upload: names that could escape a folder and sizes that could exhaust
memory (too many entries, zip bombs) are refused before any entry is read.

Every refusal raises PackageRejected with one sentence naming the entry.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

__all__ = [
    "MAX_ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_RATIO",
    "MAX_TOTAL_BYTES",
    "PackageRejected",
    "read_entries",
]

MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_ENTRY_BYTES = 5 * 1024 * 1024
MAX_RATIO = 100

# A zip is its entries plus headers; a larger upload cannot expand within MAX_TOTAL_BYTES, and
# refusing it first bounds what zipfile reads of the central directory.
_MAX_UPLOAD_BYTES = MAX_TOTAL_BYTES + 1024 * 1024


class PackageRejected(ValueError):
    """An upload is not a usable package; the message is one sentence naming the entry."""


def read_entries(
    data: bytes, classify: Callable[[zipfile.ZipInfo, list[str]], bool]
) -> dict[str, bytes]:
    """Every file entry's bytes, after the names and sizes were found safe to read.

    `classify` gets each entry whose name is safe, with the name's '/'-separated parts; it
    refuses an entry outside the layout and returns True for a file to read.
    """
    if len(data) > _MAX_UPLOAD_BYTES:
        raise PackageRejected(f"the upload is {len(data)} bytes, more than {_MAX_UPLOAD_BYTES}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise PackageRejected("the upload is not a zip file") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise PackageRejected(f"the package has {len(infos)} entries, more than {MAX_ENTRIES}")
        files = [info for info in infos if classify(info, _safe_parts(info))]
        seen: set[str] = set()
        for info in infos:
            if info.filename in seen:
                raise PackageRejected(f"entry {info.filename!r} appears more than once")
            seen.add(info.filename)
        declared = 0
        for info in files:
            declared += info.file_size
            _check_size(info.filename, info.file_size, info.compress_size, declared)
        result: dict[str, bytes] = {}
        total = 0
        for info in files:
            body = _read_bounded(archive, info, MAX_TOTAL_BYTES - total)
            total += len(body)
            result[info.filename] = body
        return result


def _safe_parts(info: zipfile.ZipInfo) -> list[str]:
    """The name's parts; PackageRejected if the name could leave the folder it is extracted to."""
    name = info.filename
    if "\\" in name:
        raise PackageRejected(f"entry {name!r} contains a backslash")
    if name.startswith("/"):
        raise PackageRejected(f"entry {name!r} is an absolute path")
    if re.match(r"[A-Za-z]:", name):
        raise PackageRejected(f"entry {name!r} names a drive")
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        raise PackageRejected(f"entry {name!r} leaves the package")
    if any(part in ("", ".") for part in parts):
        raise PackageRejected(f"entry {name!r} has an empty or '.' path component")
    if info.flag_bits & 0x1:
        raise PackageRejected(f"entry {name!r} is encrypted")
    return parts


def _check_size(name: str, size: int, compressed: int, total: int) -> None:
    """Refuse an entry whose size (declared or read) is beyond the limits."""
    if size > MAX_ENTRY_BYTES:
        raise PackageRejected(f"entry {name!r} expands to more than {MAX_ENTRY_BYTES} bytes")
    if total > MAX_TOTAL_BYTES:
        raise PackageRejected(f"entry {name!r} expands the package past {MAX_TOTAL_BYTES} bytes")
    if size > MAX_RATIO * max(compressed, 1):
        raise PackageRejected(f"entry {name!r} is compressed more than {MAX_RATIO}:1")


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, remaining: int) -> bytes:
    """The entry's bytes, reading at most one byte past the limits: headers can lie."""
    limit = min(MAX_ENTRY_BYTES, remaining)
    try:
        with archive.open(info) as handle:
            body = handle.read(limit + 1)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise PackageRejected(f"entry {info.filename!r} is corrupt ({exc})") from exc
    total = MAX_TOTAL_BYTES - remaining + len(body)
    _check_size(info.filename, len(body), info.compress_size, total)
    return body
