"""The configuration judgements are pure functions over an IDM snapshot, tested from tables
without a lab; the download reader shows the package layout's objects, or None where a download
is in another layout."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from types import MappingProxyType

import pytest

from smartid.idm.export import Configuration, read_configuration
from smartid.idm.models import CAConnection, CertificateAuthority, MessagingServer, Process, Task
from smartid.idm.snapshot import IdmSnapshot, from_configuration
from smartid.site import Binding, CertificateManagerSection, MessagingSection, PackageSection
from smartid.verify.configuration import (
    Gap,
    binding_gaps,
    certificate_authority_gaps,
    gaps_by_source,
    hermod_user_gaps,
    messaging_server_gaps,
    missing_objects,
    package_gaps,
    truststore_gaps,
    unreadable_binding,
)
from smartid.verify.readings import BundleCertificate

CA = CertificateAuthority(
    name="Smart ID Certificate Manager",
    type="CM",
    description="Smart ID Certificate Manager",
    enabled=True,
    connection=CAConnection(url="https://cm:8444", keystore_file="idm.p12", sha256="ab" * 32),
    certificate_types=("Smart ID Signing",),
    version=0,
)
SERVER = MessagingServer(
    name="Smart ID Messaging",
    url="https://hermod:20400/hermod/rest/command",
    lifespan=300,
    authentication_token_set=True,
    authentication_token_sha256="cd" * 32,
    version=0,
)
BOUND = Binding(
    process="Lock user",
    task="Load related credentials",
    data_pool="Credentials",
    sub_process="load credential(s)",
)
PROCESS = Process(
    name="Lock user",
    id="UsersProcLock",
    version=0,
    tasks=(
        Task(
            name="Load related credentials",
            type="callActivity",
            data_pool="Credentials",
            sub_process="load credential(s)",
        ),
    ),
)
CM = CertificateManagerSection(url="https://cm:8444", certificate_types=["Smart ID Signing"])
MESSAGING = MessagingSection.model_validate(
    {"url": "https://hermod:20400/hermod/rest", "hermod_password": {"env": "X"}}
)


def _ca(**changes: object) -> dict[str, CertificateAuthority]:
    return {CA.name: CA.model_copy(update=changes)}


@pytest.mark.parametrize(
    ("cas", "keys"),
    [
        pytest.param(_ca(), [], id="as-declared"),
        pytest.param({}, ["exists"], id="missing"),
        pytest.param(_ca(description="Default CA"), ["description"], id="description"),
        pytest.param(_ca(enabled=False), ["enabled"], id="disabled"),
        pytest.param(_ca(connection=None), ["connection"], id="no-zip"),
        pytest.param(
            _ca(connection=CA.connection.model_copy(update={"url": "https://other"})),  # type: ignore[union-attr]
            ["connection"],
            id="other-cm",
        ),
        pytest.param(_ca(certificate_types=()), ["certificate-types"], id="no-types"),
        pytest.param(
            _ca(description="x", enabled=False), ["description", "enabled"], id="two-at-once"
        ),
    ],
)
def test_certificate_authority(cas: dict[str, CertificateAuthority], keys: list[str]) -> None:
    assert [gap.key for gap in certificate_authority_gaps(cas, CM)] == keys


@pytest.mark.parametrize(
    ("servers", "keys"),
    [
        pytest.param({SERVER.name: SERVER}, [], id="as-declared"),
        pytest.param({}, ["exists"], id="missing"),
        pytest.param({SERVER.name: SERVER.model_copy(update={"url": ""})}, ["url"], id="no-url"),
        pytest.param(
            {SERVER.name: SERVER.model_copy(update={"lifespan": 600})}, ["lifespan"], id="600s"
        ),
    ],
)
def test_messaging_server(servers: dict[str, MessagingServer], keys: list[str]) -> None:
    assert [gap.key for gap in messaging_server_gaps(servers, MESSAGING)] == keys


def test_the_hermod_user_must_exist() -> None:
    assert hermod_user_gaps(frozenset({"hermod", "admin"}), MESSAGING) == []
    (gap,) = hermod_user_gaps(frozenset({"admin"}), MESSAGING)
    assert gap.target == "IDM user 'hermod'"


def _task(**changes: object) -> dict[str, Process]:
    task = PROCESS.tasks[0].model_copy(update=changes)
    return {PROCESS.name: PROCESS.model_copy(update={"tasks": (task,)})}


@pytest.mark.parametrize(
    ("processes", "keys", "observed"),
    [
        pytest.param({PROCESS.name: PROCESS}, [], [], id="bound"),
        pytest.param({}, ["process"], ["the process does not exist"], id="no-process"),
        pytest.param(_task(name="Other"), ["task"], ["the process has no such task"], id="no-task"),
        pytest.param(
            _task(data_pool="Batch order"),
            ["data-pool"],
            ["data pool is 'Batch order'"],
            id="other-pool",
        ),
        pytest.param(
            _task(data_pool=None, sub_process=None),
            ["data-pool", "sub-process"],
            ["data pool is 'none'", "sub-process is 'none'"],
            id="unbound",
        ),
    ],
)
def test_binding(processes: dict[str, Process], keys: list[str], observed: list[str]) -> None:
    gaps = binding_gaps(processes, BOUND)
    assert [g.key for g in gaps] == keys
    assert [g.observed for g in gaps] == observed


@pytest.mark.parametrize(
    ("processes", "unreadable"),
    [
        pytest.param({PROCESS.name: PROCESS}, False, id="bound"),
        pytest.param(_task(data_pool=None, sub_process=None), False, id="unbound"),
        pytest.param(
            _task(data_pool=None, sub_process=None, unread=("{urn:x}field name='value'",)),
            True,
            id="unbound-with-foreign-fields",
        ),
        pytest.param(
            _task(unread=("{urn:x}field name='value'",)), True, id="foreign-fields-marked"
        ),
        pytest.param({}, False, id="no-process"),
    ],
)
def test_a_binding_in_an_encoding_the_suite_does_not_read(
    processes: dict[str, Process], unreadable: bool
) -> None:
    reason = unreadable_binding(processes, BOUND)
    assert (reason is not None) == unreadable
    if reason is not None:
        assert "{urn:x}field name='value'" in reason
        assert "'value' and 'param1'" in reason


ADMIN = "IDM Admin's configuration download (https://idm:8443/idm-admin)"
OPERATOR = "IDM Operator's configuration download (https://idm:8443/idm-operator)"
TASK = "process 'Lock user' task 'Lock related credentials'"
POOL = Gap("data-pool", "data pool is 'none'", "data pool 'Batch order'", TASK)
MISSING = Gap("objects", f"1 of its objects are missing from {OPERATOR}: x", "all", "package P")


@pytest.mark.parametrize(
    ("judged", "targets"),
    [
        pytest.param([], [], id="nothing-judged"),
        pytest.param([(ADMIN, [POOL])], [TASK], id="one-source-unnamed"),
        pytest.param([(ADMIN, []), (OPERATOR, [])], [], id="both-right"),
        pytest.param(
            [(ADMIN, []), (OPERATOR, [POOL])], [f"{TASK}, in {OPERATOR}"], id="operator-wrong"
        ),
        pytest.param(
            [(ADMIN, [POOL]), (OPERATOR, [POOL])],
            [f"{TASK}, in {ADMIN}", f"{TASK}, in {OPERATOR}"],
            id="both-wrong-in-order",
        ),
        pytest.param(
            [(ADMIN, []), (OPERATOR, [MISSING])], ["package P"], id="observation-names-it-already"
        ),
    ],
)
def test_each_gap_names_its_source_where_two_are_judged(
    judged: list[tuple[str, list[Gap]]], targets: list[str]
) -> None:
    gaps = gaps_by_source(judged)
    assert [g.target for g in gaps] == targets
    assert all(g.observed in (POOL.observed, MISSING.observed) for g in gaps)


def test_truststore_names_each_missing_certificate() -> None:
    root, inter = BundleCertificate("CN=Root", "01" * 32), BundleCertificate("CN=Sub", "02" * 32)
    gaps = truststore_gaps(frozenset({"01" * 32}), [root, inter], "hermod-ca.pem")
    assert [g.observed for g in gaps] == ["lacks 'CN=Sub' (sha256 0202020202020202...)"]


def _snapshot(**kinds: object) -> IdmSnapshot:
    fields: dict[str, object] = {
        "source": "the download",
        "packages": None,
        "certificate_authorities": _ca(),
        "messaging_servers": {SERVER.name: SERVER},
        "users": frozenset({"hermod"}),
        "data_pools": frozenset({"Credentials", "Batch order"}),
        "sub_processes": frozenset({"load credential(s)"}),
        "processes": {PROCESS.name: PROCESS},
        "truststore": None,
    }
    fields.update(kinds)
    return IdmSnapshot(**fields)  # type: ignore[arg-type]


PACKAGE = Configuration(
    processes=MappingProxyType({PROCESS.name: PROCESS}),
    sub_processes=frozenset({"load credential(s)"}),
    certificate_authorities=MappingProxyType(_ca()),
    messaging_servers=MappingProxyType({SERVER.name: SERVER}),
    users=frozenset({"hermod"}),
    data_pools=frozenset({"Credentials"}),
)


@pytest.mark.parametrize(
    ("snapshot", "missing"),
    [
        pytest.param(_snapshot(), [], id="all-present"),
        pytest.param(_snapshot(users=frozenset()), ["user 'hermod'"], id="no-hermod"),
        pytest.param(_snapshot(users=None), [], id="users-not-shown-are-not-judged"),
        pytest.param(
            _snapshot(processes={}, data_pools=frozenset()),
            ["data pool 'Credentials'", "process 'Lock user'"],
            id="two-kinds",
        ),
    ],
)
def test_missing_objects(snapshot: IdmSnapshot, missing: list[str]) -> None:
    assert missing_objects(PACKAGE, snapshot) == missing


def test_package_without_a_package_list_is_judged_by_its_objects() -> None:
    declared = PackageSection(name="SharedCredentials")
    arguments = {
        "expected_sha256": "ef" * 32,
        "sha256_source": "x.zip",
        "contents": PACKAGE,
        "contents_source": "x.zip",
    }
    assert package_gaps(_snapshot(), declared, **arguments) == []  # type: ignore[arg-type]
    (gap,) = package_gaps(_snapshot(users=frozenset()), declared, **arguments)  # type: ignore[arg-type]
    assert gap.observed == "1 of its objects are missing from the download: user 'hermod'"
    assert gap.required == "every object of x.zip"


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()


BPMN = b"""<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" targetNamespace="t">
<process id="UsersProcLock" name="Lock user"/></definitions>"""


def test_the_package_layout_shows_objects_and_keeps_only_the_tokens_fingerprint() -> None:
    token = "aWRtOjAxMjM0NTY3ODk="
    data = _zip(
        {
            "META-INF/package.json": b'{"name": "configuration", "version": "export"}',
            "cas/cm.json": json.dumps({"name": CA.name, "description": "d"}).encode(),
            "messaging/m.json": json.dumps(
                {"name": SERVER.name, "url": "u", "lifespan": 60, "authentication_token": token}
            ).encode(),
            "users/hermod.json": b'{"name": "hermod"}',
            "datapools/c.json": b'{"name": "Credentials"}',
            "processes/lock.bpmn20.xml": BPMN,
        }
    )
    snapshot = from_configuration(read_configuration(data, "the download"), "the download")
    assert snapshot.certificate_authorities is not None
    assert snapshot.certificate_authorities[CA.name].description == "d"
    assert snapshot.messaging_servers is not None
    server = snapshot.messaging_servers[SERVER.name]
    assert server.authentication_token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(snapshot)
    assert snapshot.users == frozenset({"hermod"})
    assert snapshot.packages is None
    assert snapshot.truststore is None
    assert snapshot.not_shown("truststore") == "the download does not show IDM's truststore"


def test_another_layout_shows_processes_only() -> None:
    data = _zip({"config/lock.bpmn20.xml": BPMN, "cas/cm.json": b"not json"})
    snapshot = from_configuration(read_configuration(data, "the download"), "the download")
    assert snapshot.processes is not None
    assert "Lock user" in snapshot.processes
    for kind in ("certificate_authorities", "messaging_servers", "users", "data_pools"):
        assert not snapshot.shows(kind)  # type: ignore[arg-type]
