"""Smart ID Messaging (Hermod) in the lab: base `/hermod/rest`, as in the product (docs/lab.md).

Vendor-documented part (docs/vendor.md): `GET util/generateclient/{id}` prints a client
section; `POST command/ping` with `X-Api-Key: base64(client-id:key)` is accepted for an allowed
client, and Hermod then POSTs the callback to the client's callback-url plus the callback suffix
(`/callback/<type>` unless the lab is told otherwise: our reading of the API overview) with the
client's callback basic auth, verifying the server against its own trust store. The lab's own
part: `GET command/{id}` reads back how that callback went, `GET util/config-status` tells what
application.yml gave, and `POST util/refresh` is the lab's "refresh configuration".

application.yml is read at start-up and then only on `POST util/refresh`, as the product applies
an edited file only once its configuration is refreshed: until then Hermod serves the clients it
last loaded. A file that does not parse leaves the last good configuration in force, as a running
server would, and the refresh answers 422 with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from smartid.hermod.clients import HermodClient, HermodConfigError, generate_key, parse_clients
from smartid.hermod.config import client_section
from smartid.lab import outbound
from smartid.lab.web import bounded_body
from smartid.masking import Secret

__all__ = [
    "BASE_PATH",
    "DEFAULT_CALLBACK_SUFFIX",
    "MAX_COMMAND_BYTES",
    "HermodLab",
    "create_hermod_app",
]

BASE_PATH = "/hermod/rest"
# What the lab's Hermod appends to a client's callback-url; <type> is the command type.
DEFAULT_CALLBACK_SUFFIX = "/callback/<type>"
MAX_COMMAND_BYTES = 64 * 1024
# The product prints this placeholder for the operator to replace with the IDM hermod user.
_PLACEHOLDER_BASIC_AUTH = "username:password"
_GENERATED_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
# Outcomes are kept for reading back; the oldest go first so a long run cannot grow without end.
_KEPT_COMMANDS = 1000
# Compared against when the client is unknown, so that the answer takes as long as for a wrong key.
_NO_KEY = b"0" * 64

_log = logging.getLogger("smartid.lab.hermod")

State = Literal["pending", "delivered", "refused", "tls_error", "unreachable"]


def _never() -> bool:
    return False


@dataclass
class HermodLab:
    """What the Hermod app needs from the lab."""

    config_path: Path
    truststore: Path
    public_url: str
    callback_timeout: float = 5.0
    callback_suffix: str = DEFAULT_CALLBACK_SUFFIX
    # Fault hook: while it answers True, Hermod sends no callbacks.
    refuse_callbacks: Callable[[], bool] = field(default=_never)


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    clients: dict[str, HermodClient]
    loaded: datetime
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "clients": list(self.clients),
            "loaded": self.loaded.isoformat(timespec="milliseconds"),
            "error": self.error,
        }


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file cheaply: (mtime, size, inode); None when there is no file."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class _Configuration:
    """application.yml as last applied: read when Hermod starts and on each refresh."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._snapshot = _Snapshot({}, datetime.now(UTC), None)
        self._stamp: tuple[int, int, int] | None = None
        self.refresh()

    def current(self) -> _Snapshot:
        with self._lock:
            return self._snapshot

    def changed_since_refresh(self) -> bool:
        """Whether the file on disk is not the one last read (an edit not yet applied)."""
        with self._lock:
            return _stamp(self._path) != self._stamp

    def refresh(self) -> _Snapshot:
        """Read the file again; a file that does not parse keeps the last good clients."""
        with self._lock:
            self._stamp = _stamp(self._path)
            self._snapshot = self._read()
            return self._snapshot

    def _read(self) -> _Snapshot:
        if self._stamp is None:
            return _Snapshot({}, datetime.now(UTC), None)
        try:
            text = self._path.read_text(encoding="utf-8")
            clients = parse_clients(text, self._path.name)
        except (OSError, UnicodeDecodeError, HermodConfigError) as exc:
            problem = str(exc) if isinstance(exc, HermodConfigError) else f"{self._path}: {exc}"
            _log.warning("Hermod keeps its last good configuration: %s", problem)
            return replace(self._snapshot, error=problem)
        return _Snapshot({c.client_id: c for c in clients}, datetime.now(UTC), None)


def _unauthorized() -> HTTPException:
    return HTTPException(401, "a valid X-Api-Key is required")


def _authenticate(config: _Configuration, api_key: str | None) -> HermodClient:
    """The client whose base64(client-id:key) `api_key` is; 401 for anything else."""
    if not api_key:
        raise _unauthorized()
    try:
        decoded = base64.b64decode(api_key.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _unauthorized() from None
    client_id, colon, key = decoded.partition(":")
    if not colon:
        raise _unauthorized()
    client = config.current().clients.get(client_id)
    expected = client.key.reveal().encode() if client is not None else _NO_KEY
    if not hmac.compare_digest(key.encode(), expected) or client is None:
        raise _unauthorized()
    return client


# --- commands and callbacks -------------------------------------------------------------------


@dataclass(frozen=True)
class _Command:
    command_id: str
    client_id: str
    type: str
    callback_url: str | None
    state: State = "pending"
    status: int | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "commandId": self.command_id,
            "type": self.type,
            "state": self.state,
            "status": self.status,
            "reason": self.reason,
            "callbackUrl": self.callback_url,
        }


class _Commands:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: OrderedDict[str, _Command] = OrderedDict()

    def add(self, client: HermodClient, command_type: str, callback_url: str | None) -> _Command:
        command = _Command(str(uuid.uuid4()), client.client_id, command_type, callback_url)
        with self._lock:
            self._commands[command.command_id] = command
            while len(self._commands) > _KEPT_COMMANDS:
                self._commands.popitem(last=False)
        return command

    def settle(self, command_id: str, state: State, status: int | None, reason: str | None) -> None:
        with self._lock:
            command = self._commands.get(command_id)
            if command is not None:
                self._commands[command_id] = replace(
                    command, state=state, status=status, reason=reason
                )

    def get(self, command_id: str) -> _Command | None:
        with self._lock:
            return self._commands.get(command_id)


