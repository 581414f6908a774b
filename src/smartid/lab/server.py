"""Runs the lab's three HTTPS servers on loopback and applies faults while they run.

IDM and Hermod are FastAPI apps under uvicorn (small JSON/zip APIs that FastAPI describes in an
OpenAPI document for free); CM is the standard library's server because it must see the client
certificate (`cm_server`). A watcher thread re-reads the faults every quarter second and restarts a
listener whose TLS settings changed, or stops it while its component is "down".
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import uvicorn
from fastapi import FastAPI
from filelock import FileLock, Timeout

from smartid.errors import LabError
from smartid.lab.cm_server import CMServer, CMSettings
from smartid.lab.faults import FaultSet, ListenerSettings, listener_settings
from smartid.lab.hermod_app import DEFAULT_CALLBACK_SUFFIX, HermodLab, create_hermod_app
from smartid.lab.idm_actions import CallbackInbox, LabActions
from smartid.lab.idm_app import IdmLab, create_idm_app
from smartid.lab.revocation import PkiServer, RevocationAuthority
from smartid.lab.state import LabState
from smartid.lab.store import Store

__all__ = ["LabServer", "UvicornListener", "server_context"]

WATCH_INTERVAL = 0.25
_CM_UP = ListenerSettings(
    up=True, cert=Path("cm"), key=Path("cm"), minimum_version=ssl.TLSVersion.TLSv1_2, ciphers=None
)


def _bind(name: str, port: int) -> socket.socket:
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP, and
    # without it every answer written in two parts waits out the client's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A restarted listener binds its port while the old one still serves, so a fault switch
    # never shows clients a refused connection that the fault did not ask for.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise LabError(f"lab {name} cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def server_context(settings: ListenerSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if settings.ciphers:
        context.set_ciphers(settings.ciphers)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated; a fault switches them on deliberately.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = settings.minimum_version
    context.load_cert_chain(settings.cert, settings.key)
    return context


class _Config(uvicorn.Config):
    """uvicorn builds its SSL context from file names only; the lab needs its own (versions,
    ciphers), so it is set after uvicorn's own loading."""

    def __init__(self, app: FastAPI, context: ssl.SSLContext) -> None:
        super().__init__(
            app,
            log_level="warning",
            access_log=False,
            http="h11",
            ws="none",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._context = context

    def load(self) -> None:
        super().load()
        self.ssl = self._context


class _Running(Protocol):
    def stop(self) -> None: ...

    @property
    def alive(self) -> bool: ...


def port_lock(port: int) -> FileLock:
    """The machine-wide lock that the lab serving on `port` holds: a file per port in a folder
    every user's labs share (sticky, as /tmp is; a port another user's lab holds cannot be
    opened, and counts as in use)."""
    folder = Path(tempfile.gettempdir()) / "smartid-lab-ports"
    try:
        folder.mkdir(exist_ok=True)
        if folder.stat().st_uid == os.getuid():
            folder.chmod(0o1777)
    except OSError:
        pass  # acquiring the lock then says so
    return FileLock(folder / f"{port}.lock", timeout=0, mode=0o666)


class UvicornListener:
    """One uvicorn server on its own thread and event loop (port 0: a free one)."""

    def __init__(self, name: str, app: FastAPI, port: int, settings: ListenerSettings) -> None:
        self._sock = _bind(name, port)
        self._server = uvicorn.Server(_Config(app, server_context(settings)))
        sock, server = self._sock, self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"lab-{name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._sock.close()
                raise LabError(f"lab {name} server did not start")
            time.sleep(0.005)

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class _CMRunning:
    def __init__(self, port: int, settings: Callable[[], CMSettings]) -> None:
        self._server = CMServer(_bind("cm", port), settings)
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def alive(self) -> bool:
        return True


class _PkiRunning:
    def __init__(self, port: int, authority: RevocationAuthority) -> None:
        self._server = PkiServer(_bind("cm-pki", port), authority)
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def alive(self) -> bool:
        return self._server.alive


class LabServer:
    """The lab's servers for one state directory."""

    def __init__(
        self,
        state: LabState,
        *,
        documented_only: bool = False,
        callback_suffix: str | None = None,
    ) -> None:
        self.state = state
        self.documented_only = documented_only
        self.callback_suffix = callback_suffix or DEFAULT_CALLBACK_SUFFIX
        self.faults = FaultSet(state.path)
        self._listeners: dict[str, Callable[[ListenerSettings], _Running]] = {}
        self._running: dict[str, _Running] = {}
        self._applied: dict[str, ListenerSettings | None] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._serving = FileLock(state.path / "serve.lock", timeout=0)
        self._ports_held: list[FileLock] = []

    def _settings(self, component: str) -> ListenerSettings:
        return listener_settings(self.state.pki, component, self.faults.active())

    def _cm_settings(self) -> CMSettings:
        settings = self._settings("cm")
        return CMSettings(
            server_cert=settings.cert,
            server_key=settings.key,
            client_ca=self.state.pki.ca_bundle,
            require_client_cert=settings.require_client_cert,
            minimum_version=settings.minimum_version,
            ciphers=settings.ciphers,
        )

    def _claim(self, ports: dict[str, int]) -> None:
        """Refuse to serve beside another lab. The listeners bind with SO_REUSEPORT (to restart
        without a gap), so a second lab on the same ports would bind too and the kernel would
        share connections between the two: a command sent to one, its state read from the other.
        A lab holds a machine-wide lock per port while it serves (two labs of other state folders
        starting at the same moment, neither listening yet, cannot both have it), and a port
        where something already listens is refused as well."""
        try:
            self._serving.acquire()
        except Timeout:
            raise LabError(f"another process already serves the lab in {self.state.path}") from None
        for name, port in ports.items():
            in_use = LabError(
                f"port {port} ({name}) of the lab in {self.state.path} is in use: "
                "another lab or program listens there"
            )
            lock = port_lock(port)
            try:
                lock.acquire()
            except (Timeout, OSError):
                self._release()
                raise in_use from None
            self._ports_held.append(lock)
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    self._release()
                    raise in_use

    def _release(self) -> None:
        for lock in self._ports_held:
            lock.release()
        self._ports_held = []
        if self._serving.is_locked:
            self._serving.release()

    def start(self) -> None:
        self.state.ensure()
        ports = self.state.ports()
        self._claim(ports)
        store = Store(self.state.database)
        inbox = CallbackInbox()
        idm = IdmLab(
            store=store,
            actions=LabActions(self.state.path / "tmp", inbox),
            inbox=inbox,
            faults=self.faults,
            documented_only=self.documented_only,
            callback_suffix=self.callback_suffix,
            pki=self.state.pki,
        )
        hermod = HermodLab(
            config_path=self.state.hermod_config,
            truststore=self.state.hermod_truststore,
            public_url=self.state.endpoints()["hermod"],
            callback_suffix=self.callback_suffix,
        )
        idm_app, hermod_app = create_idm_app(idm), create_hermod_app(hermod)
        self._listeners = {
            "idm": lambda settings: UvicornListener("idm", idm_app, ports["idm"], settings),
            "hermod": lambda settings: UvicornListener(
                "hermod", hermod_app, ports["hermod"], settings
            ),
            "cm": lambda _: _CMRunning(ports["cm"], self._cm_settings),
            # CM's CRLs and OCSP: plain HTTP, up whatever CM's TLS listener does (a CA publishes
            # revocation from a web server of its own), so that cm-down blocks CM's checks only.
            "cm-pki": lambda _: _PkiRunning(
                ports["cm_pki"], RevocationAuthority(self.state, self.faults)
            ),
        }
        self._apply()
        self._watcher = threading.Thread(target=self._watch, name="lab-faults", daemon=True)
        self._watcher.start()

    def _apply(self) -> None:
        with self._lock:
            for name, listener in self._listeners.items():
                wanted: ListenerSettings | None = (
                    _CM_UP if name == "cm-pki" else self._settings(name)
                )
                if name == "cm" and wanted is not None and wanted.up:
                    # CM reads its TLS settings per connection; only "down" needs a restart.
                    wanted = _CM_UP
                if wanted is not None and not wanted.up:
                    wanted = None
                if name in self._applied and self._applied[name] == wanted:
                    continue
                running = self._running.pop(name, None)
                if wanted is not None:
                    self._running[name] = listener(wanted)
                if running is not None:
                    running.stop()
                self._applied[name] = wanted

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                self._apply()
            except LabError as exc:
                print(f"smartid-lab: {exc}", flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._lock:
            for running in self._running.values():
                running.stop()
            self._running = {}
            self._applied = {}
        self._release()

    def wait(self) -> None:
        """Block until a listener dies unexpectedly (or KeyboardInterrupt)."""
        while all(running.alive for running in self._running.values()):
            time.sleep(0.2)
