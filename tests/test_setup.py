"""`pytest -m setup` against the lab: the plan, the run, the re-run, and what stops it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import ClassVar

import pytest

from smartid.cm.connection_zip import PROPERTIES, pkcs12_encryption
from smartid.hermod import merge_client, parse_clients
from smartid.lab.faults import FaultSet
from smartid.lab.store import Store
from tests.helpers import ROOT, Run
from tests.lab import new_state, refresh_hermod, request_counts, running_lab
from tests.setuprun import LAB_SITE, Lab, summary

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

GUIDE_STEPS = 22


DEPLOY_PATH = "/idm-admin/ws/deploy/configuration"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    state = new_state(tmp_path / "lab")
    with running_lab(state):
        yield Lab(state, tmp_path)


def test_plan_on_factory_lab_lists_every_change_and_writes_nothing(lab: Lab) -> None:
    before = lab.writes()
    run = lab.run("--plan")
    assert run.returncode == 0, run.output
    assert lab.writes() == before
    assert not any((lab.tmp / "site-state").rglob("*.*")), "plan wrote to the site state"
    changes = lab.plan()["changes"]
    assert isinstance(changes, list)
    objects = {(c["step"].split("[")[0], c["object"], c["field"]) for c in changes}
    expected_steps = {
        "SETUP-101",
        "SETUP-201",
        "SETUP-302",
        "SETUP-303",
        "SETUP-304",
        "SETUP-401",
        "SETUP-402",
        "SETUP-403",
        "SETUP-404",
        "SETUP-405",
        "SETUP-501",
    }
    assert expected_steps <= {step for step, _, _ in objects}
    bindings = [c for c in changes if c["step"].startswith("SETUP-501")]
    assert len(bindings) == 6
    assert all(set(c) == {"step", "object", "field", "action", "old", "new"} for c in changes)
    for secret in lab.state.secrets().values():
        assert secret not in (lab.tmp / "reports" / "plan.json").read_text()


def test_plan_fail_on_changes_exits_1_while_changes_are_pending(lab: Lab) -> None:
    assert lab.run("--plan", "--plan-fail-on-changes").returncode == 1
    assert lab.run().returncode == 0
    assert lab.run("--plan", "--plan-fail-on-changes").returncode == 0


def test_setup_passes_then_a_second_run_writes_nothing(lab: Lab) -> None:
    first = lab.run()
    assert first.returncode == 0, first.output
    assert f"{GUIDE_STEPS} passed" in first.output
    writes = lab.writes()
    second = lab.run()
    assert second.returncode == 0, second.output
    assert lab.writes() == writes, "the second run wrote to IDM"
    outcomes = summary(second)
    assert len(outcomes) == GUIDE_STEPS
    assert set(outcomes.values()) == {"unchanged"}


def test_wrong_admin_password_stops_early_and_writes_nothing(lab: Lab) -> None:
    assert lab.run().returncode == 0
    wrong = lab.tmp / "wrong.json"
    wrong.write_text(json.dumps({"admin_password": "Not-the-password-42"}))
    site = lab.site(
        LAB_SITE.replace(
            'admin_password = { file = "{lab_state}/secrets.json", key = "admin_password" }',
            f'admin_password = {{ file = "{wrong}", key = "admin_password" }}',
        )
    )
    writes = lab.writes()
    run = lab.run(site=site)
    assert run.returncode == 1
    assert lab.writes() == writes
    assert "refuses user 'admin' with the site's password and with the default password" in (
        run.output
    )
    assert "Traceback" not in run.output
    assert "Not-the-password-42" not in run.output
    assert "blocked by SETUP-002" in run.output


def test_missing_package_file_is_a_site_error(lab: Lab) -> None:
    site = lab.site(
        LAB_SITE.replace(
            'name = "SharedCredentials"', 'name = "SharedCredentials"\npath = "nowhere.zip"'
        )
    )
    run = lab.run(site=site)
    assert run.returncode == 4
    assert "package.path" in run.output
    assert "nowhere.zip does not exist" in run.output


def _zip_of(entries: dict[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def _demo_with(extra: dict[str | zipfile.ZipInfo, bytes], drop: str = "") -> Callable[[Lab], bytes]:
    def build(lab: Lab) -> bytes:
        with zipfile.ZipFile(lab.state.package_file) as archive:
            entries: dict[str | zipfile.ZipInfo, bytes] = {
                n: archive.read(n) for n in archive.namelist() if n != drop
            }
        return _zip_of({**entries, **extra})

    return build


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


BAD_PACKAGES = [
    pytest.param(
        lambda lab: b"PK\x03\x04 this is not really a zip",
        "the package file is not a zip file",
        id="not-a-zip",
    ),
    pytest.param(
        _demo_with({"datapools/zeros.json": bytes(40 * 1024 * 1024)}),
        "entry 'datapools/zeros.json' expands to more than",
        id="zip-bomb",
    ),
    pytest.param(
        _demo_with({"../../etc/evil.json": b"{}"}),
        "entry '../../etc/evil.json' leaves the folder it is unpacked into",
        id="traversal",
    ),
    pytest.param(
        _demo_with({_link("users/root.json"): b"/etc/passwd"}),
        "entry 'users/root.json' is a symbolic link",
        id="symlink",
    ),
    pytest.param(
        _demo_with({}, drop="META-INF/package.json"),
        "has no META-INF/package.json",
        id="no-descriptor",
    ),
    pytest.param(
        _demo_with(
            {
                "processes/evil.bpmn20.xml": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x '
                b'SYSTEM "file:///etc/passwd">]><definitions>&x;</definitions>'
            }
        ),
        "entry 'processes/evil.bpmn20.xml' has a DOCTYPE; DTDs and entities are refused",
        id="bpmn-entity",
    ),
]


@pytest.mark.parametrize(("build", "reason"), BAD_PACKAGES)
def test_a_bad_package_fails_its_step_with_the_reason_and_nothing_is_uploaded(
    lab: Lab, build: Callable[[Lab], bytes], reason: str
) -> None:
    bad = lab.tmp / "SharedCredentials.zip"
    bad.write_bytes(build(lab))
    site = lab.site(
        LAB_SITE.replace(
            'name = "SharedCredentials"', f'name = "SharedCredentials"\npath = "{bad}"'
        )
    )
    store = Store(lab.state.database)
    # The lab counts requests per path, whatever the method: what the steps before SETUP-201
    # send to the deploy path (SETUP-001 probes it) is measured by running them alone.
    before = request_counts(lab.state).get(DEPLOY_PATH, 0)
    assert lab.run("-k", "test_00 or test_01", site=site).returncode == 0
    uploads = 2 * request_counts(lab.state).get(DEPLOY_PATH, 0) - before
    started = time.monotonic()
    run = lab.run(site=site)
    assert time.monotonic() - started < 60
    assert run.returncode == 1, run.output
    assert f"SETUP-201: {bad}: {reason}" in run.output
    assert "Traceback" not in run.output
    assert "blocked by SETUP-201" in run.output
    assert request_counts(lab.state).get(DEPLOY_PATH, 0) == uploads
    assert "SharedCredentials" not in {p["name"] for p in store.packages(1)}


def test_officer_keystore_with_wrong_password_fails_the_ca_step(lab: Lab) -> None:
    wrong = lab.tmp / "wrong.json"
    wrong.write_text(json.dumps({"pw": "Wrong-keystore-pw-7"}))
    site = lab.site(
        LAB_SITE.replace(
            'officer_keystore_password = { file = "{lab_state}/secrets.json", '
            'key = "officer_keystore_password" }',
            f'officer_keystore_password = {{ file = "{wrong}", key = "pw" }}',
        )
    )
    run = lab.run(site=site)
    assert run.returncode == 1
    assert "wrong keystore password" in run.output
    assert "blocked by SETUP-301" in run.output
    assert "Wrong-keystore-pw-7" not in run.output


@pytest.mark.parametrize(
    ("fault", "observed"),
    [
        ("hermod-down", "connection refused"),
        ("hermod-cert-untrusted", "certificate verification failed"),
    ],
)
def test_hermod_fault_fails_the_step_that_meets_it(lab: Lab, fault: str, observed: str) -> None:
    """The key is made without Hermod (SETUP-401); the first step that meets Hermod is the
    refresh after application.yml is written (SETUP-402), which fails with one sentence naming
    the refresh URL and what it saw, and the steps after it are blocked."""
    FaultSet(lab.state.path).switch(fault, True)
    time.sleep(1)
    run = lab.run()
    assert run.returncode == 1
    url = f"{lab.state.endpoints()['hermod']}/util/refresh"
    [failure] = [line for line in run.output.splitlines() if line.startswith("SETUP-402: H")]
    assert failure.startswith(f"SETUP-402: Hermod refresh URL {url}: ")
    assert observed in failure
    outcomes = summary(run)
    assert outcomes["SETUP-401"] == "changed"
    assert outcomes["SETUP-402"] == "failed"
    later = [outcome for step, outcome in outcomes.items() if step > "SETUP-402"]
    assert later
    assert all(outcome == "blocked by SETUP-402" for outcome in later), later
    assert "blocked by SETUP-402" in run.output
    assert "Traceback" not in run.output


def test_interrupted_run_converges(lab: Lab) -> None:
    """The process is killed right after the CA step's upload; a normal run then finishes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    env.update(lab.env)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-m", "setup"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = Store(lab.state.database)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(r.action == "upload" for r in store.audit()):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    bindings = {r.object for r in store.audit() if r.object.startswith("process")}
    assert not bindings, "the run was not interrupted before the process step"
    run = lab.run()
    assert run.returncode == 0, run.output
    again = lab.run()
    assert again.returncode == 0, again.output
    assert set(summary(again).values()) == {"unchanged"}


