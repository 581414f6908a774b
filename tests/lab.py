"""Helpers for tests that run an embedded lab."""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from smartid.http import session
from smartid.lab.probe import probe
from smartid.lab.state import DEFAULT_PORTS, LabState
from tests import warm

# Test labs take their ports below the kernel's ephemeral range (32768 and up on Linux, where
# bind(0) and every outgoing connection take theirs), one block per pytest-xdist worker, handed out
# in turn. A port from bind(0) is free only at the moment it is given: two workers starting labs
# at once could be given the same one, the lab's listeners (SO_REUSEPORT, to restart without a
# gap) would then both bind it, and the kernel would share its connections between two labs: a
# handshake verified against one lab's CA, the next one against the other's.
_FIRST_PORT = 21000
_BLOCK = 1000
_BLOCKS = 11  # 21000-31999; the lab's documented defaults (18443-18445, 20400) are below
_handed_out = itertools.count()


def _worker_block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = worker.removeprefix("gw")
    return (int(number) if number.isdigit() else _BLOCKS - 1) % _BLOCKS


def _free_port() -> int:
    """The next port of this worker's block that nothing holds now."""
    first = _FIRST_PORT + _worker_block() * _BLOCK
    for _ in range(_BLOCK):
        port = first + next(_handed_out) % _BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or still in TIME_WAIT from an earlier lab
        return port
    raise RuntimeError(f"no free port in {first}-{first + _BLOCK - 1}")


def new_state(folder: Path) -> LabState:
    """A lab state directory on free ports, so that tests never meet the documented defaults."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ports.json").write_text(json.dumps({name: _free_port() for name in DEFAULT_PORTS}))
    state = LabState(folder)
    state.ensure()
    return state


@contextmanager
def running_lab(
    state: LabState, *, documented_only: bool = False, callback_suffix: str | None = None
) -> Iterator[subprocess.Popen[bytes] | warm.Run]:
    """`smartid-lab serve` in its own process, as users run it (a child of the worker's fork
    server, tests/warm.py); killed at the end."""
    mode = ["--documented-only"] if documented_only else []
    if callback_suffix is not None:
        mode += ["--callback-suffix", callback_suffix]
    argv = ["--state-dir", str(state.path), "serve", *mode]
    process: subprocess.Popen[bytes] | warm.Run
    if warm.COLD:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartid.lab", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    else:
        devnull = Path(os.devnull)
        process = warm.start("smartid.lab", argv, dict(os.environ), Path.cwd(), devnull, devnull)
    try:
        deadline = time.monotonic() + 60
        while not probe(state):
            assert process.poll() is None, "the lab exited while starting"
            assert time.monotonic() < deadline, "the lab did not start within 60 s"
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def lab_session(state: LabState) -> requests.Session:
    return session(state.pki.ca_bundle)


def request_counts(state: LabState) -> dict[str, int]:
    """The lab IDM's requests per path since it started (the lab's own instrumentation)."""
    with lab_session(state) as http:
        answer = http.get(f"https://localhost:{state.ports()['idm']}/smartid-lab/requests")
    answer.raise_for_status()
    counts: dict[str, int] = answer.json()
    return counts


def contract_requests(state: LabState) -> int:
    """How many requests the lab's IDM got under the admin contract's path."""
    return sum(n for path, n in request_counts(state).items() if path.startswith("/idm-admin/api/"))


def refresh_hermod(state: LabState) -> list[str]:
    """Have the lab's Hermod apply its application.yml, as an operator refreshes Hermod's
    configuration after editing the file; the client ids it now serves."""
    with lab_session(state) as http:
        answer = http.post(f"{state.endpoints()['hermod']}/util/refresh")
    assert answer.status_code == 200, answer.text
    clients: list[str] = answer.json()["clients"]
    return clients


def pki_only(folder: Path, officer_password: str) -> tuple[LabState, socket.socket]:
    """A lab state holding only its PKI, whose certificates name CM's CRL/OCSP listener on a
    free loopback port: the state, and the socket bound to that port for a PkiServer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    folder.mkdir(parents=True)
    (folder / "ports.json").write_text(json.dumps({"cm_pki": sock.getsockname()[1]}))
    state = LabState(folder)
    state.pki.ensure(officer_password)
    return state, sock
