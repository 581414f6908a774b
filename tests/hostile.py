"""Hostile HTTP(S) servers on 127.0.0.1 for the tests of the suite's HTTP policy: each answers
every request with one behaviour (a redirect, a drip, an endless body, a gzip bomb, ...) and
records what arrived, so that a test can assert that nothing secret did.

Written on raw sockets (`tests.servers` uses http.server, which cannot misbehave this way). Every
connection is served in its own thread and bounded in time: a behaviour stops when the client
leaves, when the server is stopped, or after `_LIMIT` seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = [
    "Behaviour",
    "Hostile",
    "Recorded",
    "answer",
    "close_mid_body",
    "drain_then_answer",
    "drip_body",
    "drip_headers",
    "endless_body",
    "gzip_bomb",
    "handshake_drip",
    "hostile_server",
    "redirect",
]

_LIMIT = 15.0  # seconds a connection may last at most
_HEAD_MAX = 64 * 1024
_BODY_MAX = 4 * 1024 * 1024


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def holds(self, secret: str) -> bool:
        raw = "\n".join(f"{k}: {v}" for k, v in self.headers.items()).encode()
        return secret.encode() in raw + self.path.encode() + self.body


class _Stopped(Exception):
    pass


@dataclass
class Conn:
    """A served connection: the request, and a writer that gives up when the test is over."""

    sock: socket.socket
    request: Recorded
    stop: threading.Event
    started: float = field(default_factory=time.monotonic)

    def send(self, data: bytes) -> None:
        if self.stop.is_set() or time.monotonic() - self.started > _LIMIT:
            raise _Stopped
        self.sock.sendall(data)

    def wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise _Stopped


Behaviour = Callable[[Conn], None]


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Hostile"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: int, body: bytes, content_type: str = "application/json") -> Behaviour:
    def behave(conn: Conn) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        conn.send(_head(status, headers) + body)

    return behave


def drain_then_answer(status: int, body: bytes) -> Behaviour:
    """Read the whole request body, however large, keeping nothing, then answer."""

    def behave(conn: Conn) -> None:
        left = int(conn.request.headers.get("content-length", "0")) - len(conn.request.body)
        while left > 0:
            chunk = conn.sock.recv(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
        answer(status, body)(conn)

    return behave


def drain_slowly(block: int, interval: float) -> Behaviour:
    """Take the request body `block` bytes at a time, one block per `interval`: each send of the
    client makes progress, the whole never ends in time."""

    def behave(conn: Conn) -> None:
        while conn.sock.recv(block):
            conn.wait(interval)

    return behave


def redirect(status: int, location: str) -> Behaviour:
    def behave(conn: Conn) -> None:
        headers = {"Location": location, "Content-Length": "0"}
        conn.send(_head(status, headers))

    return behave


def drip_headers(interval: float) -> Behaviour:
    """A status line, then one header byte every `interval` seconds, for ever."""

    def behave(conn: Conn) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while True:
            conn.wait(interval)
            conn.send(b"a")

    return behave


def drip_body(interval: float) -> Behaviour:
    """Complete headers announcing 1000 bytes, then one body byte every `interval` seconds."""

    def behave(conn: Conn) -> None:
        conn.send(_head(200, {"Content-Type": "application/json", "Content-Length": "1000"}))
        while True:
            conn.wait(interval)
            conn.send(b" ")

    return behave


_ZEROS = b"\0" * (64 * 1024)


def endless_body(
    *, chunked: bool = False, length: int | None = None, total: int | None = None
) -> Behaviour:
    """Zeros without end (or up to `total` bytes): close-delimited, chunked, or announcing
    `length` in Content-Length."""

    def behave(conn: Conn) -> None:
        headers = {"Content-Type": "application/json"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        elif length is not None:
            headers["Content-Length"] = str(length)
        else:
            headers["Connection"] = "close"
        conn.send(_head(200, headers))
        piece = b"%x\r\n%s\r\n" % (len(_ZEROS), _ZEROS) if chunked else _ZEROS
        sent = 0
        while total is None or sent < total:
            conn.send(piece)
            sent += len(_ZEROS)

    return behave


@cache
def _bomb(decoded: int) -> bytes:
    return gzip.compress(b"\0" * decoded, compresslevel=9)


def gzip_bomb(decoded: int = 10 * 1024 * 1024) -> Behaviour:
    """A small gzip answer that decodes to `decoded` bytes of zeros."""
    data = _bomb(decoded)

    def behave(conn: Conn) -> None:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Content-Length": str(len(data)),
        }
        conn.send(_head(200, headers) + data)

    return behave


def close_mid_body(*, chunked: bool = False) -> Behaviour:
    """Headers promising more than is sent, part of the body, then the connection closes."""

    def behave(conn: Conn) -> None:
        if chunked:
            conn.send(_head(200, {"Transfer-Encoding": "chunked"}) + b'10\r\n{"commandId": ')
        else:
            conn.send(_head(200, {"Content-Length": "1000"}) + b'{"commandId": "x", ')
        conn.wait(0.05)
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)

    return behave


def _read_request(sock: socket.socket) -> Recorded | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > _HEAD_MAX:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = [*lines[0].split(" "), "", ""][:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0") or 0), _BODY_MAX)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Recorded(method, path, headers, body)


@dataclass
class Hostile:
    """A running hostile server: its port, scheme and what arrived."""

    port: int
    scheme: str
    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0

    def url(self, path: str = "/") -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}{path}"


def _serve(
    conn: socket.socket,
    context: ssl.SSLContext | None,
    behaviour: Behaviour,
    server: Hostile,
    stop: threading.Event,
) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(2.0)
        try:
            sock = context.wrap_socket(conn, server_side=True) if context else conn
            with sock:
                while not stop.is_set():
                    request = _read_request(sock)
                    if request is None:
                        return
                    server.requests.append(request)
                    behaviour(Conn(sock, request, stop))
                    sock.settimeout(0.3)  # a kept-alive connection's next request comes at once
        except (OSError, _Stopped):
            pass  # the client left, or the test is over


@contextlib.contextmanager
def handshake_drip(interval: float) -> Iterator[int]:
    """A TCP port that answers a TLS ClientHello with the header of a 16 KiB handshake record,
    then one byte of it every `interval` seconds: a handshake that never ends by itself."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while not stop.wait(interval):
                conn.sendall(b"\x00")

    workers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=drip, args=(conn,), daemon=True)
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
            worker.join(timeout=5)


@contextlib.contextmanager
def hostile_server(
    behaviour: Behaviour, cert: Path | None = None, key: Path | None = None
) -> Iterator[Hostile]:
    """A server on a free loopback port answering every request with `behaviour`; TLS with
    `cert` and `key`, plain http without them."""
    context = None
    if cert is not None and key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    server = Hostile(listener.getsockname()[1], "https" if context else "http")
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
            server.connections += 1
            args = (conn, context, behaviour, server, stop)
            worker = threading.Thread(target=_serve, args=args, daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for worker in workers:
            worker.join(timeout=5)
