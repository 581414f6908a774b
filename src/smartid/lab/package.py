"""The lab's configuration packages: zip format, the two demo packages, a writer, a safe reader.

IDM's real internal zip layout is not public (SMARTID-DOMAIN §2.3 treats it as opaque), so the lab
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

Task attributes the start-up guide edits live on the call activity: the sub-process is its
`calledElement` (the sub-process's name), the data pool is `smartid:dataPool` in `SMARTID_NS`.
An unbound task has `calledElement=""` and no data pool.

The reader takes untrusted uploads, so it refuses, before anything is parsed, what could escape a
folder or exhaust memory (traversal, too many entries, zip bombs), and parses XML with DTDs,
entities and external references forbidden. Every refusal is one sentence naming the entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Literal
from xml.etree import ElementTree as ET

import defusedxml
import defusedxml.ElementTree

__all__ = [
    "BPMN_NS",
    "MAX_ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_RATIO",
    "MAX_TOTAL_BYTES",
    "SMARTID_NS",
    "ObjectKind",
    "Package",
    "PackageObject",
    "PackageRejected",
    "Task",
    "bind_task",
    "demo_package",
    "process_tasks",
    "read_package",
    "write_package",
]

MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_ENTRY_BYTES = 5 * 1024 * 1024
MAX_RATIO = 100

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SMARTID_NS = "urn:smartid-lab:bpmn"

ObjectKind = Literal["ca", "messaging_server", "user", "data_pool", "sub_process", "process"]

# A zip is its entries plus headers; a larger upload cannot expand within MAX_TOTAL_BYTES, and
# refusing it first bounds what zipfile reads of the central directory.
_MAX_UPLOAD_BYTES = MAX_TOTAL_BYTES + 1024 * 1024
# ElementTree serialises recursively; a deeper document would raise RecursionError in bind_task.
_MAX_XML_DEPTH = 100
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
_TASK_TAGS = frozenset(
    f"{{{BPMN_NS}}}{tag}"
    for tag in (
        "task",
        "userTask",
        "serviceTask",
        "scriptTask",
        "sendTask",
        "receiveTask",
        "manualTask",
        "businessRuleTask",
        "callActivity",
    )
)
_CALL_ACTIVITY = f"{{{BPMN_NS}}}callActivity"
_DATA_POOL = f"{{{SMARTID_NS}}}dataPool"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Fixed timestamp and attributes: the same objects give the same bytes, hence the same sha256.
_EPOCH = (1980, 1, 1, 0, 0, 0)

# ElementTree names unknown namespaces ns0, ns1...; these are the prefixes BPMN tools write.
_PREFIXES = {
    "bpmn": BPMN_NS,
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "activiti": "http://activiti.org/bpmn",
    "smartid": SMARTID_NS,
}
for _prefix, _uri in _PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


class PackageRejected(ValueError):
    """An upload is not a usable package; the message is one sentence naming the entry."""


@dataclass(frozen=True)
class Task:
    """One task of a BPMN process, with the two attributes the start-up guide binds."""

    id: str
    name: str
    type: str  # the BPMN element name: "callActivity", "userTask", "serviceTask", ...
    data_pool: str | None
    sub_process: str | None


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
    if len(data) > _MAX_UPLOAD_BYTES:
        raise PackageRejected(f"the upload is {len(data)} bytes, more than {_MAX_UPLOAD_BYTES}")
    entries = _read_entries(data)
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


def process_tasks(bpmn: str) -> list[Task]:
    """The tasks of the BPMN document in document order; PackageRejected if it is unsafe."""
    return _tasks(_parse_bpmn(bpmn, "the BPMN"))


def bind_task(bpmn: str, task_name: str, data_pool: str | None, sub_process: str | None) -> str:
    """The BPMN text with call activity `task_name` bound to a data pool and a sub-process.

    None clears a binding: `calledElement=""` and no `smartid:dataPool`, the unbound shape the
    package ships. ElementTree rewrites the text: comments and unused namespace declarations are
    dropped and prefixes come from the registered set, which the lab's export can afford.
    LookupError if the document does not have exactly one call activity of that name.
    """
    root = _parse_bpmn(bpmn, "the BPMN")
    found = [e for e in root.iter(_CALL_ACTIVITY) if e.get("name") == task_name]
    if len(found) != 1:
        raise LookupError(f"the BPMN has {len(found)} call activities named {task_name!r}, not 1")
    task = found[0]
    task.set("calledElement", sub_process or "")
    if data_pool:
        task.set(_DATA_POOL, data_pool)
    else:
        task.attrib.pop(_DATA_POOL, None)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def write_package(
    name: str, version: str, description: str, objects: Iterable[PackageObject]
) -> bytes:
    """A zip in the lab's layout; equal input gives equal bytes (and sha256) on any machine.

    JSON objects are written with "name" first, two-space indents and a final newline; BPMN text
    is written as it is. ValueError if two objects would share a file.
    """
    manifest = {"name": name, "version": version, "description": description}
    files = {_MANIFEST: _json_bytes(manifest)}
    for obj in objects:
        entry = f"{_FOLDER_OF[obj.kind]}/{_slug(obj.name)}{_suffix(obj.kind)}"
        if entry in files:
            raise ValueError(f"{_LABELS[obj.kind]} {obj.name!r} would overwrite entry {entry!r}")
        files[entry] = _object_bytes(obj)
    return _zip(files)


def demo_package(which: Literal["users", "shared_credentials"]) -> bytes:
    """The demo package zipped from its sources in smartid/lab/packages/<which>/."""
    if which not in ("users", "shared_credentials"):
        raise ValueError(f"no demo package {which!r}")
    files: dict[str, bytes] = {}
    _collect(resources.files("smartid.lab") / "packages" / which, "", files)
    return _zip(files)


def _read_entries(data: bytes) -> dict[str, bytes]:
    """Every file entry's bytes, after the names and sizes were found safe to read."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise PackageRejected("the upload is not a zip file") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise PackageRejected(f"the package has {len(infos)} entries, more than {MAX_ENTRIES}")
        files = [info for info in infos if _check_entry(info)]
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


