"""The lab CM over real sockets: it names the officer behind the client certificate, lists that
officer's token procedures, and lets the TLS layer refuse every certificate the lab CA did not
issue or that has expired; its settings are read per connection and a silent client holds no one
up."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from smartid.cm import client_cert_files, cm_ping, cm_token_procedures
from smartid.errors import AuthenticationError, ConnectError, TLSError
from smartid.http import Timeouts, session
from smartid.lab.cm_server import CMServer, CMSettings
from smartid.lab.pki import LabPKI, ServerCredentials
from smartid.masking import Secret

PASSWORD = "pw-123456"
TIMEOUTS = Timeouts(connect=3.0, read=3.0)
HANDSHAKE_TIMEOUT = 0.5
REQUEST = b"GET /cm/api/v1/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    lab = LabPKI(tmp_path_factory.mktemp("lab") / "pki")
    lab.ensure(PASSWORD)
    return lab


@pytest.fixture(scope="module")
def clients(pki: LabPKI) -> dict[str, ServerCredentials]:
    """Client certificates other than the officer's: untrusted, expired, and without rights."""
    expired = datetime.now(UTC) - timedelta(days=1)
    return {
        "foreign": pki.issue_client("foreign", common_name="IDM Officer", issuer="foreign"),
        "expired": pki.issue_client("expired", common_name="IDM Officer", not_after=expired),
        "other": pki.issue_client("other", common_name="Someone"),
    }


@dataclass
class Switch:
    """The settings callable the server reads per connection; tests replace `current`."""

    current: CMSettings

    def __call__(self) -> CMSettings:
        return self.current


@pytest.fixture
def settings(pki: LabPKI) -> Switch:
    server = pki.server("cm")
    return Switch(CMSettings(server.cert, server.key, pki.ca_bundle))


@pytest.fixture
def cm(settings: Switch) -> Iterator[CMServer]:
    sock = socket.create_server(("127.0.0.1", 0))
    with CMServer(sock, settings, handshake_timeout=HANDSHAKE_TIMEOUT) as server:
        yield server


