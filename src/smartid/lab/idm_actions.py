"""What IDM really does behind the admin contract's actions in the lab (docs/lab.md).

"Test connection" of the CA opens an mTLS connection to CM with the officer keystore of the uploaded
CM connection zip; "import certificate types" reads CM's token procedures; the messaging test sends
a ping to Hermod with the stored authentication token, verifying Hermod against IDM's truststore,
and succeeds only when Hermod's callback has arrived at IDM Operator's Hermod endpoint.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from smartid.lab import outbound
from smartid.lab.admin_api import Actions
from smartid.lab.cm_connection import (
    CMConnection,
    ConnectionRefused,
    officer_files,
    read_cm_connection,
)

__all__ = ["CallbackInbox", "LabActions", "ReceivedCallback"]

TIMEOUT = 5.0


@dataclass(frozen=True)
class ReceivedCallback:
    command_id: str
    command: str
    user: str | None
    at: datetime


class CallbackInbox:
    """Hermod callbacks that IDM Operator accepted, by command id (in memory)."""

    def __init__(self) -> None:
        self._received: dict[str, ReceivedCallback] = {}
        self._changed = threading.Condition()

    def add(self, command_id: str, command: str, user: str | None) -> None:
        with self._changed:
            self._received[command_id] = ReceivedCallback(
                command_id, command, user, datetime.now(UTC)
            )
            if len(self._received) > 1000:
                self._received.pop(next(iter(self._received)))
            self._changed.notify_all()

    def wait(self, command_id: str, timeout: float) -> ReceivedCallback | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while command_id not in self._received:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self._received[command_id]


class LabActions(Actions):
    def __init__(self, work_dir: Path, inbox: CallbackInbox, callback_wait: float = 8.0) -> None:
        self.work_dir = work_dir
        self.inbox = inbox
        self.callback_wait = callback_wait

    @contextmanager
    def _private_dir(self) -> Iterator[Path]:
        self.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as folder:
            yield Path(folder)

    # --- CA -----------------------------------------------------------------------------------

    def _cm_get(self, connection_zip: bytes | None, path: str) -> tuple[CMConnection, Any]:
        """A JSON object from the lab CM, asked as the officer of the uploaded connection zip."""
        if connection_zip is None:
            raise _Failed("CM connection zip: no CM connection zip is uploaded")
        try:
            connection = read_cm_connection(connection_zip)
        except ConnectionRefused as exc:
            raise _Failed(f"CM connection zip: {exc}") from None
        url = f"{connection.url.rstrip('/')}/api/v1/{path}"
        with self._private_dir() as folder, officer_files(connection, folder) as files:
            trust, cert, key = files
            try:
                answer = outbound.call(
                    "GET", url, trust=trust, client_cert=(cert, key), timeout=TIMEOUT
                )
            except outbound.CallFailed as exc:
                raise _Failed(str(exc)) from None
        if answer.status != 200:
            raise _Failed(f"GET {url}: HTTP {answer.status}")
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _Failed(f"{url}: the answer is not a JSON object")
        return connection, body

    def test_ca(self, connection_zip: bytes | None) -> dict[str, Any]:
        try:
            connection, ping = self._cm_get(connection_zip, "ping")
        except _Failed as exc:
            return {"ok": False, "error": str(exc)}
        if ping.get("status") != "OK" or not isinstance(ping.get("officer"), str):
            return {"ok": False, "error": f"{connection.url}: CM's ping answer is not OK"}
        peer = urlsplit(connection.url)
        return {
            "ok": True,
            "error": None,
            "protocol": ping.get("protocol"),
            "peer": f"{peer.hostname}:{peer.port or 443}",
            "officer": ping["officer"],
        }

    def certificate_types(self, connection_zip: bytes | None) -> tuple[list[str], str | None]:
        try:
            connection, body = self._cm_get(connection_zip, "token-procedures")
        except _Failed as exc:
            return [], str(exc)
        procedures = body.get("token_procedures")
        if not isinstance(procedures, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) for p in procedures
        ):
            return [], f"{connection.url}: CM's answer has no list of named token_procedures"
        return [p["name"] for p in procedures], None

    # --- messaging ----------------------------------------------------------------------------

    def test_messaging(self, server: dict[str, Any], trusted_pems: list[str]) -> dict[str, Any]:
        url = str(server.get("url") or "").rstrip("/")
        token = server.get("authentication_token")
        if not url or not token:
            missing = "URL" if not url else "authentication token"
            return _failed("idm-to-hermod", f"the messaging server has no {missing}")
        if not trusted_pems:
            return _failed(
                "idm-to-hermod",
                f"{url}: TLS certificate verification failed: IDM's truststore is empty "
                f"({_presented(url)})",
            )
        with self._private_dir() as folder:
            bundle = folder / "truststore.pem"
            bundle.write_text("".join(trusted_pems))
            headers = {"X-Api-Key": str(token)}
            try:
                answer = outbound.call(
                    "POST",
                    f"{url}/ping",
                    trust=bundle,
                    headers=headers,
                    json_body={},
                    timeout=TIMEOUT,
                )
            except outbound.CallFailed as exc:
                detail = f"{exc} ({_presented(url)})" if exc.tls else str(exc)
                return _failed("idm-to-hermod", detail)
            if not 200 <= answer.status < 300:
                return _failed("idm-to-hermod", f"POST {url}/ping: HTTP {answer.status}")
            try:
                command_id = str(answer.json()["commandId"])
            except (ValueError, KeyError, TypeError):
                return _failed("idm-to-hermod", f"{url}/ping: Hermod's answer has no commandId")
            sent = {"leg": "idm-to-hermod", "ok": True, "detail": f"command {command_id} accepted"}
            received = self.inbox.wait(command_id, self.callback_wait)
            if received is not None:
                back = {
                    "leg": "hermod-to-idm",
                    "ok": True,
                    "detail": f"callback arrived as user {received.user or 'anonymous'}",
                }
                return {"ok": True, "error": None, "legs": [sent, back]}
            reason = _command_reason(bundle, url, command_id, headers)
        back = {"leg": "hermod-to-idm", "ok": False, "detail": reason}
        return {
            "ok": False,
            "error": f"Hermod's callback did not arrive: {reason}",
            "legs": [sent, back],
        }


class _Failed(Exception):
    """An action that failed; the message is what IDM shows."""


def _presented(url: str) -> str:
    """Which certificate Hermod presented, for a trust error that names it."""
    leaf = outbound.presented_certificate(url, TIMEOUT)
    if leaf is None:
        return "Hermod's certificate could not be read"
    subject, issuer = leaf.subject.rfc4514_string(), leaf.issuer.rfc4514_string()
    return f"Hermod presented '{subject}' issued by '{issuer}'; IDM's truststore lacks it"


def _failed(leg: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "error": detail, "legs": [{"leg": leg, "ok": False, "detail": detail}]}


def _command_reason(bundle: Path, url: str, command_id: str, headers: dict[str, str]) -> str:
    try:
        answer = outbound.call(
            "GET", f"{url}/{command_id}", trust=bundle, headers=headers, timeout=TIMEOUT
        )
        state = answer.json() if answer.status == 200 else None
    except (outbound.CallFailed, ValueError) as exc:
        return f"Hermod's command state cannot be read ({exc})"
    if not isinstance(state, dict):
        return f"Hermod's command state cannot be read (HTTP {answer.status})"
    kind = state.get("state")
    target = state.get("callbackUrl") or "the callback URL"
    if kind == "refused":
        status = state.get("status")
        hint = " (callback-basic-auth must be the IDM hermod user)" if status == 401 else ""
        return f"{target} refused Hermod's callback with HTTP {status}{hint}"
    if kind == "tls_error":
        return f"Hermod does not trust {target}: {state.get('reason')}"
    if kind == "unreachable":
        return f"Hermod cannot reach {target}: {state.get('reason')}"
    return f"Hermod's command is {kind} after the wait"
