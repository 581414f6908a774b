"""The officer's mutual-TLS proof against any CM: two connections to the site's CM `url`, observed
into an `OfficerProof` (judged by `smartid.cm.proof`).

1. Without a client certificate: CM must refuse. Under TLS 1.2 the server checks the client's
   (empty) Certificate before its own Finished, so the refusal is an alert in the handshake. Under
   TLS 1.3 the client's handshake completes first and the refusal only arrives afterwards, so the
   proof sends the request and reads: an alert or a close there is the refusal, an HTTP status
   line means CM does not demand mutual TLS.
2. With the officer's certificate and key: the handshake completes and a GET of the url's path
   answers with an HTTP status line, whatever the status (CM's REST paths are not public); an
   alert (`bad_certificate`, `unknown_ca`, `certificate_expired`, ...) is CM refusing it.

Both verify CM's certificate with the site's CA bundle and server name, always: a verdict comes
only from a verified connection. Each connection is bounded by one deadline for connect,
handshake, request and read, and reads at most `_MAX_HEAD` bytes.
"""

from __future__ import annotations

import functools
import re
import select
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from smartid.cm.proof import Attempt, OfficerProof, Outcome, Stage
from smartid.errors import PackageError
from smartid.http import describe_exception
from smartid.masking import MASKER

__all__ = ["prove_officer"]

_MAX_HEAD = 4096
# How long to wait after a TLS 1.3 handshake for the server's verdict before sending the request.
_SETTLE_SECONDS = 0.5
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)? \d{3}(?: [^\r\n]*)?$")
_ALERT = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)$")
# OpenSSL reasons that mean the peer does not speak TLS at all (plain HTTP on a TLS port, say).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"})
_T = TypeVar("_T")


class _Deadline(Exception):
    """The connection's deadline passed."""


