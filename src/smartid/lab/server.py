"""Runs the lab's HTTPS servers: uvicorn, one thread per server, on loopback.

FastAPI + uvicorn because the lab's servers are small JSON/zip APIs that FastAPI describes in an
OpenAPI document for free; uvicorn takes a certificate chain and a pre-bound socket directly.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from smartid.errors import LabError
from smartid.lab.idm_app import IdmLab, create_idm_app
from smartid.lab.state import LabState
from smartid.lab.store import Store

__all__ = ["LabServer", "probe"]


@dataclass
class _Running:
    name: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket


def _bind(name: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise LabError(f"lab {name} cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


class LabServer:
    """The lab's servers for one state directory."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self._running: list[_Running] = []

    def start(self) -> None:
        self.state.ensure()
        ports = self.state.ports()
        pki = self.state.pki
        store = Store(self.state.database)
        idm = pki.server("idm")
        self._serve("idm", create_idm_app(IdmLab(store=store)), ports["idm"], idm.cert, idm.key)
        self._wait_started()

    def _serve(self, name: str, app: FastAPI, port: int, cert: Path, key: Path) -> None:
        sock = _bind(name, port)
        config = uvicorn.Config(
            app,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            log_level="warning",
            access_log=False,
            http="h11",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"lab-{name}",
            daemon=True,
        )
        thread.start()
        self._running.append(_Running(name, server, thread, sock))

    def _wait_started(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for running in self._running:
            while not running.server.started:
                if not running.thread.is_alive():
                    raise LabError(f"lab {running.name} server stopped while starting")
                if time.monotonic() > deadline:
                    raise LabError(f"lab {running.name} server did not start in {timeout} s")
                time.sleep(0.01)

    def stop(self) -> None:
        for running in self._running:
            running.server.should_exit = True
        for running in self._running:
            running.thread.join(timeout=5)
            running.sock.close()
        self._running = []

    def wait(self) -> None:
        """Block until a server stops (or KeyboardInterrupt)."""
        while all(r.thread.is_alive() for r in self._running):
            time.sleep(0.2)


def probe(state: LabState, timeout: float = 1.0) -> bool:
    """True when the lab's IDM answers over verified HTTPS."""
    try:
        ports = state.ports()
        context = ssl.create_default_context(cafile=str(state.pki.ca_bundle))
    except (OSError, ValueError, KeyError, ssl.SSLError):
        return False
    try:
        with (
            socket.create_connection(("127.0.0.1", ports["idm"]), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"GET /idm-admin/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = tls.recv(64)
    except (OSError, ssl.SSLError):
        return False
    return answer.startswith(b"HTTP/1.1 200")
