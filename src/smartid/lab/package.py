"""The lab's configuration packages: zip format, the two demo packages, a writer, a safe reader.

IDM's real internal zip layout is not public (docs/vendor.md), so the lab
defines its own, one file per configuration object:

    META-INF/package.json           {"name": ..., "version": ..., "description": ...}
    cas/<slug>.json                 a CA               {"name", "type", "description"}
    messaging/<slug>.json           a messaging server {"name", "url", "lifespan"}
    users/<slug>.json               an internal user   {"name", "full_name", "roles"} (no password)
    datapools/<slug>.json           a data pool        {"name", "description"}
    subprocesses/<slug>.bpmn20.xml  a BPMN 2.0 process called by call activities
    processes/<slug>.bpmn20.xml     a BPMN 2.0 process an operator starts

A slug is the lowercase name with runs of other characters than a-z and 0-9 replaced by one '-'.
Other files under META-INF/ (a signed JAR's manifest and signature) are allowed and ignored.

Task attributes the start-up guide edits live on the call activity, as in Nexus's batch-order
example: `calledElement="${processToCall}"` with the Activiti fields `value` (the data pool) and
`param1` (the sub-process) in its extensionElements (smartid.lab.bpmn). An unbound task has no
such fields.

The reader takes untrusted uploads, so it refuses, before anything is parsed, what could escape a
folder or exhaust memory (traversal, too many entries, zip bombs: smartid.safezip), and parses
XML with DTDs, entities and external references forbidden (smartid.lab.bpmn). Every refusal is
one sentence naming the entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Literal

from smartid.lab.bpmn import (
    ACTIVITI_NS,
    BPMN_NS,
    PackageRejected,
    Task,
    bind_task,
    process_tasks,
    read_process,
)
from smartid.safezip import ZipLimits, ZipRejected, deterministic_zip, read_entries

__all__ = [
    "ACTIVITI_NS",
    "BPMN_NS",
    "MAX_ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_RATIO",
    "MAX_TOTAL_BYTES",
    "ObjectKind",
    "Package",
    "PackageObject",
    "PackageRejected",
    "Task",
    "bind_task",
    "demo_package",
    "package_files",
    "process_tasks",
    "read_package",
    "write_package",
]

ObjectKind = Literal["ca", "messaging_server", "user", "data_pool", "sub_process", "process"]

MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_ENTRY_BYTES = 5 * 1024 * 1024
MAX_RATIO = 100
_LIMITS = ZipLimits(
    entries=MAX_ENTRIES, total_bytes=MAX_TOTAL_BYTES, entry_bytes=MAX_ENTRY_BYTES, ratio=MAX_RATIO
)

_MANIFEST = "META-INF/package.json"
_JSON, _BPMN = ".json", ".bpmn20.xml"
# Folder -> kind and file suffix, in the order objects depend on each other.
_FOLDERS: dict[str, tuple[ObjectKind, str]] = {
    "cas": ("ca", _JSON),
    "messaging": ("messaging_server", _JSON),
    "users": ("user", _JSON),
    "datapools": ("data_pool", _JSON),
    "subprocesses": ("sub_process", _BPMN),
    "processes": ("process", _BPMN),
}
_FOLDER_OF = {kind: folder for folder, (kind, _) in _FOLDERS.items()}
_KIND_ORDER = {kind: index for index, kind in enumerate(_FOLDER_OF)}
_LABELS = {
    "ca": "CA",
    "messaging_server": "messaging server",
    "user": "user",
    "data_pool": "data pool",
    "sub_process": "sub-process",
    "process": "process",
}


@dataclass(frozen=True)
class PackageObject:
    """One configuration object; `data` is JSON-able and to be treated as read-only.

    For JSON kinds `data` is the file's object. For processes and sub-processes it is
    {"id": process id, "bpmn": XML text, "tasks": [Task as dict, ...]}.
    """

    kind: ObjectKind
    name: str
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in _FOLDER_OF:
            raise ValueError(f"unknown object kind {self.kind!r}")
        if not self.name:
            raise ValueError(f"a {_LABELS[self.kind]} needs a name")
        if _suffix(self.kind) == _BPMN and not isinstance(self.data.get("bpmn"), str):
            raise ValueError(f"{_LABELS[self.kind]} {self.name!r} has no BPMN text")


@dataclass(frozen=True)
class Package:
    """A package as read: its manifest, the sha256 of the zip and its objects in layout order."""

    name: str
    version: str
    description: str
    sha256: str
    objects: tuple[PackageObject, ...]

    def named(self, kind: ObjectKind, name: str) -> PackageObject | None:
        return next((o for o in self.objects if o.kind == kind and o.name == name), None)


def read_package(data: bytes) -> Package:
    """The package in `data`, or PackageRejected with one sentence naming the offending entry.

    Refused: not a zip; an entry with a '..' component, an absolute path, a backslash or a drive
    letter; more than MAX_ENTRIES entries; declared or actual expansion beyond MAX_TOTAL_BYTES or
    MAX_ENTRY_BYTES, or a compression ratio above MAX_RATIO; an encrypted or corrupt entry; a
    missing META-INF/package.json or one without name/version; a JSON file that is invalid or has
    no "name"; BPMN that is not well-formed, has a DOCTYPE, an entity or an external reference,
    or does not hold exactly one named bpmn:process; two objects of one kind and name, or two
    processes with one id; a file outside the known folders or with the wrong suffix.
    """
    try:
        entries = read_entries(data, _LIMITS, what="the package", classify=_classify)
    except ZipRejected as exc:
        raise PackageRejected(str(exc)) from exc
    if _MANIFEST not in entries:
        raise PackageRejected(f"the package has no {_MANIFEST}")
    manifest = _json_object(_MANIFEST, entries[_MANIFEST])
    name, version = (_text(_MANIFEST, manifest, key) for key in ("name", "version"))
    description = manifest.get("description", "")
    if not isinstance(description, str):
        raise PackageRejected(f"entry '{_MANIFEST}' has a \"description\" that is not text")
    read = [
        (entry, _read_object(entry, body))
        for entry, body in sorted(entries.items())
        if not entry.startswith("META-INF/")
    ]
    _refuse_duplicates(read)
    objects = sorted((obj for _, obj in read), key=lambda o: (_KIND_ORDER[o.kind], o.name))
    digest = hashlib.sha256(data).hexdigest()
    return Package(name, version, description, digest, tuple(objects))


def write_package(
    name: str, version: str, description: str, objects: Iterable[PackageObject]
) -> bytes:
    """A zip in the lab's layout; equal input gives equal bytes (and sha256) on any machine.

    JSON objects are written with "name" first, two-space indents and a final newline; BPMN text
    is written as it is. ValueError if two objects would share a file.
    """
    return deterministic_zip(package_files(name, version, description, objects), mode=0o644)


def package_files(
    name: str, version: str, description: str, objects: Iterable[PackageObject]
) -> dict[str, bytes]:
    """The entries `write_package` zips, by name (what a signed export signs first)."""
    manifest = {"name": name, "version": version, "description": description}
    files = {_MANIFEST: _json_bytes(manifest)}
    for obj in objects:
        entry = f"{_FOLDER_OF[obj.kind]}/{_slug(obj.name)}{_suffix(obj.kind)}"
        if entry in files:
            raise ValueError(f"{_LABELS[obj.kind]} {obj.name!r} would overwrite entry {entry!r}")
        files[entry] = _object_bytes(obj)
    return files


def demo_package(which: Literal["users", "shared_credentials"]) -> bytes:
    """The demo package zipped from its sources in smartid/lab/packages/<which>/."""
    if which not in ("users", "shared_credentials"):
        raise ValueError(f"no demo package {which!r}")
    files: dict[str, bytes] = {}
    _collect(resources.files("smartid.lab") / "packages" / which, "", files)
    return deterministic_zip(files, mode=0o644)


def _classify(info: zipfile.ZipInfo, parts: list[str]) -> bool:
    """Refuse an entry outside the layout; True if the entry is a file to read."""
    name = info.filename
    top = parts[0]
    if top == "META-INF":
        return not info.is_dir()
    if len(parts) == 1 and not info.is_dir():
        raise PackageRejected(f"entry {name!r} lies outside the package's folders ({_known()})")
    if top not in _FOLDERS:
        raise PackageRejected(f"entry {name!r} is in the unknown folder '{top}/' ({_known()})")
    if len(parts) > 2:
        raise PackageRejected(f"entry {name!r} is in a sub-folder of '{top}/'")
    if info.is_dir():
        return False
    suffix = _FOLDERS[top][1]
    if not parts[1].endswith(suffix) or parts[1] == suffix:
        raise PackageRejected(f"entry {name!r} is not a {suffix} file")
    return True


def _read_object(entry: str, body: bytes) -> PackageObject:
    kind, suffix = _FOLDERS[entry.split("/")[0]]
    if suffix == _JSON:
        data = _json_object(entry, body)
        return PackageObject(kind, _text(entry, data, "name"), data)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageRejected(f"entry {entry!r} is not UTF-8 text") from exc
    name, data = read_process(text, f"entry {entry!r}")
    return PackageObject(kind, name, data)


def _refuse_duplicates(read: list[tuple[str, PackageObject]]) -> None:
    names: dict[tuple[str, str], str] = {}
    ids: dict[str, str] = {}
    for entry, obj in read:
        first = names.setdefault((obj.kind, obj.name), entry)
        if first != entry:
            label = _LABELS[obj.kind]
            raise PackageRejected(
                f"entry {entry!r} duplicates the {label} {obj.name!r} of entry {first!r}"
            )
        if "bpmn" in obj.data:
            first = ids.setdefault(obj.data["id"], entry)
            if first != entry:
                process_id = obj.data["id"]
                raise PackageRejected(
                    f"entry {entry!r} reuses the process id {process_id!r} of entry {first!r}"
                )


def _json_object(entry: str, body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise PackageRejected(f"entry {entry!r} nests JSON too deeply") from exc
    except ValueError as exc:  # also UnicodeDecodeError and the int-digits limit
        raise PackageRejected(f"entry {entry!r} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise PackageRejected(f"entry {entry!r} is not a JSON object")
    return value


def _text(entry: str, data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PackageRejected(f'entry {entry!r} lacks "{key}"')
    return value


def _suffix(kind: ObjectKind) -> str:
    return _FOLDERS[_FOLDER_OF[kind]][1]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed"


def _known() -> str:
    return ", ".join(f"'{folder}/'" for folder in ("META-INF", *_FOLDERS))


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _object_bytes(obj: PackageObject) -> bytes:
    if _suffix(obj.kind) == _BPMN:
        return str(obj.data["bpmn"]).encode("utf-8")
    rest = {key: value for key, value in obj.data.items() if key != "name"}
    return _json_bytes({"name": obj.name, **rest})


def _collect(folder: Traversable, prefix: str, into: dict[str, bytes]) -> None:
    for child in folder.iterdir():
        if child.name.startswith((".", "__")):  # editor files, __pycache__
            continue
        if child.is_dir():
            _collect(child, f"{prefix}{child.name}/", into)
        else:
            into[prefix + child.name] = child.read_bytes()
