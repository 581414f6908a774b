"""IDM's configuration as its documented download shows it (`GET .../ws/deploy/configuration`).

Nexus does not publish the zip's inner layout (docs/vendor.md), so the reader takes from it what
has a documented form, the BPMN 2.0 process definitions (`*.bpmn20.xml`, `*.bpmn`) and their task
bindings (smartid.idm.bpmn), and, where the zip is in the package layout the start-up guide's
packages use (`META-INF/package.json` beside one folder per kind of object; ours, see
docs/vendor.md), the other objects: CAs, messaging servers, users and data pools as JSON. A zip
without that layout shows processes only, and the other kinds are None ("not shown"), never
empty. The zip is untrusted and read with the suite's zip safety rules; a download the reader
does not understand is `NotVerifiable`, one sentence naming it, so that a check can say why it
cannot judge instead of passing. A messaging server's authentication token is kept only as its
fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from smartid.idm.bpmn import BpmnError, ProcessDefinition, read_process
from smartid.idm.models import CAConnection, CertificateAuthority, MessagingServer, Process, Task
from smartid.inputs import deeper_than
from smartid.safezip import ZipLimits, ZipRejected, read_entries

__all__ = [
    "DOWNLOAD_LIMITS",
    "MAX_DOWNLOAD_BYTES",
    "Configuration",
    "NotVerifiable",
    "read_configuration",
]

MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
# What a download may hold; the signature's verifier (smartid.idm.signature) reads it alike.
DOWNLOAD_LIMITS = ZipLimits(
    entries=20_000,
    total_bytes=MAX_DOWNLOAD_BYTES,
    entry_bytes=20 * 1024 * 1024,
    ratio=200,
)
_BPMN_SUFFIXES = (".bpmn20.xml", ".bpmn")
_LAYOUT_MARKER = "META-INF/package.json"
# Folder of the package layout -> the kind of object its JSON files hold.
_JSON_FOLDERS = {
    "cas": "certificate authority",
    "messaging": "messaging server",
    "users": "user",
    "datapools": "data pool",
}
_SUB_PROCESS_FOLDER = "subprocesses"
_MAX_JSON_DEPTH = 32


class NotVerifiable(ValueError):
    """The download cannot be judged; the message says which download and why."""


@dataclass(frozen=True)
class Configuration:
    """What the download shows. `processes` are the BPMN processes an operator starts (every
    BPMN document outside a sub-process folder); a kind the layout does not show is None."""

    processes: Mapping[str, Process]
    sub_processes: frozenset[str] | None = None
    certificate_authorities: Mapping[str, CertificateAuthority] | None = None
    messaging_servers: Mapping[str, MessagingServer] | None = None
    users: frozenset[str] | None = None
    data_pools: frozenset[str] | None = None


def read_configuration(data: bytes, where: str) -> Configuration:
    """The configuration in a downloaded zip; NotVerifiable naming `where` if it cannot be read."""
    try:
        entries = read_entries(data, DOWNLOAD_LIMITS, what=where)
    except ZipRejected as exc:
        raise NotVerifiable(str(exc)) from None
    layout = _LAYOUT_MARKER in entries
    processes: dict[str, Process] = {}
    sub_processes: set[str] = set()
    objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _JSON_FOLDERS.values()}
    for name in sorted(entries):
        folder = name.split("/", 1)[0] if "/" in name else ""
        if name.lower().endswith(_BPMN_SUFFIXES):
            try:
                definition = read_process(entries[name], f"{where}, entry {name!r}")
            except BpmnError as exc:
                raise NotVerifiable(str(exc)) from None
            if folder == _SUB_PROCESS_FOLDER:
                sub_processes.add(definition.name)
                continue
            if definition.name in processes:
                raise NotVerifiable(f"{where} holds the process {definition.name!r} twice")
            processes[definition.name] = _process(definition)
        elif layout and folder in _JSON_FOLDERS and name.endswith(".json"):
            kind = _JSON_FOLDERS[folder]
            value = _json_object(entries[name], f"{where}, entry {name!r}")
            object_name = value.get("name")
            if not isinstance(object_name, str) or not object_name:
                raise NotVerifiable(f'{where}, entry {name!r}: a {kind} without a "name"')
            if object_name in objects[kind]:
                raise NotVerifiable(f"{where} holds the {kind} {object_name!r} twice")
            objects[kind][object_name] = value
    if not processes and not layout:
        raise NotVerifiable(
            f"{where} holds no BPMN process definition (*.bpmn20.xml or *.bpmn) the suite can "
            "read; it may be encrypted or of a layout the suite does not know"
        )
    if not layout:
        return Configuration(MappingProxyType(processes))
    return Configuration(
        MappingProxyType(processes),
        sub_processes=frozenset(sub_processes),
        certificate_authorities=MappingProxyType(
            {n: _ca(v, where) for n, v in objects["certificate authority"].items()}
        ),
        messaging_servers=MappingProxyType(
            {n: _messaging_server(v, where) for n, v in objects["messaging server"].items()}
        ),
        users=frozenset(objects["user"]),
        data_pools=frozenset(objects["data pool"]),
    )


def _json_object(body: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise NotVerifiable(f"{where} nests JSON too deeply") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise NotVerifiable(f"{where} is not UTF-8 JSON ({exc})") from None
    if not isinstance(value, dict):
        raise NotVerifiable(f"{where} is not a JSON object")
    if deeper_than(value, _MAX_JSON_DEPTH):
        raise NotVerifiable(f"{where} nests JSON deeper than {_MAX_JSON_DEPTH} levels")
    return value


def _ca(value: Mapping[str, Any], where: str) -> CertificateAuthority:
    connection = value.get("connection")
    try:
        return CertificateAuthority(
            name=value["name"],
            type=value.get("type", "CM"),
            description=value.get("description", ""),
            enabled=value.get("enabled", True),
            connection=CAConnection.model_validate(connection)
            if isinstance(connection, dict)
            else None,
            certificate_types=tuple(value.get("certificate_types", ())),
            version=0,
        )
    except (ValidationError, TypeError) as exc:
        raise NotVerifiable(_invalid(where, "certificate authority", value, exc)) from None


def _messaging_server(value: Mapping[str, Any], where: str) -> MessagingServer:
    token = value.get("authentication_token")
    fingerprint = value.get("authentication_token_sha256")
    if isinstance(token, str) and token:
        fingerprint = hashlib.sha256(token.encode()).hexdigest()
    try:
        return MessagingServer(
            name=value["name"],
            url=value.get("url", ""),
            lifespan=value.get("lifespan", 0),
            authentication_token_set=bool(fingerprint),
            authentication_token_sha256=fingerprint or None,
            version=0,
        )
    except (ValidationError, TypeError) as exc:
        raise NotVerifiable(_invalid(where, "messaging server", value, exc)) from None


def _invalid(where: str, kind: str, value: Mapping[str, Any], exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "?"
        return f"{where}: the {kind} {value.get('name')!r} has an unreadable {field!r}"
    return f"{where}: the {kind} {value.get('name')!r} cannot be read"


def _process(definition: ProcessDefinition) -> Process:
    tasks = tuple(
        Task(
            name=activity.name,
            type="callActivity",
            data_pool=activity.data_pool,
            sub_process=activity.sub_process,
            unread=activity.unread,
        )
        for activity in definition.call_activities
    )
    # A download carries no object version; 0 says "not known".
    return Process(name=definition.name, id=definition.id, version=0, tasks=tasks)
