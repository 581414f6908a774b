"""Calls between the lab's components: IDM to CM and to Hermod, Hermod back to IDM Operator.

These are the lab's own few lines on `requests`, apart from the suite's client (`smartid.http`):
the suite's checks judge what the lab's components do to each other, so a bug shared by both
sides would pass against the lab and fail against a real deployment, and no test would see it.
Each call verifies TLS against the truststore it is given, follows no redirect, ignores proxy
environment variables, reads a bounded body, and fails as `CallFailed` with a short reason.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509

__all__ = ["Answer", "CallFailed", "call", "presented_certificate"]

MAX_BODY = 1024 * 1024


class CallFailed(Exception):
    """A call that got no HTTP answer; `tls` when the TLS handshake was what failed."""

    def __init__(self, url: str, reason: str, *, tls: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.tls = tls


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    *,
    trust: Path,
    timeout: float,
    client_cert: tuple[Path, Path] | None = None,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    """One HTTPS call, verified against `trust`; any status is an `Answer`."""
    with requests.Session() as http:
        http.trust_env = False
        try:
            response = http.request(
                method,
                url,
                verify=str(trust),
                cert=(str(client_cert[0]), str(client_cert[1])) if client_cert else None,
                headers=dict(headers or {}),
                json=json_body,
                auth=auth,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
            )
            with response:
                body = response.raw.read(MAX_BODY + 1, decode_content=True)
        except requests.RequestException as exc:
            reason, tls = _reason(exc)
            raise CallFailed(url, reason, tls=tls) from None
    if len(body) > MAX_BODY:
        raise CallFailed(url, f"the answer is larger than {MAX_BODY} bytes")
    return Answer(response.status_code, body)


def presented_certificate(url: str, timeout: float) -> x509.Certificate | None:
    """The certificate a server presents, read without verifying it (to name it in a trust
    error; nothing is sent). None when the server cannot be reached or presents none."""
    parts = urlsplit(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # observe only: the certificate is named, never trusted
    try:
        with (
            socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))


def _reason(exc: requests.RequestException) -> tuple[str, bool]:
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message}", True
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}", True
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused", False
    if isinstance(exc, requests.Timeout):
        return "timed out", False
    if isinstance(exc, requests.ConnectionError):
        return "the connection failed or was closed without an answer", False
    return type(exc).__name__, False
