"""A bare TLS server on 127.0.0.1 for the TLS engine's tests: it completes handshakes (or refuses
them the way OpenSSL does), then waits for the client to leave. It never sends application data,
so what a probe sees is the handshake alone.

`tests.servers.https_server` speaks HTTP; the probe tests need a server whose TLS versions, ciphers
and client-certificate demand they choose, and whose chain they write.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["tls_server"]

_IDLE = 2.0  # how long a connection may stay silent before the server drops it


def _server_context(
    cert: Path,
    key: Path,
    *,
    versions: tuple[str, str] | None,
    weak: bool,
    client_ca: Path | None,
    ciphers: str | None = None,
    tickets: int | None = None,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tickets is not None:
        context.num_tickets = tickets
    if weak:
        # Security level 0 lets OpenSSL 3 load a weak key and speak TLS 1.0/1.1.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if ciphers is not None:
        context.set_ciphers(ciphers)
    context.load_cert_chain(cert, key)
    if versions is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 on 3.11
            context.minimum_version = ssl.TLSVersion[versions[0].replace(".", "_")]
            context.maximum_version = ssl.TLSVersion[versions[1].replace(".", "_")]
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def _serve_one(context: ssl.SSLContext, conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(_IDLE)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                while tls.recv(1024):
                    pass
        except (OSError, ssl.SSLError):
            pass  # refused handshakes and vanished clients are what these tests are about


@contextlib.contextmanager
def tls_server(
    cert: Path,
    key: Path,
    *,
    versions: tuple[str, str] | None = None,
    weak: bool = False,
    client_ca: Path | None = None,
    ciphers: str | None = None,
    tickets: int | None = None,
) -> Iterator[int]:
    """A TLS server on a free loopback port; yields the port.

    `versions` = (minimum, maximum), e.g. ("TLSv1", "TLSv1.3"); `weak` = security level 0 (weak
    keys, TLS 1.0/1.1); `client_ca` = demand a client certificate issued by that CA; `ciphers` =
    the TLS 1.2 suites it accepts, an OpenSSL cipher string; `tickets` = the TLS 1.3 session
    tickets it sends after a handshake (OpenSSL's default: 2).
    """
    context = _server_context(
        cert,
        key,
        versions=versions,
        weak=weak,
        client_ca=client_ca,
        ciphers=ciphers,
        tickets=tickets,
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=_serve_one, args=(context, conn), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for worker in workers:
            worker.join(timeout=_IDLE + 1)
