"""The one place where the suite's HTTP requests are made and their failures translated.

`session()` gives a `requests.Session` that ignores proxy and CA environment variables, always
verifies TLS against the given CA bundle (or the system store), and raises the suite's errors
(`smartid.errors`) instead of requests/ssl/socket ones, each naming the URL and what was observed.
Every request follows one policy (docs/architecture.md, "Talking to servers"):

- no redirect is followed, ever (so no credential, client certificate or body goes to another
  origin or over plain http); a 3xx is `RedirectError`, one sentence naming both URLs;
- one deadline for the whole request, connect + TLS + headers + body, of `Timeouts.total` (the
  connect timeout plus the read timeout), besides the per-read timeout (`smartid.httpbounds`);
- the body is read streaming and bounded, decoded size included: `MAX_ANSWER_BYTES` unless the
  call gives its own `max_bytes` (the configuration download does);
- JSON is parsed from those bytes with a depth bound (`json_body`), and a server's text reaches a
  message only as one short masked line (`smartid.servertext`).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
import requests.utils
import urllib3.exceptions

from smartid import errors
from smartid.httpbounds import (
    ACCEPT_ENCODING,
    MAX_ANSWER_BYTES,
    Adapter,
    Deadline,
    DeadlineResponse,
    active_deadline,
    read_body,
    reset_deadline,
    shown_size,
)
from smartid.inputs import deeper_than
from smartid.masking import MASKER
from smartid.servertext import server_line

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_JSON_DEPTH",
    "PublicAnswer",
    "PublicClient",
    "Session",
    "Timeouts",
    "check_status",
    "describe_exception",
    "json_body",
    "session",
    "translate",
]

# Deeper JSON is refused: the suite's contracts nest a few levels, and deep nesting is how a
# hostile answer makes a parser recurse until it fails.
MAX_JSON_DEPTH = 64
_SHOWN_URL = 200
_USER_AGENT = "smartid-suite"


@dataclass(frozen=True)
class Timeouts:
    """The site's timeouts: `connect` bounds the TCP connect and the TLS handshake each, `read`
    each wait for data; `total`, their sum, bounds the whole request."""

    connect: float = 5.0
    read: float = 10.0

    @property
    def total(self) -> float:
        return self.connect + self.read


def _plain(url: str) -> str:
    """scheme://host/path of a URL: no query or fragment, no control characters, masked."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    shown = "".join(ch if ch.isprintable() and not ch.isspace() else "%20" for ch in shown)
    shown = MASKER.mask(shown)
    return shown if len(shown) <= _SHOWN_URL else shown[: _SHOWN_URL - 3] + "..."


class Session(requests.Session):
    """A Session whose requests follow the suite's HTTP policy and whose failures are the
    suite's errors. `label` names the component in a redirect's sentence ("IDM Admin")."""

    def __init__(self, timeouts: Timeouts, label: str = "") -> None:
        super().__init__()
        self.timeouts = timeouts
        self.label = label

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        # requests follows what this returns; the suite follows nothing, whatever a caller asks.
        return None

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        max_bytes: int = MAX_ANSWER_BYTES,
        cut: bool = False,
        keep_redirect: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """The answer, its body read (at most `max_bytes`, decoded) unless `stream=True`, where
        the caller reads only the status and closes it. A larger body is refused, or with `cut`
        kept as its first `max_bytes + 1` bytes, so that the caller can say it was cut. A 3xx is
        `RedirectError`, or with `keep_redirect` the answer itself, for a caller that judges its
        headers (it is never followed either way)."""
        shown = url.decode() if isinstance(url, bytes) else url
        kwargs.setdefault("timeout", (self.timeouts.connect, self.timeouts.read))
        if kwargs.get("verify") is False:
            raise ValueError("TLS verification is never switched off in the suite")
        stream = bool(kwargs.pop("stream", False))
        kwargs["allow_redirects"] = False
        kwargs["stream"] = True
        deadline = Deadline.start(self.timeouts.total)
        token = active_deadline(deadline)
        try:
            response = super().request(method, url, *args, **kwargs)
            if 300 <= response.status_code < 400 and not keep_redirect:
                response.close()
                raise self._redirect(shown, response)
            if not stream:
                _read(response, shown, max_bytes, deadline, cut=cut)
            return response
        except requests.RequestException as exc:
            if deadline.expired:
                raise deadline.error(shown) from None
            raise translate(shown, exc) from None
        finally:
            reset_deadline(token)

    def _redirect(self, url: str, response: requests.Response) -> errors.RedirectError:
        where = response.headers.get("Location")
        location = _plain(urljoin(url, where)) if where else "nowhere (no Location header)"
        target = f"{self.label} {_plain(url)}" if self.label else _plain(url)
        return errors.RedirectError(target, response.status_code, location)