def test_without_admin_contract_steps_are_manual_and_the_run_carries_on(lab: Lab) -> None:
    site = lab.site(LAB_SITE.replace("[idm]\n", '[idm]\nadmin_api = "none"\n'))
    run = lab.run(site=site)
    assert run.returncode == 0, run.output
    outcomes = summary(run)
    manual = [step for step, outcome in outcomes.items() if outcome.startswith("manual")]
    assert "SETUP-101" in {step.split("[")[0] for step in manual}
    assert "Home > User Administration" in run.output
    assert "Lock related credentials" in run.output


def test_without_application_yml_the_section_is_written_and_the_round_trip_decides(
    lab: Lab,
) -> None:
    site = lab.site(
        LAB_SITE.replace('application_yml = "{lab_state}/hermod/application.yml"\n', "")
    )
    run = lab.run(site=site)
    assert run.returncode == 1
    assert "SETUP-406" in run.output
    section = lab.tmp / "site-state" / "variant" / "hermod-client-section.yml"
    assert section.stat().st_mode & 0o777 == 0o600
    assert "Paste" in run.output
    text = section.read_text()
    wrapped = "allowed-clients:\n" + "".join(f"  {line}\n" for line in text.splitlines())
    client = parse_clients(wrapped)[0]
    config = lab.state.hermod_config
    config.write_text(merge_client(config.read_text(), client))
    refresh_hermod(lab.state)
    again = lab.run(site=site)
    assert again.returncode == 0, again.output


