"""Client for Smart ID Messaging (Hermod): generate a client section, ping, read a command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from smartid import errors
from smartid.hermod.clients import HermodClient, HermodConfigError, parse_clients
from smartid.http import Timeouts, check_status, json_body, session
from smartid.masking import MASKER, Secret
from smartid.servertext import server_line

__all__ = ["CommandState", "HermodApi"]


@dataclass(frozen=True)
class CommandState:
    command_id: str
    state: str
    status: int | None
    reason: str | None
    callback_url: str | None


class HermodApi:
    """Hermod's REST API at `base_url` (e.g. https://host:20400/hermod/rest)."""

    def __init__(self, base_url: str, *, ca_bundle: Path | None, timeouts: Timeouts) -> None:
        self.base_url = base_url.rstrip("/")
        self._ca_bundle = ca_bundle
        self._timeouts = timeouts

    def generate_client(self, client_id: str) -> HermodClient:
        """A fresh client section from Hermod's generateclient page, parsed."""
        url = f"{self.base_url}/util/generateclient/{quote(client_id, safe='')}"
        with session(self._ca_bundle, timeouts=self._timeouts, label="Hermod") as http:
            text = check_status(http.get(url)).text
        # The page prints one list item, as it is pasted under allowed-clients.
        wrapped = "allowed-clients:\n" + "".join(f"  {line}\n" for line in text.splitlines())
        try:
            clients = parse_clients(wrapped, url)
        except HermodConfigError as exc:
            raise errors.ProtocolError(
                url, f"the client section does not parse ({server_line(str(exc))})"
            ) from None
        if len(clients) != 1:
            raise errors.ProtocolError(url, f"expected one client section, got {len(clients)}")
        MASKER.register(clients[0].key)
        MASKER.register(clients[0].api_key)
        return clients[0]

    def ping(self, api_key: Secret) -> str:
        """Send a ping command; the command id."""
        url = f"{self.base_url}/command/ping"
        with session(self._ca_bundle, timeouts=self._timeouts, label="Hermod") as http:
            response = check_status(http.post(url, json={}, headers=_key(api_key)))
        body: Any = json_body(response)
        if not isinstance(body, dict) or "commandId" not in body:
            raise errors.ProtocolError(url, "the answer has no commandId")
        return str(body["commandId"])

    def command(self, api_key: Secret, command_id: str) -> CommandState:
        url = f"{self.base_url}/command/{quote(command_id, safe='')}"
        with session(self._ca_bundle, timeouts=self._timeouts, label="Hermod") as http:
            body: Any = json_body(check_status(http.get(url, headers=_key(api_key))))
        if not isinstance(body, dict):
            raise errors.ProtocolError(url, "the answer is not a JSON object")
        return CommandState(
            command_id=str(body.get("commandId", command_id)),
            state=str(body.get("state")),
            status=body.get("status"),
            reason=body.get("reason"),
            callback_url=body.get("callbackUrl"),
        )


def _key(api_key: Secret) -> dict[str, str]:
    return {"X-Api-Key": api_key.reveal()}
