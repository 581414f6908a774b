"""BPMN 2.0 process definitions in the lab's packages: a parser that refuses DTDs, entities and
external references, the tasks of a process, and binding a call activity to its sub-process.

The bindings the start-up guide edits live on the call activity in the form of Nexus's
batch-order example (docs/vendor.md): `calledElement="${processToCall}"` and, in its
`extensionElements`, `<activiti:field name="value" expression="<data pool>"/>` and
`<activiti:field name="param1" expression="<sub-process>"/>`. An unbound task has no such fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from xml.etree import ElementTree as ET

import defusedxml
import defusedxml.ElementTree

__all__ = [
    "ACTIVITI_NS",
    "BPMN_NS",
    "PackageRejected",
    "Task",
    "bind_task",
    "process_tasks",
    "read_process",
]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ACTIVITI_NS = "http://activiti.org/bpmn"
DYNAMIC_CALL = "${processToCall}"

# ElementTree serialises recursively; a deeper document would raise RecursionError in bind_task.
_MAX_XML_DEPTH = 100
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
_EXTENSIONS = f"{{{BPMN_NS}}}extensionElements"
_FIELD = f"{{{ACTIVITI_NS}}}field"
_DATA_POOL_FIELD, _SUB_PROCESS_FIELD = "value", "param1"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# ElementTree names unknown namespaces ns0, ns1...; these are the prefixes BPMN tools write.
_PREFIXES = {
    "bpmn": BPMN_NS,
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "activiti": ACTIVITI_NS,
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


def process_tasks(bpmn: str) -> list[Task]:
    """The tasks of the BPMN document in document order; PackageRejected if it is unsafe."""
    return _tasks(_parse_bpmn(bpmn, "the BPMN"))


def bind_task(bpmn: str, task_name: str, data_pool: str | None, sub_process: str | None) -> str:
    """The BPMN text with call activity `task_name` bound to a data pool and a sub-process.

    None clears a binding: no field for it, the unbound shape the package ships. ElementTree
    rewrites the text: comments and unused namespace declarations are dropped and prefixes come
    from the registered set, which the lab's export can afford.
    LookupError if the document does not have exactly one call activity of that name.
    """
    root = _parse_bpmn(bpmn, "the BPMN")
    found = [e for e in root.iter(_CALL_ACTIVITY) if e.get("name") == task_name]
    if len(found) != 1:
        raise LookupError(f"the BPMN has {len(found)} call activities named {task_name!r}, not 1")
    task = found[0]
    task.set("calledElement", DYNAMIC_CALL)
    extensions = task.find(_EXTENSIONS)
    if extensions is None:
        extensions = ET.Element(_EXTENSIONS)
        task.insert(0, extensions)  # BPMN puts extensionElements first
    for field in extensions.findall(_FIELD):
        if field.get("name") in (_DATA_POOL_FIELD, _SUB_PROCESS_FIELD):
            extensions.remove(field)
    for name, value in ((_DATA_POOL_FIELD, data_pool), (_SUB_PROCESS_FIELD, sub_process)):
        if value:
            ET.SubElement(extensions, _FIELD, {"name": name, "expression": value})
    if len(extensions) == 0:
        task.remove(extensions)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def read_process(text: str, where: str) -> tuple[str, dict[str, Any]]:
    """The process's name and {"id", "bpmn": text, "tasks": [Task as dict, ...]}.

    PackageRejected, naming `where`, if the text is unsafe or does not hold exactly one
    bpmn:process with an id and a name.
    """
    root = _parse_bpmn(text, where)
    processes = root.findall(f"{{{BPMN_NS}}}process")
    if root.tag != f"{{{BPMN_NS}}}definitions" or len(processes) != 1:
        raise PackageRejected(f"{where} does not hold exactly one bpmn:process")
    process = processes[0]
    if not process.get("id") or not process.get("name"):
        raise PackageRejected(f"{where} has a bpmn:process without an id or a name")
    tasks = [asdict(task) for task in _tasks(root)]
    return process.get("name", ""), {"id": process.get("id"), "bpmn": text, "tasks": tasks}


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
                    data_pool=_field(element, _DATA_POOL_FIELD) if is_call else None,
                    sub_process=_field(element, _SUB_PROCESS_FIELD) if is_call else None,
                )
            )
    return tasks


def _field(activity: ET.Element, name: str) -> str | None:
    for field in activity.iterfind(f"{_EXTENSIONS}/{_FIELD}"):
        if field.get("name") == name:
            return field.get("expression") or None
    return None