def test_legacy_pkcs12_encryption_for_older_java(lab: Lab) -> None:
    site = lab.site(
        LAB_SITE.replace(
            'ca_name = "Smart ID Certificate Manager"\n',
            'ca_name = "Smart ID Certificate Manager"\npkcs12_encryption = "legacy"\n',
        )
    )
    assert lab.run(site=site).returncode == 0
    data = (lab.tmp / "site-state" / "variant" / "cm-connection.zip").read_bytes()
    with zipfile.ZipFile(BytesIO(data)) as archive:
        properties = archive.read(PROPERTIES).decode()
        keystore_name = re.search(r"cm.keystore.file=(\S+)", properties)
        assert keystore_name is not None
        assert pkcs12_encryption(archive.read(keystore_name.group(1))) == "legacy"


class _GenerateClientPage(BaseHTTPRequestHandler):
    """Hermod's generateclient page as the vendor documents it: plain HTTP on the Hermod host."""

    KEY = "ab" * 32
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        client_id = self.path.rsplit("/", 1)[-1]
        body = (
            f"# X-Api-Key: not-used\n- client-id: {client_id}\n  key: {self.KEY}\n"
            "  callback-url: http://localhost:20400/hermod/rest\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _key_step(lab: Lab, site_tail: str) -> tuple[Run, str]:
    site = lab.site(LAB_SITE.replace("[messaging]\n", f"[messaging]\n{site_tail}", 1))
    done = lab.run("-k", "test_hermod_client_key_exists", site=site)
    assert done.returncode == 0, done.output
    key_file = lab.tmp / "site-state" / "variant" / "hermod-client.key"
    return done, key_file.read_text()


def test_a_missing_hermod_key_is_made_locally_as_generateclient_makes_one(lab: Lab) -> None:
    _, key = _key_step(lab, "")
    assert re.fullmatch(r"[0-9a-f]{64}", key)


def test_a_site_may_name_hermods_generateclient_page_on_the_hermod_host(lab: Lab) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GenerateClientPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = f"http://127.0.0.1:{server.server_port}/hermod/rest/util/generateclient"
        _, key = _key_step(lab, f'generateclient_url = "{page}"\n')
    finally:
        server.shutdown()
        server.server_close()
    assert key == _GenerateClientPage.KEY
    assert _GenerateClientPage.asked == ["/hermod/rest/util/generateclient/idm"]