def prove_officer(
    url: str,
    *,
    client_cert: tuple[Path, Path],
    ca_bundle: Path | None,
    server_name: str | None = None,
    timeout: float = 15.0,
) -> OfficerProof:
    """Connect to CM at `url` without, then with the officer's certificate (chain PEM, key PEM);
    never raises for CM's behaviour. `timeout` bounds each connection as a whole.

    Raises `PackageError` when the CA bundle or the officer's files cannot be loaded, and
    ValueError for a URL that is not https:// with a host.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https:// URL with a host: {url}")
    if timeout <= 0:
        raise ValueError("the timeout must be positive")
    host, port = parts.hostname, parts.port or 443
    name = server_name or host
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    netloc = parts.netloc.rpartition("@")[2]
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: smartid-verify\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii", "replace")

    def attempt(context: ssl.SSLContext, with_certificate: bool) -> Attempt:
        deadline = time.monotonic() + timeout
        return _attempt(host, port, name, context, request, deadline, with_certificate)

    anonymous = attempt(_context(ca_bundle, None), False)
    officer = attempt(_context(ca_bundle, client_cert), True)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return OfficerProof(
        url=url, target=shown, server_name=name, anonymous=anonymous, officer=officer
    )


def _context(ca_bundle: Path | None, client_cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise PackageError(str(ca_bundle), f"not a usable CA bundle ({_phrase(exc)})") from None
    # TLS 1.2 at least, whatever the interpreter's OpenSSL defaults to (as smartid.tls.probe).
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        try:
            context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        except (OSError, ssl.SSLError) as exc:
            problem = f"not a usable client certificate and key ({_phrase(exc)})"
            raise PackageError(str(client_cert[0]), problem) from None
    return context


def _attempt(
    host: str,
    port: int,
    server_name: str,
    context: ssl.SSLContext,
    request: bytes,
    deadline: float,
    with_certificate: bool,
) -> Attempt:
    def ended(outcome: Outcome, stage: Stage, error: str, protocol: str | None = None) -> Attempt:
        return Attempt(
            with_certificate=with_certificate,
            outcome=outcome,
            stage=stage,
            protocol=protocol,
            error=error,
        )

    try:
        raw = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.01))
    except TimeoutError:
        return ended("timeout", "connect", "no TCP connection within the timeout")
    except OSError as exc:
        return ended("unreachable", "connect", f"TCP connection failed: {_phrase(exc)}")
    with raw:
        try:
            raw.getpeername()  # a reset between accept and handshake shows here, not in ssl
            tls = context.wrap_socket(
                raw, server_hostname=server_name, do_handshake_on_connect=False
            )
        except OSError:
            message = "TCP connection failed: the peer reset it before the TLS handshake"
            return ended("unreachable", "connect", message)
        with tls:
            tls.setblocking(False)
            try:
                _until(deadline, tls, tls.do_handshake)
            except _Deadline:
                return ended("timeout", "handshake", "no TLS handshake within the timeout")
            except ssl.SSLCertVerificationError as exc:
                message = f"TLS certificate verification failed: {exc.verify_message}"
                return ended("untrusted", "handshake", message)
            except (ssl.SSLError, OSError) as exc:
                return _broken_off(exc, "handshake", None, with_certificate)
            protocol = tls.version()
            try:
                early = _settle(tls, deadline) if protocol == "TLSv1.3" else None
                if early == b"":
                    message = "the peer closed the connection right after the handshake"
                    return ended("refused", "read", message, protocol)
                _send(tls, request, deadline)
                head = (early or b"") + _read_head(tls, deadline)
            except _Deadline:
                return ended("timeout", "read", "no HTTP answer within the timeout")
            except (ssl.SSLError, OSError) as exc:
                return _broken_off(exc, "read", protocol, with_certificate)
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    if not head:
        return ended("refused", "read", "the peer closed the connection before answering", protocol)
    if not _STATUS_LINE.match(line):
        return ended("protocol", "read", "the answer is not HTTP", protocol)
    return Attempt(
        with_certificate=with_certificate,
        outcome="answered",
        stage="read",
        protocol=protocol,
        status_line=_one_line(line),
    )


def _broken_off(
    exc: BaseException, stage: Stage, protocol: str | None, with_certificate: bool
) -> Attempt:
    """A failed handshake or first read: the peer's refusal (alert, close, reset), or a peer
    that does not speak TLS."""
    reason = exc.reason if isinstance(exc, ssl.SSLError) else None
    alert = _ALERT.match(reason or "")
    outcome: Outcome = "refused"
    name = None
    if alert:
        name = alert.group(1).lower()
        error = f"TLS alert {name}"
    elif isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError):
        error = "the peer closed the connection"
    else:
        outcome = "protocol"
        error = _phrase(exc)
        if reason in _NOT_TLS:
            error += " (the peer does not speak TLS)"
    return Attempt(
        with_certificate=with_certificate,
        outcome=outcome,
        stage=stage,
        protocol=protocol,
        alert=name,
        error=error,
    )


def _wait(tls: ssl.SSLSocket, deadline: float, *, write: bool) -> None:
    left = deadline - time.monotonic()
    waiting = ([], [tls]) if write else ([tls], [])
    if left <= 0 or not any(select.select(*waiting, [], left)):
        raise _Deadline


def _until(deadline: float, tls: ssl.SSLSocket, step: Callable[[], _T]) -> _T:
    """`step()` on the non-blocking socket, waiting as OpenSSL asks, until `deadline`."""
    while True:
        try:
            return step()
        except ssl.SSLWantReadError:
            _wait(tls, deadline, write=False)
        except ssl.SSLWantWriteError:
            _wait(tls, deadline, write=True)


def _settle(tls: ssl.SSLSocket, deadline: float) -> bytes | None:
    """After a TLS 1.3 handshake, the server's word on the client certificate, if it comes at
    once: a refusal raises (the alert) or reads as EOF (b""); a session ticket (issued only once
    the server accepted the client's Finished) or silence returns None. Waiting before sending
    the request keeps the alert readable: a server that closes on unread request bytes resets
    the connection, and the reset discards the alert."""
    end = min(deadline, time.monotonic() + _SETTLE_SECONDS)
    while (left := end - time.monotonic()) > 0:
        if not select.select([tls], [], [], left)[0]:
            return None
        try:
            return tls.recv(_MAX_HEAD)
        except ssl.SSLWantReadError:
            if tls.session is not None and tls.session.has_ticket:
                return None
    return None


def _send(tls: ssl.SSLSocket, data: bytes, deadline: float) -> None:
    sent = 0
    while sent < len(data):
        sent += _until(deadline, tls, functools.partial(tls.send, data[sent:]))


def _read_head(tls: ssl.SSLSocket, deadline: float) -> bytes:
    """Bytes until the end of the first line, EOF or `_MAX_HEAD`, whichever comes first."""
    head = b""
    while b"\n" not in head and len(head) < _MAX_HEAD:
        chunk = _until(deadline, tls, functools.partial(tls.recv, _MAX_HEAD - len(head)))
        if not chunk:
            break
        head += chunk
    return head


def _one_line(line: bytes) -> str:
    text = line.decode("latin-1")
    text = "".join(ch for ch in text if ch.isprintable())
    return MASKER.mask(text[:120])


def _phrase(exc: BaseException) -> str:
    phrase = describe_exception(exc)
    if phrase == type(exc).__name__:
        if isinstance(exc, ssl.SSLError):
            return exc.reason or "unknown TLS error"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror[:1].lower() + exc.strerror[1:]
    return phrase
