"""The bounds `smartid.http` puts on every answer: one deadline for the whole request and a limit
on the body, decoded size included.

The deadline covers connect, TLS, headers and body. Connect and the TLS handshake are each bounded
by the connect timeout (the handshake as a whole: CPython's ssl module counts one deadline across
its retries). Everything read after that goes through `_DeadlineReader`, which gives each socket
read the smaller of the read timeout and the time left, so a server that drips one byte at a time
runs out of time instead of resetting a per-read timer. No thread watches the clock: the socket
itself times out.

The body is read by `read_body` from the raw stream in chunks, never past its limit; a gzip or
deflate answer is decoded here with `zlib`'s `max_length`, so a small compressed answer cannot
grow beyond the limit in memory.
"""

from __future__ import annotations

import contextvars
import http.client
import io
import socket
import time
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from smartid import errors

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_ANSWER_BYTES",
    "Adapter",
    "Deadline",
    "DeadlineBody",
    "DeadlineResponse",
    "active_deadline",
    "read_body",
    "reset_deadline",
    "shown_size",
]

# What a JSON or text answer of IDM, Hermod or CM may hold: their largest real answers (a list of
# processes or certificate authorities) are a few KiB.
MAX_ANSWER_BYTES = 1024 * 1024
# The encodings `read_body` decodes; the suite asks for no other.
ACCEPT_ENCODING = "gzip, deflate"
_CHUNK = 64 * 1024
# A compressed stream is never much larger than what it decodes to (stored blocks add 5 bytes per
# 64 KiB); more raw bytes than this for the limit means the stream is not what it claims.
_RAW_SLACK = 64 * 1024


@dataclass(frozen=True)
class Deadline:
    """The moment (monotonic clock) by which a whole request must be done."""

    seconds: float
    at: float  # time.monotonic()

    @classmethod
    def start(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        # A socket timeout of the remaining time may end a hair before the clock says so.
        return self.remaining() <= 0.005

    def error(self, target: str) -> errors.TimeoutError:
        return errors.TimeoutError(target, f"sent no complete answer within {self.seconds:g} s")


# The deadline of the request this thread is making; read when an answer's reader is built.
_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "smartid_http_deadline", default=None
)


def active_deadline(deadline: Deadline) -> contextvars.Token[Deadline | None]:
    """Make `deadline` the one that answers read in this thread are built with."""
    return _CURRENT.set(deadline)


def reset_deadline(token: contextvars.Token[Deadline | None]) -> None:
    _CURRENT.reset(token)


class DeadlineBody:
    """A request body sent in blocks, each read only while the request's deadline has time left:
    a server that takes the body slowly cannot stretch the request past its deadline (each block
    is bounded by the socket timeout, the whole by the deadline)."""

    def __init__(self, source: BinaryIO, size: int, target: str) -> None:
        self._source = source
        self._size = size
        self._target = target

    def __len__(self) -> int:  # requests sends Content-Length, not a chunked body
        return self._size

    def read(self, size: int = -1) -> bytes:
        deadline = _CURRENT.get()
        if deadline is not None and deadline.expired:
            raise errors.TimeoutError(
                self._target,
                f"took the request body too slowly: not sent within {deadline.seconds:g} s",
            )
        return self._source.read(size if size >= 0 else self._size)


class _DeadlineReader(io.RawIOBase):
    """A socket's reader whose every read ends by the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline
        self._per_read = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise TimeoutError("the request's deadline has passed")
        per_read = self._per_read
        self._sock.settimeout(remaining if per_read is None else min(per_read, remaining))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client's response needs of a socket (`makefile`), with the deadline on reads."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class DeadlineResponse(http.client.HTTPResponse):
    """http.client's response whose reads end by the deadline `active_deadline` set."""

    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        deadline = _CURRENT.get()
        if deadline is not None:
            sock = _DeadlineSocket(sock, deadline)
        super().__init__(sock, debuglevel, method, url)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = DeadlineResponse


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, no retries, whose connections read answers under the deadline."""

    def __init__(self) -> None:
        # No automatic retries: a failure is reported once, as it happened.
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def shown_size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


class _TooLarge(Exception):
    pass


class _Decoder:
    """gzip or deflate, decoded without ever holding more than the room it is given."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._first = True
        self._zlib = zlib.decompressobj(31 if self._gzip else 15)

    def feed(self, data: bytes, out: bytearray, limit: int) -> None:
        while data:
            try:
                piece = self._zlib.decompress(data, limit + 1 - len(out))
            except zlib.error:
                if self._gzip or not self._first:
                    raise
                # "deflate" is sent both zlib-wrapped and raw; the first bytes tell which.
                self._zlib = zlib.decompressobj(-15)
                self._first = False
                continue
            self._first = False
            out += piece
            if len(out) > limit:
                raise _TooLarge
            data = self._zlib.unconsumed_tail
            if self._zlib.eof:
                rest = self._zlib.unused_data
                if not (self._gzip and rest):
                    return
                # Another gzip member follows.
                self._zlib = zlib.decompressobj(31)
                data = rest


def _decoder(url: str, response: requests.Response) -> _Decoder | None:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Decoder(encoding)
    shown = encoding[:40].encode("ascii", "replace").decode()
    raise errors.ProtocolError(url, f"answers in the content encoding '{shown}', not gzip")


def _announced(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def read_body(response: requests.Response, url: str, limit: int, *, cut: bool = False) -> bytes:
    """The decoded body, read from the stream; at most `limit` bytes.

    Over the limit, the answer is refused (one sentence naming `url` and the limit), or, with
    `cut`, its first `limit + 1` bytes are returned so that the caller can say it was cut. The
    stream is never read past the limit. Errors are the suite's; the caller translates the
    network's own (timeouts, broken connections)."""
    too_large = errors.ProtocolError(
        url, f"sent an answer larger than {shown_size(limit)}, the most the suite reads of it"
    )
    announced = _announced(response)
    decoder = _decoder(url, response)
    most = limit if decoder is None else limit + _RAW_SLACK
    if announced is not None and announced > most and not cut:
        response.close()
        raise errors.ProtocolError(
            url,
            f"announces an answer of {announced} bytes, larger than {shown_size(limit)}, "
            "the most the suite reads of it",
        )
    out = bytearray()
    raw_read = 0
    try:
        while True:
            chunk = response.raw.read(_CHUNK, decode_content=False)
            if not chunk:
                break
            raw_read += len(chunk)
            if decoder is None:
                out += chunk
                if len(out) > limit:
                    raise _TooLarge
            else:
                decoder.feed(chunk, out, limit)
                if raw_read > limit + _RAW_SLACK:
                    raise _TooLarge
    except _TooLarge:
        response.close()
        if cut:
            return bytes(out[: limit + 1])
        raise too_large from None
    except zlib.error:
        response.close()
        raise errors.ProtocolError(url, "sent a compressed answer that does not decode") from None
    return bytes(out)
