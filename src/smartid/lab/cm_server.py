"""The lab's Certificate Manager: an HTTPS server that knows which officer connected.

The standard library's `ThreadingHTTPServer` and `ssl` rather than uvicorn, because CM's answers
depend on the officer's client certificate and uvicorn does not give the application the peer
certificate (PLATFORM-NOTES). CM's real REST API is not public; the paths and JSON shapes are the
lab's own (docs/cm-lab-api.md):

    GET /cm/api/v1/ping              {"status": "OK", "officer", "serial", "issuer", "protocol"}
    GET /cm/api/v1/token-procedures  {"officer", "token_procedures": [{"name",
                                      "certificate_procedures": [...]}, ...]}

Errors are JSON `{"error": "..."}`: 401 without a client certificate (only possible when the
settings do not require one), 403 for an officer with no token procedure, 404 for other paths.

A certificate from a foreign CA or an expired one is refused by the TLS layer itself
(CERT_REQUIRED and the lab CA bundle), never by the application. The settings are read for every
new connection, so a fault that swaps the server certificate or relaxes the client certificate
takes effect on the next connection of a running server.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["BASE_PATH", "TOKEN_PROCEDURES", "CMServer", "CMSettings"]

BASE_PATH = "/cm/api/v1"

TOKEN_PROCEDURES: Mapping[str, list[dict[str, Any]]] = {
    "IDM Officer": [
        {
            "name": "Smart ID user card",
            "certificate_procedures": ["Card authentication", "Card signature"],
        },
        {"name": "Smart ID virtual smart card", "certificate_procedures": ["VSC authentication"]},
        {"name": "Smart ID mobile", "certificate_procedures": ["Mobile authentication"]},
    ]
}

_log = logging.getLogger(__name__)
# A few distinct settings at most are alive at once (normal, one fault); more are stale.
_CONTEXT_CACHE_SIZE = 8
# An idle keep-alive or a client that stops mid-request frees its thread after this long.
_REQUEST_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 1.0
# Setting a version below TLS 1.2 warns; catch_warnings is process-wide, so one thread at a time.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class CMSettings:
    """How CM presents itself and whom it lets in; compared by value to reuse an SSLContext."""

    server_cert: Path  # chain PEM: leaf, then its issuers
    server_key: Path
    client_ca: Path  # PEM bundle of the CAs whose client certificates are accepted
    require_client_cert: bool = True
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_version: ssl.TLSVersion | None = None
    ciphers: str | None = None  # e.g. "DEFAULT:@SECLEVEL=0" for the legacy and weak faults


class CMServer:
    """The lab CM on a pre-bound, listening loopback socket; `start()` serves in a thread."""

    def __init__(
        self,
        sock: socket.socket,
        settings: Callable[[], CMSettings],
        procedures: Mapping[str, list[dict[str, Any]]] = TOKEN_PROCEDURES,
        *,
        handshake_timeout: float = 5.0,
    ) -> None:
        self._settings = settings
        self.procedures = procedures
        self.handshake_timeout = handshake_timeout
        self._contexts: OrderedDict[tuple[object, ...], ssl.SSLContext] = OrderedDict()
        self._contexts_lock = threading.Lock()
        self._server = _Server(sock, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the lab CM server is already started")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="lab-cm"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end open connections, close the socket and join every thread."""
        if self._thread is not None:
            # shutdown() waits for serve_forever to return, so only when it was started.
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()  # closes the listening socket and joins the workers

    def __enter__(self) -> CMServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def context(self) -> ssl.SSLContext:
        """The server context for the settings as they are now, built once per distinct value.

        The files' modification times are part of the key, so a certificate rewritten in place
        is picked up as well.
        """
        settings = self._settings()
        key = (settings, *(_mtime(p) for p in (settings.server_cert, settings.server_key)))
        key += (_mtime(settings.client_ca),)
        with self._contexts_lock:
            cached = self._contexts.get(key)
            if cached is not None:
                self._contexts.move_to_end(key)
                return cached
        context = _server_context(settings)
        with self._contexts_lock:
            self._contexts[key] = context
            while len(self._contexts) > _CONTEXT_CACHE_SIZE:
                self._contexts.popitem(last=False)
        return context


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1  # loading will fail and say so; the key only has to differ


