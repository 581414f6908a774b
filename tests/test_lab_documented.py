"""The lab can play an IDM that serves only what Nexus documents (`serve --documented-only`, or a
lab site's `[lab] documented_only = true`): the deploy API in IDM Admin and IDM Operator and the
operator's Hermod callback answer as always, the admin contract answers 404 with Tomcat's HTML
page, and the lab counts requests per path so that a test can show a run made none to it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from smartid.lab.faults import FaultSet
from smartid.lab.probe import serves_documented_only
from smartid.lab.state import LabState
from smartid.lab.store import Store
from smartid.verify import CheckOutcome, check_catalogue, read_junit
from tests.helpers import ROOT, run_suite
from tests.lab import basic, contract_requests, lab_session, new_state, request_counts, running_lab

pytestmark = pytest.mark.lab

LAB_SITE = (ROOT / "sites" / "lab.toml").read_text(encoding="utf-8")


def documented_site(folder: Path, name: str, *, operator_url: str | None = None) -> Path:
    """The lab site with admin_api = "none", for a lab that serves only what Nexus documents,
    without the lab CM's own ping, which a real CM does not offer; IDM Operator's URL is the
    lab's unless one is given."""
    site = folder / f"{name}.toml"
    idm = '[idm]\nadmin_api = "none"\n'
    if operator_url is not None:
        idm += f'operator_url = "{operator_url}"\n'
    text = LAB_SITE.replace("[idm]\n", idm, 1)
    text = "".join(line for line in text.splitlines(True) if not line.startswith("ping_url"))
    site.write_text(text + "\n[lab]\ndocumented_only = true\n", encoding="utf-8")
    return site


@contextmanager
def lock_user_changed(state: LabState, **task: object) -> Iterator[dict[str, Any]]:
    """Lock user's task 'Lock related credentials' changed in the lab's store behind the suite's
    back (a `bpmn` keyword replaces the process's BPMN text instead), restored afterwards."""
    store = Store(state.database)
    lock = store.get(1, "process", "Lock user")
    assert lock is not None
    data = dict(lock.data)
    if "bpmn" in task:
        data["bpmn"] = task.pop("bpmn")
    data["tasks"] = [
        {**t, **task} if t["name"] == "Lock related credentials" else t for t in data["tasks"]
    ]
    with store.write("test", "change", "process 'Lock user'", tenant=1) as db:
        store.update_object(db, 1, "process", "Lock user", data, lock.version)
    try:
        yield data
    finally:
        with store.write("test", "change", "process 'Lock user'", tenant=1) as db:
            now = store.get(1, "process", "Lock user")
            assert now is not None
            store.update_object(db, 1, "process", "Lock user", dict(lock.data), now.version)


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = new_state(tmp_path_factory.mktemp("documented") / "lab")
    with running_lab(state, documented_only=True):
        yield state


def _url(state: LabState, path: str) -> str:
    return f"https://localhost:{state.ports()['idm']}{path}"


def _admin(state: LabState) -> dict[str, str]:
    return basic("admin", "admin")  # factory state: the default password still works


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/idm-admin/api/v1/packages", id="list-packages"),
        pytest.param("GET", "/idm-admin/api/v1/openapi.json", id="openapi"),
        pytest.param("PUT", "/idm-admin/api/v1/users/admin/password", id="set-password"),
        pytest.param("POST", "/idm-admin/api/v1/processes/Lock%20user/tasks", id="bind-task"),
    ],
)
def test_the_admin_contract_answers_404_with_tomcats_html_page(
    documented: LabState, method: str, path: str
) -> None:
    with lab_session(documented) as http:
        answer = http.request(method, _url(documented, path), headers=_admin(documented))
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "HTTP Status 404" in answer.text
    assert "Apache Tomcat" in answer.text


@pytest.mark.parametrize("app", ["idm-admin", "idm-operator"])
def test_the_deploy_api_downloads_the_configuration_in_admin_and_operator(
    documented: LabState, app: str
) -> None:
    url = _url(documented, f"/{app}/ws/deploy/configuration?tenantId=1")
    with lab_session(documented) as http:
        answer = http.get(url, headers=_admin(documented))
        refused = http.get(url, headers=basic("admin", "not-the-password"))
    assert answer.status_code == 200
    assert answer.content.startswith(b"PK")
    assert refused.status_code == 401


