"""Helpers for tests that run an embedded lab."""

from __future__ import annotations

import base64
import json
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_state(folder: Path) -> LabState:
    """A lab state directory on free ports, so that tests never meet the documented defaults."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ports.json").write_text(json.dumps({name: _free_port() for name in DEFAULT_PORTS}))
    state = LabState(folder)
    state.ensure()
    return state


@contextmanager
def running_lab(state: LabState) -> Iterator[subprocess.Popen[bytes]]:
    """`smartid-lab serve` in a subprocess, as users run it; killed at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "smartid.lab", "--state-dir", str(state.path), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
