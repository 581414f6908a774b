"""The one place where the suite's HTTP requests are made and their failures translated.

`session()` gives a `requests.Session` that ignores proxy and CA environment variables, always
verifies TLS against the given CA bundle (or the system store), sends an explicit timeout with every
request, and raises the suite's errors (`smartid.errors`) instead of requests/ssl/socket ones, each
naming the URL and what was observed.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3.exceptions

from smartid import errors
from smartid.masking import MASKER

__all__ = ["Timeouts", "check_status", "describe_exception", "session"]


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 10.0


class _Session(requests.Session):
    """A Session whose requests carry a timeout and whose failures are the suite's errors."""

    def __init__(self, timeouts: Timeouts) -> None:
        super().__init__()
        self.timeouts = timeouts

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", (self.timeouts.connect, self.timeouts.read))
        if kwargs.get("verify") is False:
            raise ValueError("TLS verification is never switched off in the suite")
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            shown = url.decode() if isinstance(url, bytes) else url
            raise translate(shown, exc) from None


def session(
    ca_bundle: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    timeouts: Timeouts | None = None,
) -> requests.Session:
    """A hermetic Session: no environment proxies or CA paths, verification always on."""
    s = _Session(timeouts or Timeouts())
    s.trust_env = False
    s.verify = str(ca_bundle) if ca_bundle is not None else True
    if client_cert is not None:
        s.cert = (str(client_cert[0]), str(client_cert[1]))
    # No automatic retries: a failure is reported once, as it happened.
    s.mount("https://", requests.adapters.HTTPAdapter(max_retries=0))
    s.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
    return s


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
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return MASKER.mask(text[0][:200]) if text else response.reason or ""
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message", body.get("error", "")))
        if isinstance(detail, str):
            return MASKER.mask(detail[:300])
        return MASKER.mask(str(detail)[:300])
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
