"""The admin contract over real HTTPS, through the suite's IDM client."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartid import errors
from smartid.cm import build_connection_zip
from smartid.cm.connection_zip import PROPERTIES
from smartid.idm import IdmClient
from smartid.lab.state import LabState
from smartid.masking import Secret
from tests.lab import lab_session, new_state, running_lab

pytestmark = pytest.mark.lab

ADMIN_DEFAULT = Secret("admin", "factory default")
GUIDE_POOLS = {"Batch order", "Credentials"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = new_state(tmp_path_factory.mktemp("lab"))
    with running_lab(state):
        with _client(state, ADMIN_DEFAULT) as idm:
            idm.upload_configuration(state.package_file.read_bytes())
        yield state


def _client(state: LabState, password: Secret, user: str = "admin") -> IdmClient:
    return IdmClient(
        state.endpoints()["idm_admin"], user=user, password=password, ca_bundle=state.pki.ca_bundle
    )


@pytest.fixture
def idm(lab: LabState) -> Iterator[IdmClient]:
    with _client(lab, ADMIN_DEFAULT) as client:
        yield client


def test_installed_packages_name_version_and_sha256(idm: IdmClient, lab: LabState) -> None:
    packages = {p.name: p for p in idm.packages()}
    assert set(packages) == {"Users", "SharedCredentials"}
    assert len(packages["SharedCredentials"].sha256) == 64


def test_guide_objects_are_listed(idm: IdmClient) -> None:
    assert {u.name for u in idm.users()} >= {"admin", "hermod"}
    assert idm.user("hermod").has_password is False
    assert idm.certificate_authority("Smart ID Certificate Manager").type == "CM"
    assert idm.messaging_server("Smart ID Messaging").authentication_token_set is False
    assert set(idm.data_pools()) >= GUIDE_POOLS
    assert {"set credential status", "load credential(s)"} <= set(idm.sub_processes())
    lock = idm.process("Lock user")
    task = lock.task("Lock related credentials")
    assert task is not None
    assert (task.data_pool, task.sub_process) == (None, None)


def test_wrong_password_is_401_and_never_echoed(lab: LabState) -> None:
    wrong = Secret("not-the-password-77", "test")
    with _client(lab, wrong) as idm:
        assert idm.login_works() is False
        with pytest.raises(errors.AuthenticationError) as caught:
            idm.packages()
    assert "not-the-password-77" not in str(caught.value)
    assert "401" in str(caught.value)


def test_stale_version_is_409_naming_both_versions(idm: IdmClient) -> None:
    current = idm.certificate_authority("Smart ID Certificate Manager")
    idm.update_certificate_authority(
        current.name, version=current.version, description="first writer"
    )
    with pytest.raises(errors.ConflictError) as caught:
        idm.update_certificate_authority(
            current.name, version=current.version, description="second writer"
        )
    message = str(caught.value)
    assert f"current version {current.version + 1}" in message
    assert f"given version {current.version}" in message


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda c: c.process("Unknown process"), "process 'Unknown process'"),
        (
            lambda c: c.bind_task(
                "Lock user", "No such task", version=1, data_pool=None, sub_process=None
            ),
            "task 'No such task'",
        ),
        (lambda c: c.certificate_authority("Other CA"), "certificate authority 'Other CA'"),
        (lambda c: c.messaging_server("Other"), "messaging server 'Other'"),
        (lambda c: c.user("nobody"), "user 'nobody'"),
    ],
    ids=["process", "task", "ca", "messaging-server", "user"],
)
def test_unknown_object_is_404_naming_it(idm: IdmClient, call: object, named: str) -> None:
    with pytest.raises(errors.NotFoundError, match=named):
        call(idm)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("data_pool", "sub_process", "listed"),
    [
        ("Batch orders", "set credential status", "Batch order, Credentials"),
        ("Batch order", "set status", "load credential(s), set credential status"),
    ],
    ids=["data-pool", "sub-process"],
)
def test_unknown_binding_target_is_422_listing_valid_names(
    idm: IdmClient, data_pool: str, sub_process: str, listed: str
) -> None:
    process = idm.process("Deactivate user")
    with pytest.raises(errors.RejectedError) as caught:
        idm.bind_task(
            process.name,
            "Deactivate related credentials",
            version=process.version,
            data_pool=data_pool,
            sub_process=sub_process,
        )
    assert caught.value.status == 422
    assert listed in str(caught.value)


def test_binding_reads_back(idm: IdmClient) -> None:
    process = idm.process("Reactivate user")
    updated = idm.bind_task(
        process.name,
        "Load related credentials",
        version=process.version,
        data_pool="Credentials",
        sub_process="load credential(s)",
    )
    task = updated.task("Load related credentials")
    assert task is not None
    assert (task.data_pool, task.sub_process) == ("Credentials", "load credential(s)")
    assert updated.version == process.version + 1


def test_truststore_refuses_what_is_not_a_certificate(idm: IdmClient) -> None:
    with pytest.raises(errors.RejectedError, match="not a PEM certificate"):
        idm.add_trust("junk", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----")


def test_truststore_add_list_remove(idm: IdmClient, lab: LabState) -> None:
    pem = lab.pki.root_cert.read_text()
    entry = idm.add_trust("lab-root", pem)
    assert entry.subject.endswith("Smart ID Lab Root CA") or "Smart ID Lab Root CA" in entry.subject
    assert idm.add_trust("lab-root", pem) == entry
    assert "lab-root" in {e.alias for e in idm.truststore()}
    idm.remove_trust("lab-root")
    assert "lab-root" not in {e.alias for e in idm.truststore()}


def _zip_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def _connection_zip(lab: LabState, password: str) -> bytes:
    return build_connection_zip(
        url="https://localhost:1/cm",
        keystore=lab.pki.officer.p12.read_bytes(),
        keystore_password=Secret(password, "test"),
        trust_certs=[lab.pki.ca_bundle.read_bytes()],
    )


def _bad_zip(lab: LabState, case: str) -> bytes:
    if case == "not-a-zip":
        return b"not a zip"
    good = _connection_zip(lab, lab.secrets()["officer_keystore_password"])
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    if case == "traversal":
        entries["../evil.pem"] = b"x"
    elif case == "no-keystore":
        entries = {k: v for k, v in entries.items() if not k.endswith(".p12")}
    elif case == "wrong-password":
        props = entries[PROPERTIES].decode()
        entries[PROPERTIES] = re.sub(
            r"cm.keystore.password=.*", "cm.keystore.password=Wrong-pw-1", props
        ).encode()
    return _zip_with(entries)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("not-a-zip", "not a zip"),
        ("traversal", "../evil.pem"),
        ("no-keystore", "idm-officer.p12"),
        ("wrong-password", "wrong keystore password"),
    ],
)
def test_bad_connection_zip_is_400_and_stores_nothing(
    idm: IdmClient, lab: LabState, case: str, reason: str
) -> None:
    before = idm.certificate_authority("Smart ID Certificate Manager")
    with pytest.raises(errors.RejectedError) as caught:
        idm.upload_connection_zip(before.name, _bad_zip(lab, case), version=before.version)
    assert reason in str(caught.value)
    assert "Wrong-pw-1" not in str(caught.value)
    assert lab.secrets()["officer_keystore_password"] not in str(caught.value)
    assert idm.certificate_authority(before.name) == before


def test_good_connection_zip_is_stored_with_its_fingerprint(idm: IdmClient, lab: LabState) -> None:
    data = _connection_zip(lab, lab.secrets()["officer_keystore_password"])
    before = idm.certificate_authority("Smart ID Certificate Manager")
    after = idm.upload_connection_zip(before.name, data, version=before.version)
    assert after.connection is not None
    assert after.connection.sha256 == hashlib.sha256(data).hexdigest()
    assert after.connection.url == "https://localhost:1/cm"


def test_messaging_token_is_never_returned(idm: IdmClient, lab: LabState) -> None:
    token = Secret("aWRtOmFhYWFhYWFhYWFhYWFhYWE=", "test token")
    server = idm.messaging_server("Smart ID Messaging")
    updated = idm.update_messaging_server(
        server.name, version=server.version, authentication_token=token, lifespan=120
    )
    assert updated.token_matches(token)
    with lab_session(lab) as http:
        raw = http.get(
            f"{lab.endpoints()['idm_admin']}/api/v1/messaging-servers", auth=("admin", "admin")
        ).text
    assert token.reveal() not in raw


def test_admin_changes_own_password_only_with_current_one(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    new = Secret("A-new-password-1", "test")
    with running_lab(state), _client(state, ADMIN_DEFAULT) as idm:
        admin = idm.user("admin")
        with pytest.raises(errors.AuthenticationError, match="403"):
            idm.set_password("admin", new, version=admin.version)
        idm.set_password("admin", new, version=admin.version, current=ADMIN_DEFAULT)
        assert idm.login_works() is False
        with _client(state, new) as renewed:
            assert renewed.login_works() is True


def test_twenty_concurrent_writers_lose_nothing(idm: IdmClient, lab: LabState) -> None:
    name = "Smart ID Certificate Manager"
    start = idm.certificate_authority(name).version
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        with _client(lab, ADMIN_DEFAULT) as own:
            for _ in range(50):
                version = own.certificate_authority(name).version
                try:
                    own.update_certificate_authority(
                        name, version=version, description=f"writer {index}"
                    )
                except errors.ConflictError:
                    with lock:
                        outcomes.append("conflict")
                    continue
                with lock:
                    outcomes.append("landed")
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    landed = outcomes.count("landed")
    assert landed == 20
    assert idm.certificate_authority(name).version == start + landed


def test_openapi_document_describes_the_contract(lab: LabState) -> None:
    with lab_session(lab) as http:
        document = http.get(f"{lab.endpoints()['idm_admin']}/api/v1/openapi.json").json()
    paths = document["paths"]
    assert "/idm-admin/api/v1/processes/{name}/tasks/{task}" in paths
    assert "/idm-admin/ws/deploy/configuration" in paths
