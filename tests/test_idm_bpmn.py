"""Task bindings are read from BPMN as Nexus's batch-order example writes them: a call activity
with `calledElement="${processToCall}"` and Activiti fields `value` (the data pool) and `param1`
(the sub-process); `flowable:` as well as `activiti:`, `stringValue` as well as `expression`, child
elements too. A document without the fields reads as unbound; an unsafe one is refused."""

from __future__ import annotations

import io
import zipfile

import pytest

from smartid.idm.bpmn import MAX_BPMN_BYTES, BpmnError, CallActivity, read_process
from smartid.idm.export import NotVerifiable, read_configuration

ACTIVITI = "http://activiti.org/bpmn"
FLOWABLE = "http://flowable.org/bpmn"


def _document(activity: str, *, prefix: str = "activiti", namespace: str = ACTIVITI) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:{prefix}="{namespace}" targetNamespace="urn:test">
  <process id="UsersProcLock" name="Lock user" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="selectReason" name="Select reason"/>
    {activity}
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


def _bound(prefix: str, first: str, second: str) -> str:
    return f"""<callActivity id="lockRelated" name="Lock related credentials"
        calledElement="${{processToCall}}" {prefix}:async="true">
      <extensionElements>
        {first}
        {second}
      </extensionElements>
    </callActivity>"""


BATCH = "Batch order"
STATUS = "set credential status"


@pytest.mark.parametrize(
    ("extensions", "unread"),
    [
        pytest.param(
            '<camunda:field name="value" expression="Batch order"/>'
            '<camunda:field name="param1" expression="set credential status"/>',
            (
                "{http://camunda.org/schema/1.0/bpmn}field name='value'",
                "{http://camunda.org/schema/1.0/bpmn}field name='param1'",
            ),
            id="another-engines-fields",
        ),
        pytest.param(
            '<activiti:in source="pool" target="value"/>',
            ("{http://activiti.org/bpmn}in",),
            id="activiti-in-parameters",
        ),
        pytest.param(
            '<activiti:field name="value" expression="Batch order"/>'
            '<activiti:field name="param1" expression="set credential status"/>'
            '<activiti:executionListener event="start"/>',
            (),
            id="bound-the-rest-is-not-asked",
        ),
        pytest.param('<activiti:field name="param2" expression="x"/>', (), id="other-field"),
    ],
)
def test_a_binding_written_in_a_way_the_suite_does_not_read_is_marked_unread(
    extensions: str, unread: tuple[str, ...]
) -> None:
    document = _document(
        '<callActivity id="lockRelated" name="Lock related credentials" '
        'calledElement="${processToCall}" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
        f'xmlns:activiti="http://activiti.org/bpmn"><extensionElements>{extensions}'
        "</extensionElements></callActivity>"
    )
    task = read_process(document, "lock-user.bpmn20.xml").task("Lock related credentials")
    assert task is not None
    assert task.unread == unread


