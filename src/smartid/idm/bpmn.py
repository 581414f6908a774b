"""Task bindings read from IDM's BPMN 2.0 process definitions, as a configuration download carries
them (docs/vendor.md).

Nexus's batch-order example binds a task as a call activity whose `calledElement` is the
expression `${processToCall}` and whose attributes are Activiti fields:

    <callActivity id="..." name="Lock related credentials" calledElement="${processToCall}">
      <extensionElements>
        <activiti:field name="value" expression="Batch order"/>
        <activiti:field name="param1" expression="set credential status"/>
      </extensionElements>
    </callActivity>

The field `value` is read as the data pool and `param1` as the sub-process (inferred, not
confirmed by Nexus). IDM 5.0.1 and later may write `flowable:` instead of `activiti:`; a field's
value may be an `expression` or a `stringValue` attribute, or an `expression` or `string` child
element. A call activity without these fields but with a literal `calledElement` is read as bound
to that sub-process with no data pool. A call activity that lacks a field but whose
extensionElements hold something other than activiti:/flowable: fields (another engine's
fields, other Activiti elements) is marked `unread`: its binding may be written in a way the
suite does not read, so a judge must call it "not verifiable" rather than unbound. The document
is untrusted: DTDs, entities and external references are refused, and so are documents larger
or deeper than the bounds below.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

import defusedxml
import defusedxml.ElementTree

__all__ = ["MAX_BPMN_BYTES", "BpmnError", "CallActivity", "ProcessDefinition", "read_process"]

MAX_BPMN_BYTES = 2 * 1024 * 1024
_MAX_DEPTH = 100
_BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_EXTENSIONS = ("http://activiti.org/bpmn", "http://flowable.org/bpmn")
_DATA_POOL_FIELD, _SUB_PROCESS_FIELD = "value", "param1"


class BpmnError(ValueError):
    """A process definition the suite cannot read; one sentence naming the document."""


@dataclass(frozen=True, kw_only=True)
class CallActivity:
    """One call activity and the two attributes the start-up guide sets; None where unset."""

    id: str
    name: str
    data_pool: str | None
    sub_process: str | None
    # What the extensionElements hold besides the fields read, where a field is missing.
    unread: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ProcessDefinition:
    id: str
    name: str
    call_activities: tuple[CallActivity, ...]

    def task(self, name: str) -> CallActivity | None:
        return next((t for t in self.call_activities if t.name == name), None)


def read_process(data: bytes, where: str) -> ProcessDefinition:
    """The one process of a BPMN document; BpmnError naming `where` if it cannot be read."""
    if len(data) > MAX_BPMN_BYTES:
        raise BpmnError(f"{where} is larger than {MAX_BPMN_BYTES} bytes")
    root = _parse(data, where)
    processes = root.findall(f"{{{_BPMN}}}process")
    if root.tag != f"{{{_BPMN}}}definitions" or len(processes) != 1:
        raise BpmnError(f"{where} does not hold exactly one BPMN process")
    process = processes[0]
    process_id, name = process.get("id"), process.get("name")
    if not process_id or not name:
        raise BpmnError(f"{where} has a BPMN process without an id or a name")
    activities = tuple(_call_activity(e) for e in process.iter(f"{{{_BPMN}}}callActivity"))
    return ProcessDefinition(id=process_id, name=name, call_activities=activities)


def _parse(data: bytes, where: str) -> ET.Element:
    try:
        root = defusedxml.ElementTree.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DTDForbidden:
        raise BpmnError(f"{where} has a DOCTYPE; DTDs and entities are refused") from None
    except defusedxml.EntitiesForbidden:
        raise BpmnError(f"{where} declares an entity; entities are refused") from None
    except defusedxml.DefusedXmlException as exc:
        raise BpmnError(f"{where} uses a refused XML feature ({exc})") from None
    except ET.ParseError as exc:
        raise BpmnError(f"{where} is not well-formed XML ({exc})") from None
    depth, level = 0, [root]
    while level:
        depth += 1
        if depth > _MAX_DEPTH:
            raise BpmnError(f"{where} nests elements more than {_MAX_DEPTH} deep")
        level = [child for element in level for child in element]
    return root


def _call_activity(element: ET.Element) -> CallActivity:
    fields = _fields(element)
    called = (element.get("calledElement") or "").strip()
    sub_process = fields.get(_SUB_PROCESS_FIELD)
    if sub_process is None and called and not called.startswith("${"):
        sub_process = called  # a literal calledElement names the sub-process itself
    data_pool = fields.get(_DATA_POOL_FIELD)
    return CallActivity(
        id=element.get("id", ""),
        name=element.get("name", ""),
        data_pool=data_pool,
        sub_process=sub_process,
        unread=_unread(element) if data_pool is None or sub_process is None else (),
    )


def _unread(element: ET.Element) -> tuple[str, ...]:
    """The extension elements other than activiti:/flowable: fields (the fields read, or other
    parameters of the call), named as `{namespace}tag name=...`."""
    extensions = element.find(f"{{{_BPMN}}}extensionElements")
    found: list[str] = []
    for child in extensions if extensions is not None else ():
        namespace, _, tag = child.tag.rpartition("}")
        name = child.get("name")
        if tag == "field" and namespace.lstrip("{") in _EXTENSIONS:
            continue  # read, or another parameter of the same engine's call
        found.append(f"{child.tag}" + (f" name={name!r}" if name else ""))
    return tuple(found[:5])


def _fields(element: ET.Element) -> dict[str, str]:
    """The activiti:/flowable: fields of an activity's extensionElements, by name; empty values
    are left out (an unbound task)."""
    found: dict[str, str] = {}
    extensions = element.find(f"{{{_BPMN}}}extensionElements")
    if extensions is None:
        return found
    for namespace in _EXTENSIONS:
        for field in extensions.findall(f"{{{namespace}}}field"):
            name = field.get("name")
            value = field.get("expression") or field.get("stringValue")
            for child in ("expression", "string"):
                text = field.findtext(f"{{{namespace}}}{child}")
                value = value or (text.strip() if text else None)
            if name and value and name not in found:
                found[name] = value
    return found