def _read(
    response: requests.Response, url: str, limit: int, deadline: Deadline, *, cut: bool
) -> None:
    """Read the body into the response, so that `.content`, `.text` and `json_body` work."""
    try:
        body = read_body(response, url, limit, cut=cut)
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        response.close()
        if deadline.expired:
            raise deadline.error(url) from None
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | socket.timeout):
            raise errors.TimeoutError(url, "timed out (read)") from None
        raise errors.ConnectError(url, "closed the connection mid-answer") from None
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]


def session(
    ca_bundle: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    timeouts: Timeouts | None = None,
    *,
    label: str = "",
) -> Session:
    """A hermetic Session: no environment proxies or CA paths, verification always on."""
    s = Session(timeouts or Timeouts(), label)
    s.trust_env = False
    s.verify = str(ca_bundle) if ca_bundle is not None else True
    s.headers["Accept-Encoding"] = ACCEPT_ENCODING
    if client_cert is not None:
        s.cert = (str(client_cert[0]), str(client_cert[1]))
    s.mount("https://", Adapter())
    s.mount("http://", Adapter())
    return s


class PublicClient:
    """Public documents that carry their own signatures and are usually served over plain http:
    CRLs and OCSP answers (RFC 5280 4.2.1.13, RFC 6960 A.1). The one place where the suite asks a
    URL from outside the site file over http:// off loopback, so it carries no credential: no
    client certificate, no Authorization, no cookie (it has no way to send one), and a URL with a
    user in it is refused before it is sent.

    It speaks HTTP/1.1 through `http.client`, not requests: these are small answers asked many
    times in a run, and a request costs about a quarter of the CPU (bench/README.md, TLS-009).
    The policy is the suite's all the same: no redirect followed, one deadline per request
    (connect, TLS, headers and body), bounded bodies, errors that name the URL. A connection
    stays open after its answer (keep-alive) for the next request to its origin from any thread,
    so that a run's questions to one CA share connections, and `open_ahead` opens one before any
    request needs it; `close` ends them all."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []  # every connection made, for close()
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._https: ssl.SSLContext | None = None

    def get(self, url: str, *, max_bytes: int = MAX_ANSWER_BYTES) -> PublicAnswer:
        return self.request("GET", url, max_bytes=max_bytes)

    def post(
        self, url: str, body: bytes, content_type: str, *, max_bytes: int = MAX_ANSWER_BYTES
    ) -> PublicAnswer:
        return self.request("POST", url, body=body, content_type=content_type, max_bytes=max_bytes)

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> PublicAnswer:
        """The answer's status and body (at most `max_bytes`); a 3xx is `RedirectError` and is
        not followed; network failures are the suite's errors naming `url`."""
        parts = urlsplit(url)
        origin = _public_origin(url, parts)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Accept-Encoding": "identity", "User-Agent": _USER_AGENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        deadline = Deadline.start(self.timeouts.total)
        while True:
            conn, reused = self._connection(origin)
            try:
                answer = self._exchange(conn, method, url, path, body, headers, max_bytes, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                # A kept connection the server has closed meanwhile: once more on a new one.
                if reused and not deadline.expired:
                    continue
                raise self._error(url, exc, deadline) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self._error(url, exc, deadline) from None
            self._keep(origin, conn)
            return answer

    def open_ahead(self, url: str, *, timeout: float | None = None) -> bool:
        """Open a connection to `url`'s origin now (within the connect timeout, or `timeout` if
        that is shorter) and keep it for the next request there, which then costs no connect.
        Nothing is sent. A connection that cannot be made is not kept (False): the request that
        needs it tries again and names the URL."""
        origin = _public_origin(url, urlsplit(url))
        conn = self._new(origin)
        conn.timeout = min(self.timeouts.connect, timeout or self.timeouts.connect)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException):
            conn.close()
            return False
        self._keep(origin, conn)
        return True

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        url: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        limit: int,
        deadline: Deadline,
    ) -> PublicAnswer:
        if conn.sock is None:
            conn.timeout = max(0.001, min(self.timeouts.connect, deadline.remaining()))
            conn.connect()
        sock = conn.sock
        assert sock is not None
        sock.settimeout(max(0.001, min(self.timeouts.read, deadline.remaining())))
        conn.request(method, path, body=body, headers=headers)
        sock.settimeout(self.timeouts.read)  # each read of the answer: also by the deadline
        token = active_deadline(deadline)
        try:
            response = conn.getresponse()
        finally:
            reset_deadline(token)
        try:
            return _public_answer(conn, response, url, limit)
        finally:
            response.close()  # its reader only: a kept connection stays open

    def _connection(self, origin: tuple[str, str, int]) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection to `origin` (the one kept last), or a new one; and whether it is
        already open."""
        with self._lock:
            kept = self._idle.get(origin)
            if kept:
                return kept.pop(), True
        return self._new(origin), False

    def _new(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection:
        scheme, host, port = origin
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = _PublicHTTPS(host, port, context=self._context())
        else:
            conn = _PublicHTTP(host, port)
        with self._lock:
            self._open.append(conn)
        return conn

    def _keep(self, origin: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        """Keep `conn` for the next request to `origin`, unless its answer ended it."""
        if conn.sock is None:
            return
        with self._lock:
            self._idle.setdefault(origin, []).append(conn)

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._https is None:
                # requests' own store (certifi), as the suite's other https requests have.
                self._https = ssl.create_default_context(
                    cafile=requests.utils.DEFAULT_CA_BUNDLE_PATH
                )
            return self._https

    def _error(self, url: str, exc: BaseException, deadline: Deadline) -> errors.TargetError:
        shown = _plain(url)
        if deadline.expired:
            return deadline.error(shown)
        observed = describe_exception(exc)
        if observed.startswith("TLS "):
            return errors.TLSError(shown, observed)
        if observed == "timed out":
            return errors.TimeoutError(shown, "timed out")
        if isinstance(exc, http.client.HTTPException) and not isinstance(
            exc, http.client.RemoteDisconnected
        ):
            return errors.ProtocolError(shown, observed)
        return errors.ConnectError(shown, observed)

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
            self._idle.clear()
        for conn in conns:
            conn.close()

    def __enter__(self) -> PublicClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _public_origin(url: str, parts: SplitResult) -> tuple[str, str, int]:
    """(scheme, host, port) of a public document's URL; `ValueError` for one the suite never
    fetches (not http or https, or with credentials in it)."""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{_plain(url)}: a public document is fetched over http or https only")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{_plain(url)}: a public document is never fetched with credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise errors.ProtocolError(_plain(url), "not a valid URL") from None
    return parts.scheme, parts.hostname, port


def _public_answer(
    conn: http.client.HTTPConnection, response: http.client.HTTPResponse, url: str, limit: int
) -> PublicAnswer:
    if 300 <= response.status < 400:
        conn.close()
        where = response.getheader("Location")
        location = _plain(urljoin(url, where)) if where else "nowhere (no Location header)"
        raise errors.RedirectError(_plain(url), response.status, location)
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        conn.close()
        shown = encoding[:40].encode("ascii", "replace").decode()
        raise errors.ProtocolError(
            _plain(url),
            f"answers in the content encoding '{shown}', which it was not asked for",
        )
    too_large = f"sent an answer larger than {shown_size(limit)}, the most the suite reads of it"
    announced = response.getheader("Content-Length", "").strip()
    if announced.isdigit() and int(announced) > limit:
        conn.close()
        raise errors.ProtocolError(_plain(url), too_large)
    data = response.read(limit + 1)
    if len(data) > limit:
        conn.close()
        raise errors.ProtocolError(_plain(url), too_large)
    if announced.isdigit() and len(data) < int(announced):  # http.client returns it short
        conn.close()
        raise errors.ConnectError(_plain(url), "closed the connection mid-answer")
    if not response.isclosed():  # more body than it announced, or an unfinished chunk
        conn.close()
    return PublicAnswer(response.status, data)


@dataclass(frozen=True)
class PublicAnswer:
    status: int
    body: bytes


class _PublicHTTP(http.client.HTTPConnection):
    response_class = DeadlineResponse


class _PublicHTTPS(http.client.HTTPSConnection):
    response_class = DeadlineResponse


def json_body(response: requests.Response) -> Any:
    """The answer's JSON, parsed from its bounded bytes; not JSON, or nested deeper than
    `MAX_JSON_DEPTH`, is a ProtocolError naming the URL."""
    url = response.url
    try:
        value = json.loads(response.content)
    except RecursionError:
        value = None
        deep = True
    except ValueError:
        raise errors.ProtocolError(url, "the answer is not JSON") from None
    else:
        deep = deeper_than(value, MAX_JSON_DEPTH)
    if deep:
        raise errors.ProtocolError(
            url, f"the answer is JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )
    return value


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for attr in ("reason", "__cause__", "__context__"):
            nxt = getattr(current, attr, None)
            if isinstance(nxt, BaseException):
                stack.append(nxt)
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                stack.append(arg)


def describe_exception(exc: BaseException) -> str:
    """What was observed, in a few words, from a low-level network exception."""
    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or cause.strerror or str(cause)
            return f"TLS handshake failed: {reason}"
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the peer"
        if isinstance(cause, socket.gaierror):
            return "host name could not be resolved"
    # urllib3 files a failed connect under its TimeoutError too, so timeouts are looked at last.
    for cause in causes:
        if isinstance(cause, socket.timeout | urllib3.exceptions.TimeoutError):
            return "timed out"
    text = str(exc)
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the peer closed the connection without answering"
    for cause in causes:
        if isinstance(cause, http.client.IncompleteRead | urllib3.exceptions.IncompleteRead):
            return "closed the connection mid-answer"
        if isinstance(cause, http.client.LineTooLong):
            return "sent a header line longer than the suite reads"
        if isinstance(cause, http.client.HTTPException):
            return "sent an answer that is not HTTP"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "closed the connection mid-answer"
    return f"{type(exc).__name__}"


def translate(url: str, exc: BaseException) -> errors.TargetError:
    """The suite's error for a failed request to `url`."""
    observed = describe_exception(exc)
    if isinstance(exc, requests.exceptions.SSLError) or observed.startswith("TLS "):
        return errors.TLSError(url, observed)
    if isinstance(exc, requests.exceptions.Timeout) and observed == "timed out":
        phase = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "read"
        return errors.TimeoutError(url, f"timed out ({phase})")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return errors.ConnectError(url, observed)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return errors.ProtocolError(url, "not a valid URL")
    return errors.ProtocolError(url, observed)