def _call_back(
    lab: HermodLab, client: HermodClient, command: _Command
) -> tuple[State, int | None, str | None]:
    """POST the command's result to the client's callback URL, as Hermod does: (state, HTTP
    status, reason)."""
    if lab.refuse_callbacks():
        return "unreachable", None, "callbacks disabled (fault)"
    if command.callback_url is None:
        return "unreachable", None, "the client has no callback-url"
    if not lab.truststore.is_file():
        return (
            "tls_error",
            None,
            f"Hermod's truststore {lab.truststore} is missing: it trusts no one",
        )
    url = command.callback_url
    auth = None
    if client.callback_basic_auth is not None:
        user, _, password = client.callback_basic_auth.reveal().partition(":")
        auth = (user, password)
    body = {"commandId": command.command_id, "type": command.type, "status": "OK"}
    try:
        answer = outbound.call(
            "POST",
            url,
            trust=lab.truststore,
            json_body=body,
            auth=auth,
            timeout=lab.callback_timeout,
        )
    except outbound.CallFailed as exc:
        return ("tls_error" if exc.tls else "unreachable"), None, exc.reason
    if 200 <= answer.status < 300:
        return "delivered", answer.status, None
    return "refused", answer.status, f"HTTP {answer.status}"


def _callback_url(lab: HermodLab, client: HermodClient, command_type: str) -> str | None:
    """The client's callback-url with the callback suffix for this command type."""
    if client.callback_url is None:
        return None
    suffix = lab.callback_suffix.replace("<type>", command_type)
    return client.callback_url.rstrip("/") + suffix


def _deliver(lab: HermodLab, commands: _Commands, client: HermodClient, command: _Command) -> None:
    try:
        state, status, reason = _call_back(lab, client, command)
    except Exception as exc:  # the command must leave "pending" whatever went wrong
        state, status, reason = "unreachable", None, f"callback failed: {type(exc).__name__}"
    commands.settle(command.command_id, state, status, reason)
    _log.info(
        "Hermod %s command %s of client %s: callback %s%s",
        command.type,
        command.command_id,
        command.client_id,
        state,
        f" ({reason})" if reason else "",
    )


# --- the app ----------------------------------------------------------------------------------


def create_hermod_app(lab: HermodLab) -> FastAPI:
    app = FastAPI(
        title="Smart ID lab: Messaging (Hermod)",
        version="1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{BASE_PATH}/openapi.json",
    )
    config = _Configuration(lab.config_path)
    commands = _Commands()

    @app.get(
        f"{BASE_PATH}/util/generateclient/{{client_id}}",
        tags=["util"],
        response_class=PlainTextResponse,
        summary="A client section with a fresh key, to paste under allowed-clients",
    )
    def generate_client(client_id: str) -> PlainTextResponse:
        if not _GENERATED_ID.match(client_id):
            raise HTTPException(400, "a client id is 1 to 64 letters, digits, '.', '_' or '-'")
        client = HermodClient(
            client_id=client_id,
            key=Secret(generate_key(), f"generated key of client '{client_id}'"),
            callback_url=lab.public_url,
            callback_basic_auth=Secret(_PLACEHOLDER_BASIC_AUTH, "placeholder"),
        )
        # The page holds a key: nothing on the way may keep a copy.
        return PlainTextResponse(client_section(client), headers={"Cache-Control": "no-store"})

    @app.get(f"{BASE_PATH}/util/config-status", tags=["lab"], summary="What application.yml gave")
    def config_status() -> dict[str, Any]:
        return {**config.current().as_json(), "changed": config.changed_since_refresh()}

    @app.post(
        f"{BASE_PATH}/util/refresh",
        tags=["lab"],
        summary="Refresh configuration: apply application.yml as it is now (the lab's own)",
    )
    def refresh() -> JSONResponse:
        snapshot = config.refresh()
        if snapshot.error is not None:
            # The last good clients stay in force; the caller learns why the file was not applied.
            return JSONResponse({"detail": snapshot.error, **snapshot.as_json()}, status_code=422)
        _log.info("Hermod applied application.yml: clients %s", ", ".join(snapshot.clients))
        return JSONResponse(snapshot.as_json())

    @app.post(
        f"{BASE_PATH}/command/ping",
        tags=["command"],
        status_code=202,
        summary="Ping: Hermod answers with a command id and calls the client back",
    )
    async def ping(
        request: Request, api_key: str | None = Header(None, alias="X-Api-Key")
    ) -> JSONResponse:
        client = await run_in_threadpool(_authenticate, config, api_key)
        await bounded_body(request, MAX_COMMAND_BYTES)
        command = commands.add(client, "ping", _callback_url(lab, client, "ping"))
        threading.Thread(
            target=_deliver,
            args=(lab, commands, client, command),
            name=f"hermod-callback-{command.command_id[:8]}",
            daemon=True,
        ).start()
        return JSONResponse({"commandId": command.command_id}, status_code=202)

    @app.get(
        f"{BASE_PATH}/command/{{command_id}}",
        tags=["lab"],
        summary="How the callback of a command went (only for the client that issued it)",
    )
    def command_status(
        command_id: str, api_key: str | None = Header(None, alias="X-Api-Key")
    ) -> dict[str, Any]:
        client = _authenticate(config, api_key)
        command = commands.get(command_id)
        if command is None or command.client_id != client.client_id:
            raise HTTPException(404, "no such command")
        return command.as_json()

    return app
