"""The package file a site names, checked before it goes to IDM (SETUP-201).

An upload IDM would refuse, or one that could harm the server that unpacks it, is refused here,
in one sentence naming the file, and never sent: a file larger than the bound (found from its
size, before it is read), not a zip, beyond the zip bounds (entries, expanded size, ratio: zip
bombs), an entry that could leave its folder or is a symbolic link (smartid.safezip), no
descriptor `META-INF/package.json` with the package's name (the package layout, docs/vendor.md),
or a BPMN process definition the suite's defusing parser refuses (DTDs, entities, external
references, too large or too deep: smartid.idm.bpmn). The file's objects (`contents`) are what
setup (SETUP-201, SETUP-202) and verify (CONF-001, DRIFT-001) look for in IDM: one reader for all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from smartid.errors import PackageError
from smartid.idm.bpmn import BpmnError, read_process
from smartid.idm.export import Configuration, read_configuration
from smartid.inputs import InputRefused, decode_utf8, load_json, read_bounded
from smartid.safezip import ZipLimits, ZipRejected, read_entries

__all__ = ["DESCRIPTOR", "MAX_PACKAGE_BYTES", "PACKAGE_LIMITS", "PackageFile", "read_package_file"]

DESCRIPTOR = "META-INF/package.json"
# A configuration package is objects as JSON and BPMN documents: a few MB at most.
PACKAGE_LIMITS = ZipLimits(
    entries=5_000, total_bytes=64 * 1024 * 1024, entry_bytes=16 * 1024 * 1024, ratio=200
)
MAX_PACKAGE_BYTES = PACKAGE_LIMITS.upload_bytes
_BPMN_SUFFIXES = (".bpmn20.xml", ".bpmn")
_DESCRIPTOR_DEPTH = 8


@dataclass(frozen=True, kw_only=True)
class PackageFile:
    """A package file found fit to upload."""

    path: Path
    data: bytes
    name: str
    version: str | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def contents(self) -> Configuration:
        """The objects the package brings, as the configuration reader sees them;
        NotVerifiable if the file is in a layout the suite does not read."""
        return read_configuration(self.data, str(self.path))


def read_package_file(path: Path) -> PackageFile:
    """The package at `path`, checked; PackageError naming the file and the reason otherwise."""
    shown = str(path)
    try:
        data = read_bounded(path, MAX_PACKAGE_BYTES)
    except InputRefused as exc:
        raise PackageError(shown, exc.problem) from None
    except OSError as exc:
        raise PackageError(shown, f"cannot be read ({exc.strerror})") from None
    try:
        entries = read_entries(data, PACKAGE_LIMITS, what="the package file")
    except ZipRejected as exc:
        raise PackageError(shown, str(exc)) from None
    name, version = _descriptor(shown, entries.get(DESCRIPTOR))
    for entry in sorted(entries):
        if entry.lower().endswith(_BPMN_SUFFIXES):
            try:
                read_process(entries[entry], f"entry {entry!r}")
            except BpmnError as exc:
                raise PackageError(shown, str(exc)) from None
    return PackageFile(path=path, data=data, name=name, version=version)


def _descriptor(shown: str, body: bytes | None) -> tuple[str, str | None]:
    if body is None:
        raise PackageError(shown, f"has no {DESCRIPTOR}, the descriptor every package carries")
    try:
        document = load_json(decode_utf8(body), _DESCRIPTOR_DEPTH)
    except InputRefused as exc:
        raise PackageError(shown, f"entry {DESCRIPTOR!r} {exc.problem}") from None
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, str) or not name:
        raise PackageError(shown, f'entry {DESCRIPTOR!r} has no "name" of the package')
    version = document.get("version")
    return name, version if isinstance(version, str) else None