def test_a_package_goes_up_through_idm_operators_deploy_api(documented: LabState) -> None:
    url = _url(documented, "/idm-operator/ws/deploy/configuration?tenantId=1")
    with lab_session(documented) as http:
        answer = http.post(
            url, data=documented.package_file.read_bytes(), headers=_admin(documented)
        )
    assert answer.status_code == 200, answer.text


def test_the_hermod_callback_endpoint_demands_the_hermod_user(documented: LabState) -> None:
    with lab_session(documented) as http:
        anonymous = http.post(
            _url(documented, "/idm-operator/ws/hermod/callback/ping"), json={"commandId": "c1"}
        )
    assert anonymous.status_code == 401


def test_requests_are_counted_per_path_the_404s_too(documented: LabState) -> None:
    before = request_counts(documented)
    with lab_session(documented) as http:
        for _ in range(3):
            http.get(_url(documented, "/idm-admin/api/v1/certificate-authorities"))
    after = request_counts(documented)
    path = "/idm-admin/api/v1/certificate-authorities"
    assert after[path] - before.get(path, 0) == 3


def test_the_running_lab_says_which_mode_it_serves(documented: LabState, tmp_path: Path) -> None:
    assert serves_documented_only(documented) is True
    other = new_state(tmp_path / "contract")
    with running_lab(other):
        assert serves_documented_only(other) is False
    assert serves_documented_only(other) is None  # not running


@pytest.mark.e2e
def test_a_verify_run_without_the_contract_makes_no_contract_request(
    documented: LabState, tmp_path: Path
) -> None:
    site = documented_site(tmp_path, "documented")
    before = contract_requests(documented)
    run = run_suite(
        "-m",
        "verify",
        f"--site={site}",
        f"--alluredir={tmp_path / 'allure'}",
        env={"SMARTID_LAB_STATE": str(documented.path), "SMARTID_STATE": str(tmp_path / "s")},
    )
    assert "passed" in run.output, run.output
    assert contract_requests(documented) == before


@pytest.mark.e2e
def test_a_site_that_wants_the_contract_refuses_a_documented_only_lab(
    documented: LabState, tmp_path: Path
) -> None:
    run = run_suite(
        "-m",
        "verify",
        f"--alluredir={tmp_path / 'allure'}",
        env={"SMARTID_LAB_STATE": str(documented.path), "SMARTID_STATE": str(tmp_path / "s")},
    )
    assert run.returncode == 4, run.output
    assert "serves only what Nexus documents, but the site asks for the admin contract" in (
        run.output
    )
    assert "Traceback" not in run.output


@pytest.mark.e2e
def test_setup_without_the_contract_runs_to_the_end_through_the_deploy_api(
    tmp_path: Path,
) -> None:
    """Setup with admin_api = "none" from factory state: exit 0, the package goes up through the
    deploy API, what only the Admin UI can do is listed as manual, no request reaches the
    contract, and a second run uploads nothing."""
    state = new_state(tmp_path / "lab")
    site = documented_site(tmp_path, "documented")
    env = {
        "SMARTID_LAB_STATE": str(state.path),
        "SMARTID_STATE": str(tmp_path / "state"),
        "SMARTID_REPORTS": str(tmp_path / "reports"),
    }
    store = Store(state.database)
    with running_lab(state, documented_only=True):
        factory_writes = store.audit_count()
        planned = run_suite("-m", "setup", "--plan", f"--site={site}", env=env)
        assert planned.returncode == 0, planned.output
        plan = json.loads((tmp_path / "reports" / "plan.json").read_text(encoding="utf-8"))
        assert len(plan["manual"]) == 15, plan
        assert plan["manual"][0]["step"] == "SETUP-101"
        assert "\n15 steps manual: SETUP-101, " in planned.output
        assert store.audit_count() == factory_writes
        first = run_suite("-m", "setup", f"--site={site}", env=env)
        assert first.returncode == 0, first.output
        assert (
            "SETUP-501[Lock user/Lock related credentials] The task is bound to the guide's data "
            "pool and sub-process: manual: "
        ) in first.output
        # Each instruction once: the summary has it, pytest's list of skip reasons does not.
        assert not [
            line for line in first.output.splitlines() if "SKIPPED" in line and "manual" in line
        ]
        assert " 15 manual" in first.output.splitlines()[-1]
        assert "Home > Processes" in first.output
        assert (
            "15 steps manual: SETUP-101, SETUP-302, SETUP-303, SETUP-304, SETUP-305, SETUP-403, "
            "SETUP-404, SETUP-405, SETUP-406, SETUP-501[Deactivate user/Deactivate related "
            "credentials], "
        ) in first.output
        uploads = request_counts(state).get("/idm-admin/ws/deploy/configuration", 0)
        assert store.audit_count() == factory_writes + 1  # the one upload, nothing else
        assert store.get(1, "process", "Lock user") is not None
        assert store.get(1, "data_pool", "Batch order") is not None

        second = run_suite("-m", "setup", f"--site={site}", env=env)
        assert second.returncode == 0, second.output
        assert store.audit_count() == factory_writes + 1  # nothing uploaded again
        assert request_counts(state).get("/idm-admin/ws/deploy/configuration", 0) > uploads
        assert contract_requests(state) == 0


