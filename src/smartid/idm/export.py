"""IDM's configuration as its documented download shows it (`GET .../ws/deploy/configuration`).

Nexus does not publish the zip's inner layout (docs/vendor.md), so the reader takes from it only
what has a documented form: the BPMN 2.0 process definitions (`*.bpmn20.xml`, `*.bpmn`) and their
task bindings (smartid.idm.bpmn). The zip is untrusted and read with the suite's zip safety rules;
a download the reader does not understand is `NotVerifiable`, one sentence naming it, so that a
check can say why it cannot judge instead of passing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from smartid.idm.bpmn import BpmnError, ProcessDefinition, read_process
from smartid.idm.models import Process, Task
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


class NotVerifiable(ValueError):
    """The download cannot be judged; the message says which download and why."""


@dataclass(frozen=True)
class Configuration:
    """What the download shows: the processes by name, with their call activities as tasks."""

    processes: Mapping[str, Process]


def read_configuration(data: bytes, where: str) -> Configuration:
    """The configuration in a downloaded zip; NotVerifiable naming `where` if it cannot be read."""
    try:
        entries = read_entries(data, DOWNLOAD_LIMITS, what=where)
    except ZipRejected as exc:
        raise NotVerifiable(str(exc)) from None
    processes: dict[str, Process] = {}
    for name in sorted(entries):
        if not name.lower().endswith(_BPMN_SUFFIXES):
            continue
        try:
            definition = read_process(entries[name], f"{where}, entry {name!r}")
        except BpmnError as exc:
            raise NotVerifiable(str(exc)) from None
        if definition.name in processes:
            raise NotVerifiable(f"{where} holds the process {definition.name!r} twice")
        processes[definition.name] = _process(definition)
    if not processes:
        raise NotVerifiable(
            f"{where} holds no BPMN process definition (*.bpmn20.xml or *.bpmn) the suite can "
            "read; it may be encrypted or of a layout the suite does not know"
        )
    return Configuration(MappingProxyType(processes))


def _process(definition: ProcessDefinition) -> Process:
    tasks = tuple(
        Task(
            name=activity.name,
            type="callActivity",
            data_pool=activity.data_pool,
            sub_process=activity.sub_process,
        )
        for activity in definition.call_activities
    )
    # A download carries no object version; 0 says "not known".
    return Process(name=definition.name, id=definition.id, version=0, tasks=tasks)
