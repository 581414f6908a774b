"""What IDM really does behind the admin contract's actions in the lab (DESIGN §4).

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

from smartid import errors
from smartid.cm import (
    ConnectionZipError,
    client_cert_files,
    cm_ping,
    cm_token_procedures,
    keystore_password,
    read_connection_zip,
)
from smartid.cm.connection_zip import ConnectionZip
from smartid.http import Timeouts, check_status, session
from smartid.lab.admin_api import Actions
from smartid.tls import ProbeTarget, observe

__all__ = ["CallbackInbox", "LabActions", "ReceivedCallback"]

TIMEOUTS = Timeouts(connect=3.0, read=5.0)


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

    def _connection(self, connection_zip: bytes | None) -> ConnectionZip:
        if connection_zip is None:
            raise errors.PackageError("CM connection zip", "no CM connection zip is uploaded")
        try:
            return read_connection_zip(connection_zip)
        except ConnectionZipError as exc:
            raise errors.PackageError("CM connection zip", str(exc)) from None

    @contextmanager
    def _cm_client(self, parsed: ConnectionZip) -> Iterator[tuple[Path, tuple[Path, Path]]]:
        with self._private_dir() as folder:
            trust = folder / "trust.pem"
            trust.write_bytes(b"".join(parsed.trust_certs))
            password = keystore_password(parsed)
            with client_cert_files(parsed.keystore, password, folder) as client:
                yield trust, client

    def test_ca(self, connection_zip: bytes | None) -> dict[str, Any]:
        try:
            parsed = self._connection(connection_zip)
            with self._cm_client(parsed) as (trust, client):
                ping = cm_ping(parsed.url, ca_bundle=trust, client=client, timeouts=TIMEOUTS)
        except errors.SmartIDError as exc:
            return {"ok": False, "error": str(exc)}
        peer = urlsplit(parsed.url)
        return {
            "ok": True,
            "error": None,
            "protocol": ping.protocol,
            "peer": f"{peer.hostname}:{peer.port or 443}",
            "officer": ping.officer,
        }

    def certificate_types(self, connection_zip: bytes | None) -> tuple[list[str], str | None]:
        try:
            parsed = self._connection(connection_zip)
            with self._cm_client(parsed) as (trust, client):
                types = cm_token_procedures(
                    parsed.url, ca_bundle=trust, client=client, timeouts=TIMEOUTS
                )
        except errors.SmartIDError as exc:
            return [], str(exc)
        return types, None

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
                with session(bundle, timeouts=TIMEOUTS) as http:
                    answer = check_status(http.post(f"{url}/ping", headers=headers, json={}))
                    command_id = str(answer.json()["commandId"])
            except errors.TLSError as exc:
                return _failed("idm-to-hermod", f"{exc} ({_presented(url)})")
            except errors.SmartIDError as exc:
                return _failed("idm-to-hermod", str(exc))
            except (ValueError, KeyError):
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


def _presented(url: str) -> str:
    """Which certificate Hermod presented, for a trust error that names it."""
    try:
        facts = observe(ProbeTarget.from_url("hermod", url), legacy=False)
    except errors.SmartIDError:
        return "Hermod's certificate could not be read"
    if not facts.chain:
        return "Hermod presented no certificate"
    leaf = facts.chain[0]
    return f"Hermod presented '{leaf.subject}' issued by '{leaf.issuer}'; IDM's truststore lacks it"


def _failed(leg: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "error": detail, "legs": [{"leg": leg, "ok": False, "detail": detail}]}


def _command_reason(bundle: Path, url: str, command_id: str, headers: dict[str, str]) -> str:
    try:
        with session(bundle, timeouts=TIMEOUTS) as http:
            state = check_status(http.get(f"{url}/{command_id}", headers=headers)).json()
    except (errors.SmartIDError, ValueError) as exc:
        return f"Hermod's command state cannot be read ({exc})"
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