@pytest.mark.e2e
def test_setup_without_the_contract_proves_what_the_administrator_already_did(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """On an IDM whose guide steps are done, setup with admin_api = "none" proves each step the
    download shows (or the deploy API's login, for the hermod user's password) instead of
    listing it as manual; what no documented interface shows stays manual. A binding changed
    behind the suite's back is manual again, with the value IDM holds now."""
    state = set_up_documented
    site = documented_site(tmp_path, "lab")  # the site state of the setup run: its zip, its key
    env = {
        "SMARTID_LAB_STATE": str(state.path),
        "SMARTID_STATE": str(state.path.parent / "s0"),
        "SMARTID_REPORTS": str(tmp_path / "reports"),
    }
    run = run_suite("-m", "setup", f"--site={site}", env=env)
    assert run.returncode == 0, run.output
    summary = run.output.split("Smart ID setup", 1)[1].split("short test summary")[0]
    assert "\n3 steps manual: SETUP-305, SETUP-405, SETUP-406\n" in summary, summary
    for step in ("SETUP-302", "SETUP-303", "SETUP-304", "SETUP-403", "SETUP-404"):
        assert re.search(f"^{step} [^:]+: unchanged\n    ", summary, re.M), summary
    assert "seen in IDM Admin's configuration download (https://" in summary
    assert summary.count("SETUP-501[") == 6
    assert "manual: In IDM Admin open Home > Processes" not in summary
    assert contract_requests(state) == 0

    with lock_user_changed(state, data_pool="Credentials"):
        changed = run_suite("-m", "setup", f"--site={site}", env=env)
    assert changed.returncode == 0, changed.output
    manual = [line for line in changed.output.splitlines() if ": manual: " in line]
    binding = [line for line in manual if line.startswith("SETUP-501")]
    assert len(binding) == 1, changed.output
    assert binding[0].startswith("SETUP-501[Lock user/Lock related credentials] The task is ")
    assert binding[0].endswith("(now: Credentials / set credential status)")


def _verify(
    state: LabState,
    tmp: Path,
    name: str,
    select: str = "task_bound",
    *,
    operator_url: str | None = None,
) -> tuple[str, list[CheckOutcome]]:
    site = documented_site(tmp, name, operator_url=operator_url)
    junit = tmp / f"{name}-junit.xml"
    run = run_suite(
        "-m",
        "verify",
        f"--site={site}",
        f"--junitxml={junit}",
        f"--alluredir={tmp / f'{name}-allure'}",
        *(("-k", select) if select else ()),
        env={"SMARTID_LAB_STATE": str(state.path), "SMARTID_STATE": str(tmp / "state")},
    )
    assert junit.exists(), run.output
    return run.output, read_junit(junit, check_catalogue(ROOT / "checks"))


@pytest.fixture(scope="module")
def set_up_documented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    """A lab set up through the contract, then serving only what Nexus documents."""
    folder = tmp_path_factory.mktemp("set-up-documented")
    state = new_state(folder / "lab")
    with running_lab(state):
        setup = run_suite(
            "-m",
            "setup",
            f"--alluredir={folder / 'setup-allure'}",
            env={"SMARTID_LAB_STATE": str(state.path), "SMARTID_STATE": str(folder / "s0")},
        )
        assert setup.returncode == 0, setup.output
    with running_lab(state, documented_only=True):
        yield state


@pytest.mark.e2e
def test_a_whole_verify_run_without_the_contract_judges_what_the_download_shows(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """What the download shows is judged, the rest says why not, and nothing fails."""
    state = set_up_documented
    output, outcomes = _verify(state, tmp_path, "all", select="")
    status = {o.label: o.status for o in outcomes}
    for check in (
        "CONF-001",
        "CONF-002",
        "CONF-003",
        "CONF-006",
        "AUTH-004",
        "DRIFT-001",
        "CONN-002",
        "CONN-004",  # by CM's mutual TLS: the documented site names no ping_url
    ):
        assert status[check] == "passed", output
    skipped = {o.label: o.message for o in outcomes if o.status == "skipped"}
    assert "does not show IDM's truststore; add the evidence by hand" in skipped["CONF-005"]
    assert 'admin_api = "none"' in skipped["CONN-005"]
    assert not [o.label for o in outcomes if o.status == "failed"], output
    assert contract_requests(state) == 0


@pytest.mark.e2e
def test_verify_without_the_contract_checks_the_six_bindings_from_the_download(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """The six bindings are read from the configuration download and pass, no request reaches
    the contract, and a binding changed behind the suite's back fails exactly its case."""
    state = set_up_documented
    output, outcomes = _verify(state, tmp_path, "bound")
    assert [o.status for o in outcomes] == ["passed"] * 6, output
    assert contract_requests(state) == 0
    saved = list(Path(tmp_path / "state").rglob("idm-configuration.zip"))
    assert len(saved) == 1
    assert saved[0].stat().st_mode & 0o777 == 0o600

    with lock_user_changed(state, data_pool="Credentials"):
        output, outcomes = _verify(state, tmp_path, "changed")
    failed = [o.label for o in outcomes if o.status == "failed"]
    assert failed == ["CONF-004[Lock user/Lock related credentials]"], output
    assert "data pool is 'Credentials'" in output


CAMUNDA_FIELDS = (
    '<bpmn:extensionElements xmlns:camunda="http://camunda.org/schema/1.0/bpmn">'
    '<camunda:field name="value" expression="Batch order"/>'
    '<camunda:field name="param1" expression="set credential status"/>'
    "</bpmn:extensionElements>"
)


@pytest.mark.e2e
def test_a_binding_the_download_writes_in_another_encoding_is_not_verifiable(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """A task whose BPMN carries another engine's fields instead of the activiti:/flowable:
    ones is neither passed nor failed as unbound: its case says "not verifiable" and why."""
    state = set_up_documented
    lock = Store(state.database).get(1, "process", "Lock user")
    assert lock is not None
    call = 'name="Lock related credentials" calledElement="${processToCall}"'
    assert f"{call}/>" in lock.data["bpmn"]
    foreign = lock.data["bpmn"].replace(f"{call}/>", f"{call}>{CAMUNDA_FIELDS}</bpmn:callActivity>")
    with lock_user_changed(state, bpmn=foreign, data_pool=None, sub_process=None):
        output, outcomes = _verify(state, tmp_path, "foreign")
    status = {o.label: (o.status, o.message or "") for o in outcomes}
    case = "CONF-004[Lock user/Lock related credentials]"
    assert status[case][0] == "skipped", output
    assert "not verifiable" in status[case][1]
    assert "camunda.org" in status[case][1]
    others = [s for label, (s, _) in status.items() if label != case]
    assert others == ["passed"] * 5, output


@pytest.mark.e2e
def test_verify_without_the_contract_checks_the_downloads_signature(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """CONF-006 needs only the documented download: it passes, makes no contract request, and
    fails naming the signer's expiry when the export is signed by an expired signer."""
    state = set_up_documented
    output, outcomes = _verify(state, tmp_path, "signed", "CONF-006")
    assert [(o.label, o.status) for o in outcomes] == [("CONF-006", "passed")], output
    assert contract_requests(state) == 0
    faults = FaultSet(state.path)
    faults.switch("idm-config-signer-expired", True)
    try:
        output, outcomes = _verify(state, tmp_path, "expired", "CONF-006")
    finally:
        faults.switch("idm-config-signer-expired", False)
    assert [(o.label, o.status) for o in outcomes] == [("CONF-006", "failed")], output
    assert "the signer 'CN=Smart ID Lab Config Zip Signer' expired on" in outcomes[0].message


ADMIN_DOWNLOAD = "/idm-admin/ws/deploy/configuration"
OPERATOR_DOWNLOAD = "/idm-operator/ws/deploy/configuration"
PACKAGE_AND_BINDINGS = "CONF-001 or task_bound"


def _downloads(before: dict[str, int], after: dict[str, int], path: str) -> int:
    return after.get(path, 0) - before.get(path, 0)


@pytest.mark.e2e
def test_verify_without_the_contract_judges_idm_operators_download_too(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """With IDM Operator's URL (the lab site has the lab's), the package and the six bindings
    are judged in IDM Operator's download as well as in IDM Admin's and pass; each download is
    fetched once per run, no request reaches the contract, and Operator's zip is kept 0600 under
    its own name. A binding that has not reached Operator fails its case alone, naming IDM
    Operator's download and not IDM Admin's."""
    state = set_up_documented
    before = request_counts(state)
    output, outcomes = _verify(state, tmp_path, "operator", PACKAGE_AND_BINDINGS)
    after = request_counts(state)
    assert [o.status for o in outcomes] == ["passed"] * 7, output
    assert _downloads(before, after, ADMIN_DOWNLOAD) == 1
    assert _downloads(before, after, OPERATOR_DOWNLOAD) == 1
    assert contract_requests(state) == 0
    saved = list(Path(tmp_path / "state").rglob("idm-operator-configuration.zip"))
    assert len(saved) == 1
    assert saved[0].stat().st_mode & 0o777 == 0o600

    faults = FaultSet(state.path)
    faults.switch("idm-operator-stale-configuration", True)
    try:
        output, outcomes = _verify(state, tmp_path, "stale", PACKAGE_AND_BINDINGS)
    finally:
        faults.switch("idm-operator-stale-configuration", False)
    failed = [o for o in outcomes if o.status == "failed"]
    assert [o.label for o in failed] == ["CONF-004[Lock user/Lock related credentials]"], output
    message = failed[0].message
    assert (
        "task 'Lock related credentials', in IDM Operator's configuration download (https://"
        in (message)
    )
    assert "data pool is 'none'" in message
    assert "sub-process is 'none'" in message
    assert "IDM Admin" not in message


@pytest.mark.e2e
def test_a_failed_read_of_idm_operators_download_is_one_sentence_and_one_request(
    set_up_documented: LabState, tmp_path: Path
) -> None:
    """An IDM Operator whose download answers 404 fails CONF-001 and every binding with one
    sentence naming Operator's URL, no traceback, and the failed download is asked once per run,
    not once per check."""
    state = set_up_documented
    url = f"https://localhost:{state.ports()['idm']}/idm-nowhere"
    path = "/idm-nowhere/ws/deploy/configuration"
    before = request_counts(state)
    output, outcomes = _verify(state, tmp_path, "nowhere", PACKAGE_AND_BINDINGS, operator_url=url)
    after = request_counts(state)
    assert [o.status for o in outcomes] == ["failed"] * 7, output
    sentence = (
        f"IDM Operator's configuration download ({url}): the download failed: "
        f"GET {url}/ws/deploy/configuration: HTTP 404"
    )
    for outcome in outcomes:
        assert sentence in outcome.message, outcome.message
    assert "Traceback" not in output
    assert _downloads(before, after, path) == 1
    assert _downloads(before, after, ADMIN_DOWNLOAD) == 1