def _server_context(settings: CMSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Ciphers (and so the security level) first: at the default level OpenSSL refuses to load
    # the weak-key fault's 1024-bit certificate.
    if settings.ciphers is not None:
        context.set_ciphers(settings.ciphers)
    with _WARNINGS_LOCK, warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in Python; the legacy-protocol fault needs them anyway.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = settings.minimum_version
        if settings.maximum_version is not None:
            context.maximum_version = settings.maximum_version
    context.load_cert_chain(settings.server_cert, settings.server_key)
    context.load_verify_locations(cafile=settings.client_ca)
    # OPTIONAL still verifies a certificate that is sent, so an officer is known when relaxed.
    context.verify_mode = ssl.CERT_REQUIRED if settings.require_client_cert else ssl.CERT_OPTIONAL
    return context


def _handshake(tls: ssl.SSLSocket, timeout: float) -> None:
    """Complete the handshake within `timeout` in total, so that a client trickling bytes cannot
    hold a thread longer than a silent one; socket.timeout when the time is up."""
    deadline = time.monotonic() + timeout
    tls.setblocking(False)
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            wait_for_write = False
        except ssl.SSLWantWriteError:
            wait_for_write = True
        left = deadline - time.monotonic()
        waiting = ([], [tls]) if wait_for_write else ([tls], [])
        if left <= 0 or not any(select.select(*waiting, [], left)):
            raise TimeoutError("the TLS handshake did not finish in time")


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer on a given socket whose workers do the TLS handshake."""

    daemon_threads = True
    block_on_close = True  # server_close() joins the workers

    def __init__(self, sock: socket.socket, owner: CMServer) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__((host, port), _Handler, bind_and_activate=False)
        self.socket.close()  # the unbound one TCPServer made; the given one replaces it
        self.socket = sock
        self.server_name, self.server_port = host, port
        self.owner = owner
        self._open: set[ssl.SSLSocket] = set()
        self._open_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the worker thread: the accept loop never waits for a slow client."""
        raw: socket.socket = request
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls
        context = self.owner.context()
        # wrap_socket takes over the descriptor; socketserver's own close of `raw` is then a no-op.
        tls = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with tls, self._tracked(tls):
            try:
                _handshake(tls, self.owner.handshake_timeout)
            except (ssl.SSLError, OSError) as exc:
                # A refused certificate, a silent or vanished client: the client saw the alert
                # or the close, and there is no one to answer.
                _log.debug("lab CM handshake with %s failed: %s", client_address, exc)
                return
            tls.settimeout(_REQUEST_TIMEOUT)
            _Handler(tls, client_address, self)
            # close_notify, so the client reads a clean end of the answer; unwrap then waits for
            # the client's, which a client that keeps the connection open never sends.
            tls.settimeout(_CLOSE_TIMEOUT)
            with suppress(ssl.SSLError, OSError):
                tls.unwrap()

    @contextmanager
    def _tracked(self, tls: ssl.SSLSocket) -> Iterator[None]:
        with self._open_lock:
            self._open.add(tls)
        try:
            yield
        finally:
            with self._open_lock:
                self._open.discard(tls)

    def close_connections(self) -> None:
        """Wake every worker blocked on a client, so that stopping does not wait for timeouts."""
        with self._open_lock:
            current = list(self._open)
        for tls in current:
            # The plain socket's shutdown: SSLSocket.shutdown would drop the SSL object under
            # the worker that is using it.
            with suppress(OSError):
                socket.socket.shutdown(tls, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.exception("lab CM failed on a connection from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    connection: ssl.SSLSocket
    server_version = "SmartIDLabCM/1"

    def version_string(self) -> str:
        return self.server_version  # no Python version: a real server does not show its stack

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if path not in (f"{BASE_PATH}/ping", f"{BASE_PATH}/token-procedures"):
            self._json(404, {"error": f"no such path: {path or '/'}"})
            return
        der = self.connection.getpeercert(binary_form=True)
        if not der:
            self._json(401, {"error": "client certificate required"})
            return
        cert = x509.load_der_x509_certificate(der)
        officer = _common_name(cert.subject)
        if path.endswith("/ping"):
            self._json(
                200,
                {
                    "status": "OK",
                    "officer": officer,
                    "serial": f"{cert.serial_number:x}",
                    "issuer": _common_name(cert.issuer),
                    "protocol": self.connection.version() or "",
                },
            )
            return
        procedures = self.server.owner.procedures.get(officer)
        if not procedures:
            message = f"officer '{officer}' has no permission on any token procedure"
            self._json(403, {"error": message})
            return
        self._json(200, {"officer": officer, "token_procedures": procedures})

    def _json(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("lab CM %s: " + format, self.address_string(), *args)


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""