_STATUS_ERRORS: Mapping[int, type[errors.HTTPStatusError]] = {
    400: errors.RejectedError,
    401: errors.AuthenticationError,
    403: errors.AuthenticationError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    422: errors.RejectedError,
}


def _reason(response: requests.Response) -> str:
    if response.status_code in (401, 403):
        # The body of an authentication failure is not repeated: some servers echo the login.
        return "credentials refused" if response.status_code == 401 else "permission refused"
    if not response._content_consumed or not response.content:  # type: ignore[attr-defined]
        # An answer streamed for its status alone is not read for the reason either.
        return server_line(response.reason or "")
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return server_line(response.content.decode("utf-8", "replace")) or server_line(
            response.reason or ""
        )
    if deeper_than(body, MAX_JSON_DEPTH):
        return ""
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message", body.get("error", "")))
        return server_line(detail if isinstance(detail, str) else json.dumps(detail)[:1000])
    return ""


def check_status(response: requests.Response, *expected: int) -> requests.Response:
    """The response if its status is expected (default: any 2xx), else the matching error."""
    ok = response.status_code in expected if expected else 200 <= response.status_code < 300
    if ok:
        return response
    parts = urlsplit(response.request.url or response.url)
    target = f"{response.request.method} {parts.scheme}://{parts.netloc}{parts.path}"
    cls = _STATUS_ERRORS.get(response.status_code, errors.HTTPStatusError)
    raise cls(target, response.status_code, _reason(response))