@pytest.mark.parametrize(
    ("document", "data_pool", "sub_process"),
    [
        pytest.param(
            _document(
                _bound(
                    "activiti",
                    f'<activiti:field name="value" expression="{BATCH}"/>',
                    f'<activiti:field name="param1" expression="{STATUS}"/>',
                )
            ),
            BATCH,
            STATUS,
            id="vendor-example-activiti-expression",
        ),
        pytest.param(
            _document(
                _bound(
                    "flowable",
                    f'<flowable:field name="value" stringValue="{BATCH}"/>',
                    f'<flowable:field name="param1" stringValue="{STATUS}"/>',
                ),
                prefix="flowable",
                namespace=FLOWABLE,
            ),
            BATCH,
            STATUS,
            id="flowable-string-value",
        ),
        pytest.param(
            _document(
                _bound(
                    "activiti",
                    f'<activiti:field name="value"><activiti:string>{BATCH}</activiti:string>'
                    "</activiti:field>",
                    f'<activiti:field name="param1"><activiti:expression> {STATUS} '
                    "</activiti:expression></activiti:field>",
                )
            ),
            BATCH,
            STATUS,
            id="child-elements",
        ),
        pytest.param(
            _document(
                '<callActivity id="lockRelated" name="Lock related credentials" '
                'calledElement="${processToCall}"/>'
            ),
            None,
            None,
            id="no-fields-unbound",
        ),
        pytest.param(
            _document(
                _bound(
                    "activiti",
                    '<activiti:field name="value" expression=""/>',
                    '<activiti:field name="other" expression="x"/>',
                )
            ),
            None,
            None,
            id="empty-and-unknown-fields-unbound",
        ),
        pytest.param(
            _document(
                '<callActivity id="lockRelated" name="Lock related credentials" '
                f'calledElement="{STATUS}"/>'
            ),
            None,
            STATUS,
            id="literal-called-element",
        ),
    ],
)
def test_a_call_activitys_binding_is_read(
    document: bytes, data_pool: str | None, sub_process: str | None
) -> None:
    process = read_process(document, "processes/lock-user.bpmn20.xml")
    assert process.id == "UsersProcLock"
    assert process.name == "Lock user"
    assert process.task("Lock related credentials") == CallActivity(
        id="lockRelated",
        name="Lock related credentials",
        data_pool=data_pool,
        sub_process=sub_process,
    )
    assert process.task("Select reason") is None  # a user task is not a binding


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><d>&e;</d>',
            "DOCTYPE",
            id="dtd-and-entity",
        ),
        pytest.param(b"<definitions", "not well-formed", id="not-xml"),
        pytest.param(
            b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>',
            "exactly one BPMN process",
            id="no-process",
        ),
        pytest.param(
            b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">'
            b'<process id="p"/></definitions>',
            "without an id or a name",
            id="process-without-name",
        ),
        pytest.param(b"<a>" * 150 + b"</a>" * 150, "more than 100 deep", id="too-deep"),
        pytest.param(b" " * (MAX_BPMN_BYTES + 1), "larger than", id="too-large"),
    ],
)
def test_an_unreadable_process_is_one_sentence_naming_the_document(
    document: bytes, problem: str
) -> None:
    with pytest.raises(BpmnError) as caught:
        read_process(document, "processes/x.bpmn20.xml")
    assert "processes/x.bpmn20.xml" in str(caught.value)
    assert problem in str(caught.value)


def test_the_labs_bound_process_reads_back_through_the_suites_own_reader() -> None:
    """The lab writes bindings with its own code (smartid.lab.bpmn) and the suite reads them with
    its own (smartid.idm.bpmn): the two meet only in Nexus's documented form."""
    from smartid.lab.bpmn import bind_task
    from smartid.lab.package import demo_package, read_package

    shipped = read_package(demo_package("shared_credentials")).named("process", "Lock user")
    assert shipped is not None
    bpmn = bind_task(shipped.data["bpmn"], "Lock related credentials", BATCH, STATUS)
    bpmn = bind_task(bpmn, "Load related credentials", "Credentials", None)
    process = read_process(bpmn.encode(), "Lock user")
    assert process.task("Lock related credentials") == CallActivity(
        id="lockRelatedCredentials",
        name="Lock related credentials",
        data_pool=BATCH,
        sub_process=STATUS,
    )
    load = process.task("Load related credentials")
    assert load is not None
    assert (load.data_pool, load.sub_process) == ("Credentials", None)
    unbound = read_process(shipped.data["bpmn"].encode(), "Lock user")
    assert all(t.data_pool is None and t.sub_process is None for t in unbound.call_activities)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


LOCK = _document(
    _bound(
        "activiti",
        f'<activiti:field name="value" expression="{BATCH}"/>',
        f'<activiti:field name="param1" expression="{STATUS}"/>',
    )
)


def test_the_download_gives_its_processes_by_name_whatever_the_folders() -> None:
    data = _zip({"META-INF/MANIFEST.MF": b"x", "any/where/lock.bpmn20.xml": LOCK, "a.json": b"{}"})
    configuration = read_configuration(data, "the download")
    task = configuration.processes["Lock user"].task("Lock related credentials")
    assert task is not None
    assert (task.data_pool, task.sub_process) == (BATCH, STATUS)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"not a zip", "is not a zip file", id="not-a-zip"),
        pytest.param(_zip({"cas/ca.json": b"{}"}), "holds no BPMN process", id="no-bpmn"),
        pytest.param(_zip({"a.bpmn20.xml": LOCK, "b.bpmn": LOCK}), "'Lock user' twice", id="twice"),
        pytest.param(
            _zip({"p.bpmn20.xml": b'<!DOCTYPE d [<!ENTITY e "x">]><d>&e;</d>'}),
            "entry 'p.bpmn20.xml' has a DOCTYPE",
            id="dtd",
        ),
        pytest.param(_zip({"../p.bpmn": LOCK}), "leaves the folder", id="traversal"),
    ],
)
def test_a_download_the_suite_cannot_read_is_not_verifiable(data: bytes, problem: str) -> None:
    with pytest.raises(NotVerifiable) as caught:
        read_configuration(data, "the download")
    assert problem in str(caught.value)
