"""CONN-004 without a `ping_url` (docs/checks.md): against the lab CM, as a site for a CM whose REST
API the suite does not know, the check proves the officer certificate by the mutual-TLS handshake
and a first read; it passes, and fails with one finding sentence naming CM's host:port when CM
accepts clients without a certificate, when the officer certificate is not one CM trusts, and when
CM is down. Nothing secret reaches the output or the report."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smartid.lab.faults import FaultSet
from smartid.lab.pki import ServerCredentials
from smartid.lab.state import LabState
from smartid.masking import Secret, find_leaks
from smartid.verify import CheckOutcome, check_catalogue, read_junit
from tests.helpers import ROOT, Run, run_suite
from tests.lab import new_state, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

CATALOGUE = check_catalogue(ROOT / "checks")


@dataclass(frozen=True)
class Lab:
    state: LabState
    folder: Path

    @property
    def port(self) -> int:
        return self.state.ports()["cm"]

    @property
    def password(self) -> str:
        return self.state.secrets()["officer_keystore_password"]


@dataclass(frozen=True)
class Result:
    run: Run
    outcome: CheckOutcome
    allure: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("cm-mtls")
    state = new_state(folder / "lab")
    with running_lab(state):
        yield Lab(state, folder)


def _site(lab: Lab, name: str, keystore: Path) -> Path:
    path = lab.folder / f"{name}.toml"
    path.write_text(
        f"""target = "remote"
[tls]
connect_timeout = 2
read_timeout = 2
[certificate_manager]
url = "{lab.state.endpoints()["cm"]}"
ca_bundle = "{lab.state.pki.ca_bundle}"
officer_keystore = "{keystore}"
officer_keystore_password = {{ env = "OFFICER_PW" }}
""",
        encoding="utf-8",
    )
    return path


def _conn_004(lab: Lab, name: str, keystore: Path | None = None) -> Result:
    site = _site(lab, name, keystore or lab.state.pki.officer.p12)
    junit, allure = lab.folder / f"{name}.xml", lab.folder / f"allure-{name}"
    env = {"OFFICER_PW": lab.password, "SMARTID_STATE": str(lab.folder / f"state-{name}")}
    args = ("-m", "verify", "-k", "CONN-004", f"--site={site}")
    run = run_suite(*args, f"--junitxml={junit}", f"--alluredir={allure}", env=env)
    outcomes = [o for o in read_junit(junit, CATALOGUE) if o.check == "CONN-004"]
    assert len(outcomes) == 1, run.output
    assert "Traceback" not in run.output
    assert lab.password not in run.output
    assert find_leaks(allure, [Secret(lab.password, "officer keystore password")]) == []
    return Result(run, outcomes[0], allure)


def _one_finding(result: Result, lab: Lab, *words: str) -> None:
    outcome = result.outcome
    print(outcome.message)  # shown with -rP
    assert result.run.returncode == 1, result.run.output
    assert outcome.status == "failed", outcome.message
    assert outcome.message.count("[critical]") == 1, outcome.message
    for word in (f"CM localhost:{lab.port}", *words):
        assert word in outcome.message, outcome.message


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _switch(lab: Lab, fault: str, on: bool, *, listener: bool = False) -> None:
    FaultSet(lab.state.path).switch(fault, on)
    if not listener:
        return  # the lab CM reads its client-certificate settings per connection
    deadline = time.monotonic() + 20
    while _answers(lab.port) == on:
        assert time.monotonic() < deadline, f"CM does not show {fault} {'on' if on else 'off'}"
        time.sleep(0.05)


def test_the_handshake_proof_passes_and_attaches_no_secret(lab: Lab) -> None:
    result = _conn_004(lab, "good")
    assert result.run.returncode == 0, result.run.output
    assert result.outcome.status == "passed", result.outcome.message
    attached = "".join(p.read_text(errors="replace") for p in result.allure.glob("*-attachment*"))
    assert '"alert": "certificate_required"' in attached  # TLS 1.3: refused on the first read
    assert '"status_line": "HTTP/1.0 404 Not Found"' in attached


def test_cm_accepting_clients_without_a_certificate_fails(lab: Lab) -> None:
    _switch(lab, "cm-client-auth-not-required", True)
    try:
        result = _conn_004(lab, "optional")
    finally:
        _switch(lab, "cm-client-auth-not-required", False)
    _one_finding(result, lab, "answers 'HTTP/1.0 404 Not Found' to a client without a certificate")


def test_an_officer_certificate_from_another_ca_fails(lab: Lab) -> None:
    pki = lab.state.pki
    foreign = pki.issue_client("foreign-officer", common_name="IDM Officer", issuer="foreign")
    keystore = lab.folder / "foreign-officer.p12"
    keystore.write_bytes(pki.pkcs12(ServerCredentials(foreign.cert, foreign.key), lab.password))
    result = _conn_004(lab, "foreign", keystore)
    _one_finding(result, lab, "refuses the officer certificate", "TLS alert 'unknown_ca'")


def test_cm_down_fails(lab: Lab) -> None:
    _switch(lab, "cm-down", True, listener=True)
    try:
        result = _conn_004(lab, "down")
    finally:
        _switch(lab, "cm-down", False, listener=True)
    _one_finding(result, lab, "connection refused")