def _check_entry(info: zipfile.ZipInfo) -> bool:
    """Refuse an unsafe or unknown entry name; True if the entry is a file to read."""
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


def _read_object(entry: str, body: bytes) -> PackageObject:
    kind, suffix = _FOLDERS[entry.split("/")[0]]
    if suffix == _JSON:
        data = _json_object(entry, body)
        return PackageObject(kind, _text(entry, data, "name"), data)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageRejected(f"entry {entry!r} is not UTF-8 text") from exc
    root = _parse_bpmn(text, f"entry {entry!r}")
    processes = root.findall(f"{{{BPMN_NS}}}process")
    if root.tag != f"{{{BPMN_NS}}}definitions" or len(processes) != 1:
        raise PackageRejected(f"entry {entry!r} does not hold exactly one bpmn:process")
    process = processes[0]
    if not process.get("id") or not process.get("name"):
        raise PackageRejected(f"entry {entry!r} has a bpmn:process without an id or a name")
    tasks = [asdict(task) for task in _tasks(root)]
    data = {"id": process.get("id"), "bpmn": text, "tasks": tasks}
    return PackageObject(kind, process.get("name", ""), data)


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


def _parse_bpmn(text: str, where: str) -> ET.Element:
    """The parsed document; `where` names the entry in the refusal."""
    try:
        root = defusedxml.ElementTree.fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DTDForbidden as exc:
        raise PackageRejected(f"{where} has a DOCTYPE; DTDs and entities are refused") from exc
    except defusedxml.EntitiesForbidden as exc:
        raise PackageRejected(f"{where} declares an entity; entities are refused") from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise PackageRejected(f"{where} refers to an external resource") from exc
    except defusedxml.DefusedXmlException as exc:
        raise PackageRejected(f"{where} uses a refused XML feature ({exc})") from exc
    except ET.ParseError as exc:
        raise PackageRejected(f"{where} is not well-formed XML ({exc})") from exc
    if _depth(root) > _MAX_XML_DEPTH:
        raise PackageRejected(f"{where} nests elements more than {_MAX_XML_DEPTH} deep")
    return root


def _depth(root: ET.Element) -> int:
    deepest, level = 0, [root]
    while level:
        deepest += 1
        level = [child for element in level for child in element]
    return deepest


def _tasks(root: ET.Element) -> list[Task]:
    tasks = []
    for element in root.iter():
        if element.tag in _TASK_TAGS:
            is_call = element.tag == _CALL_ACTIVITY
            tasks.append(
                Task(
                    id=element.get("id", ""),
                    name=element.get("name", ""),
                    type=str(element.tag).rpartition("}")[2],
                    data_pool=element.get(_DATA_POOL) or None,
                    sub_process=(element.get("calledElement") or None) if is_call else None,
                )
            )
    return tasks


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


def _zip(files: Mapping[str, bytes]) -> bytes:
    """Sorted entries, fixed times and attributes, stored uncompressed.

    Stored, not deflated: zlib builds (zlib, zlib-ng) compress differently, which would make the
    sha256 of a demo package depend on the machine that built it.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3  # Unix, whatever the building machine
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def _collect(folder: Traversable, prefix: str, into: dict[str, bytes]) -> None:
    for child in folder.iterdir():
        if child.name.startswith((".", "__")):  # editor files, __pycache__
            continue
        if child.is_dir():
            _collect(child, f"{prefix}{child.name}/", into)
        else:
            into[prefix + child.name] = child.read_bytes()
