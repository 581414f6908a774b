"""The lab's Hermod, served over real HTTPS: it prints client sections, accepts a ping only with an
allowed client's X-Api-Key, really calls that client back over verified TLS and tells how it went,
and applies an edited application.yml only when its configuration is refreshed."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from smartid.hermod import HermodClient, generate_key, merge_client, parse_clients
from smartid.http import session
from smartid.lab.faults import listener_settings
from smartid.lab.hermod_app import MAX_COMMAND_BYTES, HermodLab, create_hermod_app
from smartid.lab.pki import LabPKI, ServerCredentials
from smartid.lab.server import UvicornListener
from smartid.masking import Secret
from tests.servers import closed_port

HERMOD_PASSWORD = "Hermod-pass-1"
OPERATOR_PATH = "/idm-operator/ws/hermod"
SETTLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class _Call:
    path: str
    authorization: str | None
    body: dict[str, Any]


class _CallbackServer(ThreadingHTTPServer):
    daemon_threads = True
    calls: list[_Call]


class _CallbackHandler(BaseHTTPRequestHandler):
    """IDM Operator's Hermod endpoint as far as Hermod sees it: it records every callback and
    refuses those under /refuse with 401."""

    server: _CallbackServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.calls.append(_Call(self.path, self.headers.get("Authorization"), body))
        self.send_response(401 if self.path.startswith("/refuse") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _callback_server(creds: ServerCredentials) -> Iterator[_CallbackServer]:
    server = _CallbackServer(("127.0.0.1", 0), _CallbackHandler)
    server.calls = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(creds.cert, creds.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def _serve(lab: HermodLab, pki: LabPKI) -> Iterator[int]:
    """The Hermod app on the lab's own listener, with the lab's Hermod TLS settings."""
    listener = UvicornListener(
        "hermod", create_hermod_app(lab), 0, listener_settings(pki, "hermod", frozenset())
    )
    try:
        yield listener.port
    finally:
        listener.stop()


def _new_client(client_id: str, callback_url: str, basic: str | None) -> HermodClient:
    return HermodClient(
        client_id,
        Secret(generate_key(), client_id),
        callback_url,
        Secret(basic, client_id) if basic else None,
    )


@dataclass
class _Hermod:
    lab: HermodLab
    base: str
    ca_bundle: Path
    http: requests.Session
    operator: _CallbackServer
    clients: dict[str, HermodClient] = field(default_factory=dict)

    def key(self, client_id: str) -> dict[str, str]:
        return {"X-Api-Key": self.clients[client_id].api_key.reveal()}

    def ping(self, client_id: str) -> str:
        response = self.http.post(f"{self.base}/command/ping", headers=self.key(client_id), json={})
        assert response.status_code == 202, response.text
        command_id: str = response.json()["commandId"]
        return command_id

    def outcome(self, client_id: str, command_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            response = self.http.get(
                f"{self.base}/command/{command_id}", headers=self.key(client_id)
            )
            assert response.status_code == 200, response.text
            outcome: dict[str, Any] = response.json()
            if outcome["state"] != "pending" or time.monotonic() > deadline:
                return outcome
            time.sleep(0.02)

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(f"{self.base}/util/config-status").json()
        return answer

    def refresh(self, expected: int = 200) -> dict[str, Any]:
        response = self.http.post(f"{self.base}/util/refresh")
        assert response.status_code == expected, response.text
        answer: dict[str, Any] = response.json()
        return answer


def _write(path: Path, text: str) -> None:
    # A new file replaces the old, as editors and the setup step do: a new inode every time.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@pytest.fixture(scope="module")
def hermod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Hermod]:
    root = tmp_path_factory.mktemp("hermod-lab")
    pki = LabPKI(root / "pki")
    pki.ensure("pw-123456")
    foreign = pki.issue_server("foreign-operator", issuer="foreign")
    (root / "hermod").mkdir()
    truststore = root / "hermod" / "truststore.pem"
    truststore.write_bytes(pki.ca_bundle.read_bytes())
    lab = HermodLab(
        config_path=root / "hermod" / "application.yml",
        truststore=truststore,
        public_url="https://localhost:20400/hermod/rest",
        callback_timeout=2.0,
    )
    with (
        _callback_server(pki.server("idm")) as operator,
        _callback_server(foreign) as untrusted,
        _serve(lab, pki) as port,
        session(pki.ca_bundle) as http,
    ):
        operator_url = f"https://localhost:{operator.server_address[1]}"
        basic = f"hermod:{HERMOD_PASSWORD}"
        clients = [
            _new_client("idm", f"{operator_url}{OPERATOR_PATH}", basic),
            _new_client("da", f"{operator_url}{OPERATOR_PATH}", None),
            _new_client("refusing", f"{operator_url}/refuse{OPERATOR_PATH}", basic),
            _new_client("untrusted", f"https://localhost:{untrusted.server_address[1]}/x", None),
            _new_client("gone", f"https://localhost:{closed_port()}/x", None),
        ]
        text = ""
        for client in clients:
            text = merge_client(text, client)
        _write(lab.config_path, text)
        base = f"https://localhost:{port}/hermod/rest"
        hermod = _Hermod(
            lab, base, pki.ca_bundle, http, operator, {c.client_id: c for c in clients}
        )
        hermod.refresh()
        yield hermod


@pytest.fixture
def config_restored(hermod: _Hermod) -> Iterator[Path]:
    """application.yml, put back as it was after the test (and applied by Hermod)."""
    path = hermod.lab.config_path
    original = path.read_text()
    yield path
    _write(path, original)
    assert hermod.refresh()["error"] is None


def test_generateclient_prints_a_section_with_a_fresh_key(hermod: _Hermod) -> None:
    url = f"{hermod.base}/util/generateclient/idm"
    first, second = hermod.http.get(url), hermod.http.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain")
    assert first.headers["cache-control"] == "no-store"
    [client] = parse_clients("allowed-clients:\n" + first.text)
    [again] = parse_clients("allowed-clients:\n" + second.text)
    assert client.client_id == "idm"
    assert re.fullmatch(r"[0-9a-f]{64}", client.key.reveal())
    assert client.key != again.key
    assert first.text.startswith(f"# X-Api-Key: {client.api_key.reveal()}\n")
    assert client.callback_url == hermod.lab.public_url
    assert client.callback_user == "username"


@pytest.mark.parametrize(
    "client_id",
    [pytest.param("a%20b", id="space"), pytest.param("x" * 65, id="too-long"), "a%3Ab"],
)
def test_generateclient_refuses_a_bad_client_id(hermod: _Hermod, client_id: str) -> None:
    response = hermod.http.get(f"{hermod.base}/util/generateclient/{client_id}")
    assert response.status_code == 400


def test_ping_is_called_back_with_the_clients_basic_auth(hermod: _Hermod) -> None:
    command_id = hermod.ping("idm")
    outcome = hermod.outcome("idm", command_id)
    assert outcome == {
        "commandId": command_id,
        "type": "ping",
        "state": "delivered",
        "status": 200,
        "reason": None,
        "callbackUrl": f"{hermod.clients['idm'].callback_url}/callback/ping",
    }
    [call] = [c for c in hermod.operator.calls if c.body.get("commandId") == command_id]
    token = base64.b64encode(f"hermod:{HERMOD_PASSWORD}".encode()).decode()
    assert call.path == f"{OPERATOR_PATH}/callback/ping"
    assert call.authorization == f"Basic {token}"
    assert call.body == {"commandId": command_id, "type": "ping", "status": "OK"}


def test_client_without_basic_auth_is_called_back_without_credentials(hermod: _Hermod) -> None:
    command_id = hermod.ping("da")
    assert hermod.outcome("da", command_id)["state"] == "delivered"
    [call] = [c for c in hermod.operator.calls if c.body.get("commandId") == command_id]
    assert call.authorization is None


@pytest.mark.parametrize(
    ("client_id", "state", "status", "reason"),
    [
        pytest.param("refusing", "refused", 401, "HTTP 401", id="receiver-answers-401"),
        pytest.param(
            "untrusted",
            "tls_error",
            None,
            "TLS certificate verification failed",
            id="receiver-ca-not-in-truststore",
        ),
        pytest.param("gone", "unreachable", None, "connection refused", id="closed-port"),
    ],
)
def test_failed_callbacks_are_told_apart(
    hermod: _Hermod, client_id: str, state: str, status: int | None, reason: str
) -> None:
    outcome = hermod.outcome(client_id, hermod.ping(client_id))
    assert (outcome["state"], outcome["status"]) == (state, status)
    assert reason in outcome["reason"]


def test_without_a_truststore_hermod_trusts_no_callback_server(
    hermod: _Hermod, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hermod.lab, "truststore", tmp_path / "missing.pem")
    outcome = hermod.outcome("idm", hermod.ping("idm"))
    assert outcome["state"] == "tls_error"
    assert "missing.pem is missing" in outcome["reason"]


def test_refused_callbacks_fault_makes_the_client_unreachable(
    hermod: _Hermod, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hermod.lab, "refuse_callbacks", lambda: True)
    outcome = hermod.outcome("idm", hermod.ping("idm"))
    assert (outcome["state"], outcome["reason"]) == ("unreachable", "callbacks disabled (fault)")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _other_clients_key(hermod: _Hermod) -> str:
    return _b64(f"idm:{hermod.clients['da'].key.reveal()}")


BAD_API_KEYS: list[Any] = [
    pytest.param(lambda h: None, id="missing"),
    pytest.param(lambda h: "not base64!", id="not-base64"),
    pytest.param(lambda h: _b64("idm"), id="no-colon"),
    pytest.param(lambda h: _b64(f"nobody:{'a' * 64}"), id="unknown-client"),
    pytest.param(lambda h: _b64(f"idm:{'0' * 64}"), id="wrong-key"),
    pytest.param(_other_clients_key, id="another-clients-key"),
]


@pytest.mark.parametrize("api_key", BAD_API_KEYS)
def test_ping_needs_the_api_key_of_an_allowed_client(
    hermod: _Hermod, api_key: Callable[[_Hermod], str | None]
) -> None:
    value = api_key(hermod)
    headers = {"X-Api-Key": value} if value is not None else {}
    calls = len(hermod.operator.calls)
    response = hermod.http.post(f"{hermod.base}/command/ping", headers=headers, json={})
    assert response.status_code == 401
    assert hermod.clients["da"].key.reveal() not in response.text
    assert len(hermod.operator.calls) == calls


def test_a_command_is_read_back_only_by_the_client_that_issued_it(hermod: _Hermod) -> None:
    command_id = hermod.ping("idm")
    assert hermod.outcome("idm", command_id)["commandId"] == command_id
    url = f"{hermod.base}/command/{command_id}"
    assert hermod.http.get(url, headers=hermod.key("da")).status_code == 404
    assert hermod.http.get(url).status_code == 401
    unknown = f"{hermod.base}/command/00000000-0000-4000-8000-000000000000"
    assert hermod.http.get(unknown, headers=hermod.key("idm")).status_code == 404


def test_a_body_up_to_64_kib_is_accepted(hermod: _Hermod) -> None:
    response = hermod.http.post(
        f"{hermod.base}/command/ping", headers=hermod.key("idm"), data=b" " * MAX_COMMAND_BYTES
    )
    assert response.status_code == 202
    hermod.outcome("idm", response.json()["commandId"])


@pytest.mark.parametrize("chunked", [False, True], ids=["declared-length", "chunked"])
def test_a_larger_body_is_refused_before_it_is_read(hermod: _Hermod, chunked: bool) -> None:
    port = int(hermod.base.split(":")[2].split("/")[0])
    context = ssl.create_default_context(cafile=str(hermod.ca_bundle))
    connection = http.client.HTTPSConnection("localhost", port, timeout=5, context=context)
    try:
        connection.putrequest("POST", "/hermod/rest/command/ping")
        connection.putheader("X-Api-Key", hermod.clients["idm"].api_key.reveal())
        if chunked:
            # Past the limit by one chunk, and then nothing: only a bounded read answers now.
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            chunk = b" " * 16384
            for _ in range(MAX_COMMAND_BYTES // len(chunk) + 1):
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            # A gigabyte announced and none sent: the answer cannot wait for the body.
            connection.putheader("Content-Length", str(1 << 30))
            connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        response.read()
    finally:
        connection.close()


def test_an_edited_file_is_applied_only_on_refresh(hermod: _Hermod, config_restored: Path) -> None:
    late = _new_client("late", hermod.clients["idm"].callback_url or "", None)
    hermod.clients["late"] = late
    _write(config_restored, merge_client(config_restored.read_text(), late))
    status = hermod.status()
    assert "late" not in status["clients"]
    assert status["changed"] is True
    response = hermod.http.post(f"{hermod.base}/command/ping", headers=hermod.key("late"), json={})
    assert response.status_code == 401, "Hermod applied the edit before a refresh"
    assert "late" in hermod.refresh()["clients"]
    assert hermod.status()["changed"] is False
    assert hermod.outcome("late", hermod.ping("late"))["state"] == "delivered"


def test_a_malformed_file_keeps_the_last_good_clients(
    hermod: _Hermod, config_restored: Path
) -> None:
    before = hermod.status()
    _write(
        config_restored,
        config_restored.read_text().replace("  - client-id: da", "\t- client-id: da"),
    )
    refused = hermod.refresh(expected=422)
    after = hermod.status()
    assert after["clients"] == before["clients"]
    assert after["loaded"] == before["loaded"]
    assert re.fullmatch(
        r"application\.yml line \d+, column 1: found character '\\t' that cannot start any token",
        after["error"],
    )
    assert refused["detail"] == after["error"]
    assert hermod.ping("da")


def test_a_suffix_other_than_the_default_is_appended_to_the_callback_url(
    hermod: _Hermod, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hermod.lab, "callback_suffix", "/in/<type>/now")
    command_id = hermod.ping("idm")
    assert hermod.outcome("idm", command_id)["state"] == "delivered"
    [call] = [c for c in hermod.operator.calls if c.body.get("commandId") == command_id]
    assert call.path == f"{OPERATOR_PATH}/in/ping/now"
