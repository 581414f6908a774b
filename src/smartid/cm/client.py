"""A client for Certificate Manager as the officer IDM uses: who CM sees, and the token procedures
the officer may use. CM's REST API is not public; the paths are the lab CM's (docs/cm-lab-api.md),
and a site names its ping only where its CM offers one (`ping_url`). What works against any CM is
the mutual-TLS proof of `smartid.cm.mtls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartid.errors import ProtocolError
from smartid.http import Timeouts, check_status, json_body, session

__all__ = ["CMPing", "cm_ping", "cm_token_procedures"]


@dataclass(frozen=True)
class CMPing:
    """What CM said about the connection: the officer it saw and the TLS version."""

    officer: str
    serial: str
    issuer: str
    protocol: str


def cm_ping(
    ping_url: str, *, ca_bundle: Path | None, client: tuple[Path, Path] | None, timeouts: Timeouts
) -> CMPing:
    """Who CM's ping at `ping_url` (the site's `ping_url`) sees with this client certificate."""
    target, body = _get_json(ping_url, ca_bundle, client, timeouts)
    fields = ("officer", "serial", "issuer", "protocol")
    if body.get("status") != "OK" or not all(isinstance(body.get(f), str) for f in fields):
        raise ProtocolError(target, f"the ping answer lacks status OK or one of {fields}")
    return CMPing(body["officer"], body["serial"], body["issuer"], body["protocol"])


def cm_token_procedures(
    url: str, *, ca_bundle: Path | None, client: tuple[Path, Path] | None, timeouts: Timeouts
) -> list[str]:
    """The names of the token procedures the officer may use, in CM's order."""
    target, body = _get_json(
        f"{url.rstrip('/')}/api/v1/token-procedures", ca_bundle, client, timeouts
    )
    procedures = body.get("token_procedures")
    if not isinstance(procedures, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in procedures
    ):
        raise ProtocolError(target, "the answer has no list of named token_procedures")
    return [p["name"] for p in procedures]


def _get_json(
    target: str, ca_bundle: Path | None, client: tuple[Path, Path] | None, timeouts: Timeouts
) -> tuple[str, dict[str, Any]]:
    with session(ca_bundle, client, timeouts, label="CM") as http:
        body = json_body(check_status(http.get(target)))
    if not isinstance(body, dict):
        raise ProtocolError(target, "the answer is not a JSON object")
    return target, body