@pytest.fixture
def officer(pki: LabPKI, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The officer's PEM files as the suite makes them: from the PKCS#12 IDM is given."""
    with client_cert_files(pki.officer.p12.read_bytes(), Secret(PASSWORD, "test"), tmp_path) as f:
        yield f


def _url(cm: CMServer) -> str:
    return f"https://localhost:{cm.port}/cm"


def _ping(cm: CMServer) -> str:
    return f"{_url(cm)}/api/v1/ping"


def _files(creds: ServerCredentials) -> tuple[Path, Path]:
    return creds.cert, creds.key


def _raw_ping(
    cm: CMServer, ca: Path, version: ssl.TLSVersion, client: ServerCredentials | None
) -> bytes:
    """The whole answer to a ping over a connection pinned to one TLS version."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca)
    context.minimum_version = context.maximum_version = version
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    with (
        socket.create_connection(("127.0.0.1", cm.port), timeout=3) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(REQUEST)
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
        return answer


def test_ping_names_the_officer_of_the_client_certificate(
    cm: CMServer, pki: LabPKI, officer: tuple[Path, Path]
) -> None:
    ping = cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=officer, timeouts=TIMEOUTS)
    cert = x509.load_pem_x509_certificates(pki.officer.cert.read_bytes())[0]
    assert ping.officer == "IDM Officer"
    assert ping.serial == f"{cert.serial_number:x}"
    assert ping.issuer == "Smart ID Lab Issuing CA"
    assert ping.protocol == "TLSv1.3"


def test_token_procedures_are_the_officers_list(
    cm: CMServer, pki: LabPKI, officer: tuple[Path, Path]
) -> None:
    names = cm_token_procedures(
        _url(cm), ca_bundle=pki.ca_bundle, client=officer, timeouts=TIMEOUTS
    )
    assert names == ["Smart ID user card", "Smart ID virtual smart card", "Smart ID mobile"]
    with session(pki.ca_bundle, officer, TIMEOUTS) as http:
        body = http.get(f"{_url(cm)}/api/v1/token-procedures").json()
    assert body["officer"] == "IDM Officer"
    assert body["token_procedures"][0]["certificate_procedures"] == [
        "Card authentication",
        "Card signature",
    ]


def test_an_officer_without_token_procedures_gets_403(
    cm: CMServer, pki: LabPKI, clients: dict[str, ServerCredentials]
) -> None:
    other = _files(clients["other"])
    url = _url(cm)
    ping = cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=other, timeouts=TIMEOUTS)
    assert ping.officer == "Someone"
    with pytest.raises(AuthenticationError) as caught:
        cm_token_procedures(url, ca_bundle=pki.ca_bundle, client=other, timeouts=TIMEOUTS)
    assert caught.value.status == 403
    with session(pki.ca_bundle, other, TIMEOUTS) as http:
        response = http.get(f"{url}/api/v1/token-procedures")
    assert response.status_code == 403
    assert response.json() == {
        "error": "officer 'Someone' has no permission on any token procedure"
    }


def test_an_unknown_path_is_404_json(cm: CMServer, pki: LabPKI, officer: tuple[Path, Path]) -> None:
    with session(pki.ca_bundle, officer, TIMEOUTS) as http:
        response = http.get(f"{_url(cm)}/api/v1/officers")
    assert response.status_code == 404
    assert response.json() == {"error": "no such path: /cm/api/v1/officers"}


def test_a_client_without_certificate_is_a_suite_error(cm: CMServer, pki: LabPKI) -> None:
    with pytest.raises((TLSError, ConnectError)) as caught:
        cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=None, timeouts=TIMEOUTS)
    assert f"localhost:{cm.port}/cm/api/v1/ping" in str(caught.value)


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
def test_the_officer_is_answered_under_either_tls_version(
    cm: CMServer, pki: LabPKI, version: ssl.TLSVersion
) -> None:
    officer = pki.officer
    answer = _raw_ping(cm, pki.ca_bundle, version, ServerCredentials(officer.cert, officer.key))
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b'"officer": "IDM Officer"' in answer


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
@pytest.mark.parametrize("client", [None, "foreign", "expired"], ids=["none", "foreign", "expired"])
def test_tls_layer_refuses_a_missing_foreign_or_expired_client_certificate(
    cm: CMServer,
    pki: LabPKI,
    clients: dict[str, ServerCredentials],
    version: ssl.TLSVersion,
    client: str | None,
) -> None:
    creds = None if client is None else clients[client]
    try:
        answer = _raw_ping(cm, pki.ca_bundle, version, creds)
    except (ssl.SSLError, OSError):
        return  # the handshake, or under TLS 1.3 the first read, failed: refused
    assert answer == b"", "CM answered a client whose certificate it must refuse"


@pytest.mark.parametrize("client", ["foreign", "expired"], ids=["foreign", "expired"])
def test_refused_officer_certificate_is_a_suite_error(
    cm: CMServer, pki: LabPKI, clients: dict[str, ServerCredentials], client: str
) -> None:
    creds = _files(clients[client])
    with pytest.raises((TLSError, ConnectError)):
        cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=creds, timeouts=TIMEOUTS)


def test_relaxed_settings_are_picked_up_by_the_next_connection_and_answer_401(
    cm: CMServer, pki: LabPKI, settings: Switch, officer: tuple[Path, Path]
) -> None:
    url = f"{_url(cm)}/api/v1/ping"
    with session(pki.ca_bundle, None, TIMEOUTS) as http:
        with pytest.raises((TLSError, ConnectError)):
            http.get(url)
        settings.current = replace(settings.current, require_client_cert=False)
        response = http.get(url)
    assert response.status_code == 401
    assert response.json() == {"error": "client certificate required"}
    with pytest.raises(AuthenticationError):
        cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=None, timeouts=TIMEOUTS)
    # A certificate that is sent is still verified and named.
    ping = cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=officer, timeouts=TIMEOUTS)
    assert ping.officer == "IDM Officer"


def test_a_server_tls_version_cap_shows_in_the_ping(
    cm: CMServer, pki: LabPKI, settings: Switch, officer: tuple[Path, Path]
) -> None:
    settings.current = replace(settings.current, maximum_version=ssl.TLSVersion.TLSv1_2)
    ping = cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=officer, timeouts=TIMEOUTS)
    assert ping.protocol == "TLSv1.2"


def test_equal_settings_share_one_tls_context(cm: CMServer, settings: Switch) -> None:
    first = cm.context()
    settings.current = replace(settings.current)  # equal value, another object
    assert cm.context() is first
    settings.current = replace(settings.current, require_client_cert=False)
    assert cm.context() is not first


def test_a_silent_client_neither_blocks_others_nor_keeps_its_thread(
    cm: CMServer, pki: LabPKI, officer: tuple[Path, Path]
) -> None:
    with socket.create_connection(("127.0.0.1", cm.port), timeout=3) as silent:
        ping = cm_ping(_ping(cm), ca_bundle=pki.ca_bundle, client=officer, timeouts=TIMEOUTS)
        assert ping.officer == "IDM Officer"
        started = time.monotonic()
        try:
            closed = silent.recv(1) == b""
        except ConnectionResetError:
            closed = True
        waited = time.monotonic() - started
    assert closed, "the server sent something to a client that never spoke"
    assert waited < HANDSHAKE_TIMEOUT + 1.5, f"the silent client was held for {waited:.1f} s"


def test_stopping_does_not_wait_for_an_idle_connection(
    pki: LabPKI, settings: Switch, officer: tuple[Path, Path]
) -> None:
    server = CMServer(socket.create_server(("127.0.0.1", 0)), settings)
    server.start()
    context = ssl.create_default_context(cafile=pki.ca_bundle)
    context.load_cert_chain(*officer)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=3) as raw,
        context.wrap_socket(raw, server_hostname="localhost"),
    ):
        time.sleep(0.1)  # let the worker finish the handshake and wait for a request
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started
    assert stopped < 1.5, f"stop() took {stopped:.1f} s"
