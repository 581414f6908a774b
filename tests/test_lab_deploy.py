"""The lab's Identity Manager deploy API accepts what a real server accepts and refuses the rest."""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from smartid.lab.package import demo_package, read_package
from smartid.lab.state import LabState
from smartid.lab.store import Store
from tests.lab import basic, lab_session, new_state, running_lab

ADMIN = basic("admin", "admin")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = new_state(tmp_path_factory.mktemp("lab"))
    with running_lab(state):
        yield state


@pytest.fixture
def http(lab: LabState) -> Iterator[requests.Session]:
    with lab_session(lab) as session:
        yield session


def _deploy_url(lab: LabState, tenant: int = 1, overwrite: bool = False) -> str:
    url = f"{lab.endpoints()['idm_admin']}/ws/deploy/configuration?tenantId={tenant}"
    return url + "&overwrite=true" if overwrite else url


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries.items():
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
    return buffer.getvalue()


def _package_with(name: str, extra: dict[str, bytes]) -> bytes:
    descriptor = b'{"name": "%s", "version": "1.0.0", "description": "test"}' % name.encode()
    return _zip({"META-INF/package.json": descriptor, **extra})


BPMN_HEAD = (
    b'<?xml version="1.0"?>\n<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">'
)
XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">'
    b'<process id="p" name="&x;"/></definitions>'
)
LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">'
    b'<process id="p" name="&c;"/></definitions>'
)

BAD_UPLOADS = [
    ("not-a-zip", b"this is not a zip file", "not a zip"),
    ("traversal", _package_with("Evil", {"../evil.json": b"{}"}), "../evil.json"),
    ("absolute", _package_with("Evil", {"/etc/evil.json": b"{}"}), "/etc/evil.json"),
    ("zip-bomb", _package_with("Bomb", {"datapools/bomb.json": b"0" * (30 * 1024 * 1024)}), ""),
    ("external-entity", _package_with("Xxe", {"processes/x.bpmn20.xml": XXE}), ""),
    ("entity-expansion", _package_with("Laughs", {"processes/x.bpmn20.xml": LAUGHS}), ""),
    ("missing-descriptor", _zip({"datapools/a.json": b'{"name": "a"}'}), "package.json"),
]


def test_deploy_api_refuses_anonymous(lab: LabState, http: requests.Session) -> None:
    response = http.get(_deploy_url(lab))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_deploy_api_answers_default_admin_on_factory_lab(
    lab: LabState, http: requests.Session
) -> None:
    response = http.get(_deploy_url(lab), headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    exported = read_package(response.content)
    names = {obj.name for obj in exported.objects if obj.kind == "process"}
    assert {"Deactivate user", "Reactivate user", "Lock user"} <= names


@pytest.mark.parametrize(
    ("user", "password"), [("admin", "wrong-password-123"), ("nobody", "admin")]
)
def test_wrong_credentials_get_401_without_echo(
    lab: LabState, http: requests.Session, user: str, password: str
) -> None:
    response = http.get(_deploy_url(lab), headers=basic(user, password))
    assert response.status_code == 401
    assert password not in response.text
    assert user not in response.text


@pytest.mark.parametrize(
    ("body", "reason"), [case[1:] for case in BAD_UPLOADS], ids=[case[0] for case in BAD_UPLOADS]
)
def test_bad_upload_is_400_and_stores_nothing(
    lab: LabState, http: requests.Session, body: bytes, reason: str
) -> None:
    store = Store(lab.database)
    writes, before = store.audit_count(), store.objects(1)
    response = http.post(_deploy_url(lab), data=body, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("package refused: ")
    assert reason in response.json()["detail"]
    assert store.audit_count() == writes
    assert store.objects(1) == before


def test_unknown_tenant_is_400(lab: LabState, http: requests.Session) -> None:
    store = Store(lab.database)
    writes = store.audit_count()
    response = http.post(
        _deploy_url(lab, tenant=77), data=demo_package("shared_credentials"), headers=ADMIN
    )
    assert response.status_code == 400
    assert "unknown tenant 77" in response.json()["detail"]
    assert store.audit_count() == writes


def test_shared_credentials_upload_installs_every_object(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    state = new_state(tmp_path / "lab")
    with running_lab(state):
        http = lab_session(state)
        request.addfinalizer(http.close)
        response = http.post(
            _deploy_url(state), data=demo_package("shared_credentials"), headers=ADMIN
        )
        assert response.status_code == 200, response.text
        exported = read_package(http.get(_deploy_url(state), headers=ADMIN).content)
    kinds = {(obj.kind, obj.name) for obj in exported.objects}
    assert {
        ("ca", "Smart ID Certificate Manager"),
        ("messaging_server", "Smart ID Messaging"),
        ("user", "hermod"),
        ("data_pool", "Batch order"),
        ("data_pool", "Credentials"),
        ("sub_process", "set credential status"),
        ("sub_process", "load credential(s)"),
    } <= kinds
    packages = {p["name"]: p for p in Store(state.database).packages(1)}
    assert (
        packages["SharedCredentials"]["sha256"]
        == read_package(demo_package("shared_credentials")).sha256
    )


def test_oversized_upload_is_refused_before_reading(lab: LabState, http: requests.Session) -> None:
    response = http.post(_deploy_url(lab), data=b"0" * (26 * 1024 * 1024), headers=ADMIN)
    assert response.status_code == 413


def test_the_signed_download_goes_back_up_unchanged(lab: LabState, http: requests.Session) -> None:
    exported = http.get(_deploy_url(lab), headers=ADMIN)
    assert exported.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert names[:2] == ["META-INF/MANIFEST.MF", "META-INF/CONFIGZI.SF"]
    uploaded = http.post(_deploy_url(lab), data=exported.content, headers=ADMIN)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["replaced"] == []
    assert uploaded.json()["created"] == []
    assert http.get(_deploy_url(lab), headers=ADMIN).content == exported.content
