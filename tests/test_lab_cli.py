"""`smartid-lab` serve, status and reset; the suite starting the lab; durability under SIGKILL."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography import x509

from smartid.errors import SmartIDError
from smartid.hermod import HermodClient, generate_key, merge_client
from smartid.lab.package import PackageObject, write_package
from smartid.lab.probe import probe
from smartid.lab.server import port_lock
from smartid.lab.state import LabState
from smartid.lab.store import Store
from smartid.masking import Secret
from tests.helpers import run_suite
from tests.lab import basic, lab_session, new_state, running_lab

pytestmark = pytest.mark.lab


def _cli(state: LabState, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartid.lab", "--state-dir", str(state.path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[LabState, subprocess.Popen[bytes]]]:
    state = new_state(tmp_path / "lab")
    with running_lab(state) as process:
        yield state, process


def test_status_of_stopped_lab_exits_3_with_every_field(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    done = _cli(state, "status", "--json")
    assert done.returncode == 3, done.stderr
    document = json.loads(done.stdout)
    assert document["running"] is False
    assert set(document["endpoints"]) >= {"idm_admin", "idm_operator"}
    assert document["endpoints"]["idm_admin"].startswith("https://localhost:")
    assert document["cm_pki"] == f"http://127.0.0.1:{state.ports()['cm_pki']}/cm/pki"
    assert Path(document["ca_bundle"]).read_text().count("BEGIN CERTIFICATE") == 2
    assert all(Path(document["officer"][k]).is_file() for k in ("cert", "key", "p12"))
    assert document["writes"] >= 1
    secrets = json.loads(Path(document["secrets_file"]).read_text())
    assert {"admin_password", "hermod_password", "officer_keystore_password"} <= set(secrets)


def test_serve_answers_and_stops_on_sigterm(
    serving: tuple[LabState, subprocess.Popen[bytes]],
) -> None:
    state, process = serving
    done = _cli(state, "status", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["running"] is True
    crl = requests.get(json.loads(done.stdout)["cm_pki"] + "/issuing-ca.crl", timeout=10)
    assert crl.status_code == 200
    assert (
        x509.load_der_x509_crl(crl.content).issuer.rfc4514_string() == "CN=Smart ID Lab Issuing CA"
    )
    text = _cli(state, "status")
    assert f"cm_pki: {json.loads(done.stdout)['cm_pki']} (CRLs and OCSP)" in text.stdout
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert not probe(state)


def test_reset_returns_to_factory_state(
    request: pytest.FixtureRequest,
    serving: tuple[LabState, subprocess.Popen[bytes]],
) -> None:
    state, _ = serving
    http = lab_session(state)
    request.addfinalizer(http.close)
    url = f"{state.endpoints()['idm_admin']}/ws/deploy/configuration?tenantId=1"
    assert (
        http.post(
            url, data=state.package_file.read_bytes(), headers=basic("admin", "admin")
        ).status_code
        == 200
    )
    assert "SharedCredentials" in {p["name"] for p in Store(state.database).packages(1)}
    done = _cli(state, "reset")
    assert done.returncode == 0, done.stderr
    assert {p["name"] for p in Store(state.database).packages(1)} == {"Users"}
    assert http.get(url, headers=basic("admin", "admin")).status_code == 200


def _burst_package(index: int) -> bytes:
    objects = [
        PackageObject(
            kind="data_pool", name=f"Burst pool {index}", data={"name": f"Burst pool {index}"}
        ),
        PackageObject(
            kind="data_pool", name=f"Burst extra {index}", data={"name": f"Burst extra {index}"}
        ),
    ]
    return write_package(f"Burst{index}", "1.0.0", "durability test", objects)


def test_sigkill_during_upload_burst_keeps_every_acknowledged_upload(
    serving: tuple[LabState, subprocess.Popen[bytes]],
) -> None:
    state, process = serving
    url = f"{state.endpoints()['idm_admin']}/ws/deploy/configuration?tenantId=1"
    acknowledged: list[int] = []
    lock = threading.Lock()

    def upload(index: int) -> None:
        try:
            with lab_session(state) as http:
                response = http.post(
                    url, data=_burst_package(index), headers=basic("admin", "admin")
                )
        except SmartIDError:
            return
        if response.status_code == 200:
            with lock:
                acknowledged.append(index)

    # Requests cut off by the kill leave client sockets behind, freed in the upload threads or
    # by the garbage collector; they are expected here, so they are freed quietly, and collected
    # before the next test rather than reported during it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for index in range(60):
                pool.submit(upload, index)
            deadline = time.monotonic() + 60
            while len(acknowledged) < 8 and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        gc.collect()
    assert len(acknowledged) >= 8
    store = Store(state.database)
    installed = {p["name"] for p in store.packages(1) if p["name"].startswith("Burst")}
    assert {f"Burst{i}" for i in acknowledged} <= installed
    pools = {obj.name for obj in store.objects(1, "data_pool")}
    for name in installed:
        index = name.removeprefix("Burst")
        assert {f"Burst pool {index}", f"Burst extra {index}"} <= pools, name
    deploys = [r for r in store.audit() if r.action == "deploy" and "Burst" in r.object]
    assert len(deploys) == len(installed)


@pytest.mark.e2e
def test_suite_starts_the_lab_and_stops_what_it_started(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    run = run_suite(
        "-m",
        "setup",
        env={
            "SMARTID_LAB_STATE": str(state.path),
            "SMARTID_STATE": str(tmp_path / "state"),
            "SMARTID_REPORTS": str(tmp_path / "reports"),
        },
    )
    assert run.returncode in (0, 5), run.output
    assert "serving from" in (state.path / "lab.log").read_text()
    assert not probe(state)


@pytest.mark.e2e
def test_suite_leaves_a_running_lab_running(
    serving: tuple[LabState, subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    state, process = serving
    run = run_suite(
        "-m",
        "setup",
        env={
            "SMARTID_LAB_STATE": str(state.path),
            "SMARTID_STATE": str(tmp_path / "state"),
            "SMARTID_REPORTS": str(tmp_path / "reports"),
        },
    )
    assert run.returncode in (0, 5), run.output
    assert process.poll() is None
    assert probe(state)


def test_a_second_serve_of_the_same_lab_is_refused(
    serving: tuple[LabState, subprocess.Popen[bytes]],
) -> None:
    state, process = serving
    done = _cli(state, "serve")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"smartid-lab: another process already serves the lab in {state.path}"
    )
    assert process.poll() is None
    assert probe(state)


def test_a_lab_on_ports_another_lab_listens_on_is_refused(
    serving: tuple[LabState, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    state, _ = serving
    other = tmp_path / "other"
    other.mkdir()
    (other / "ports.json").write_text(state.ports_file.read_text())
    done = _cli(LabState(other), "serve")
    assert done.returncode == 2
    assert f"port {state.ports()['idm']} (idm) of the lab in {other} is in use" in done.stderr
    assert probe(state)


def test_a_lab_on_ports_a_starting_lab_holds_is_refused(tmp_path: Path) -> None:
    """Two labs of different state folders starting at the same moment on the same ports would
    both find the ports silent, and both bind them (SO_REUSEPORT): the machine-wide lock per
    port that a lab holds while it serves lets only one of them. A lab that holds the hermod
    port and does not listen yet is played by the test holding that lock."""
    state = new_state(tmp_path / "lab")
    port = state.ports()["hermod"]
    held = port_lock(port)
    held.acquire()
    try:
        done = _cli(state, "serve")
    finally:
        held.release()
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"smartid-lab: port {port} (hermod) of the lab in {state.path} is in use: "
        "another lab or program listens there"
    )
    assert not probe(state)


def test_hermod_refresh_applies_an_edited_application_yml(
    serving: tuple[LabState, subprocess.Popen[bytes]],
) -> None:
    state, _ = serving
    client = HermodClient("idm", Secret(generate_key(), "test"), "https://localhost:1/x")
    state.hermod_config.write_text(merge_client(state.hermod_config.read_text(), client))
    ping = f"{state.endpoints()['hermod']}/command/ping"
    headers = {"X-Api-Key": client.api_key.reveal()}
    with lab_session(state) as http:
        assert http.post(ping, headers=headers, json={}).status_code == 401
        done = _cli(state, "hermod-refresh")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("(clients: idm)")
        assert http.post(ping, headers=headers, json={}).status_code == 202


def test_hermod_refresh_of_a_stopped_lab_says_so_in_one_line(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    done = _cli(state, "hermod-refresh")
    assert done.returncode == 3
    assert done.stderr.startswith("smartid-lab: Hermod did not refresh: https://localhost:")
    assert done.stderr.strip().endswith("connection refused")
    assert len(done.stderr.strip().splitlines()) == 1


# --- the command line itself: option order, help, a closed pipe ----------------------------------

SUBCOMMANDS = ("serve", "hermod-refresh", "reset", "status", "faults", "fault")


def _lab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartid.lab", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "SMARTID_LAB_STATE"},
    )


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_state_dir_works_before_or_after_the_subcommand(tmp_path: Path, before: bool) -> None:
    state = new_state(tmp_path / "lab")
    option = ["--state-dir", str(state.path)]
    args = [*option, "status", "--json"] if before else ["status", "--json", *option]
    done = _lab(*args, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["state_dir"] == str(state.path)
    assert not (tmp_path / ".lab").exists()


def test_a_state_dir_given_with_equals_after_the_subcommand_is_used(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    done = _lab("fault", "on", "cm-down", f"--state-dir={state.path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = _lab("faults", "--state-dir", str(state.path)).stdout.splitlines()
    assert [line.split()[0] for line in listed if line.endswith("[on]")] == ["cm-down"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_help_shows_the_state_dir(command: str) -> None:
    done = _lab(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "--state-dir" in done.stdout
    assert "SMARTID_LAB_STATE" in done.stdout


@pytest.mark.parametrize("command", ["status", "faults"])
def test_a_closed_pipe_ends_the_output_without_a_traceback(tmp_path: Path, command: str) -> None:
    state = new_state(tmp_path / "lab")
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before the first line: as `| head -0` would
    try:
        done = subprocess.run(
            [sys.executable, "-m", "smartid.lab", command, "--state-dir", str(state.path)],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == 141
