"""The HTTP session factory turns every network failure into one sentence naming the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from smartid import errors
from smartid.http import Timeouts, check_status, session
from tests.certs import Cert, make_ca, make_leaf, write_chain
from tests.servers import closed_port, https_server, silent_listener


def _get(
    url: str, bundle: Path, timeouts: Timeouts | None = None, verify: bool | None = None
) -> requests.Response:
    """One GET in a session that is closed afterwards, so no socket outlives the test."""
    with session(bundle, timeouts=timeouts) as http:
        extra = {} if verify is None else {"verify": verify}
        response = http.get(url, **extra)
        response.content  # noqa: B018 - read it all before the connection closes
        return response


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Path]:
    ca = make_ca("Test Root CA")
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    bundle.write_bytes(ca.pem)
    return ca, bundle


def test_refused_connection_names_url(ca: tuple[Cert, Path]) -> None:
    url = f"https://127.0.0.1:{closed_port()}/x"
    with pytest.raises(errors.ConnectError, match="connection refused") as caught:
        _get(url, ca[1])
    assert str(caught.value).startswith(url)


def test_silent_server_times_out_within_site_timeout(ca: tuple[Cert, Path]) -> None:
    with silent_listener() as port:
        url = f"https://127.0.0.1:{port}/"
        with pytest.raises(errors.TimeoutError, match="timed out") as caught:
            _get(url, ca[1], Timeouts(connect=0.5, read=0.5))
    assert url in str(caught.value)


def test_untrusted_certificate_is_a_tls_error(tmp_path: Path, ca: tuple[Cert, Path]) -> None:
    other = make_ca("Other Root")
    cert, key = write_chain(tmp_path, "server", make_leaf(other))
    with https_server(cert, key) as port, pytest.raises(errors.TLSError) as caught:
        _get(f"https://localhost:{port}/", ca[1])
    assert "verification failed: unable to get local issuer certificate" in str(caught.value)
    assert f"localhost:{port}" in str(caught.value)


def test_wrong_host_is_a_tls_error(tmp_path: Path, ca: tuple[Cert, Path]) -> None:
    cert, key = write_chain(tmp_path, "server", make_leaf(ca[0], hosts=("other.example",)))
    with https_server(cert, key) as port, pytest.raises(errors.TLSError, match="Hostname"):
        _get(f"https://localhost:{port}/", ca[1])


def test_plain_http_on_tls_port_is_a_tls_error(tmp_path: Path, ca: tuple[Cert, Path]) -> None:
    cert, key = write_chain(tmp_path, "server", make_leaf(ca[0]))
    with https_server(cert, key, tls=False) as port, pytest.raises(errors.TLSError):
        _get(f"https://localhost:{port}/", ca[1])


def test_trusted_server_answers(tmp_path: Path, ca: tuple[Cert, Path]) -> None:
    cert, key = write_chain(tmp_path, "server", make_leaf(ca[0]))
    with https_server(cert, key) as port:
        response = check_status(_get(f"https://localhost:{port}/", ca[1]))
    assert response.json() == {"ok": True}


def test_verification_cannot_be_switched_off(ca: tuple[Cert, Path]) -> None:
    with pytest.raises(ValueError, match="never switched off"):
        _get("https://127.0.0.1:1/", ca[1], verify=False)


def test_environment_proxies_are_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca: tuple[Cert, Path]
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent.pem")
    cert, key = write_chain(tmp_path, "server", make_leaf(ca[0]))
    with https_server(cert, key) as port:
        assert _get(f"https://localhost:{port}/", ca[1]).status_code == 200


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, errors.RejectedError),
        (401, errors.AuthenticationError),
        (403, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.RejectedError),
        (500, errors.HTTPStatusError),
    ],
)
def test_status_becomes_named_error(
    tmp_path: Path, ca: tuple[Cert, Path], status: int, error: type[errors.HTTPStatusError]
) -> None:
    cert, key = write_chain(tmp_path, "server", make_leaf(ca[0]))
    body = b'{"detail": "user admin:Sup3r-secret-value-42 refused"}'
    with https_server(cert, key, status=status, body=body) as port:
        response = _get(f"https://localhost:{port}/api?x=1", ca[1])
        with pytest.raises(error) as caught:
            check_status(response)
    message = str(caught.value)
    assert message.startswith(f"GET https://localhost:{port}/api: HTTP {status}")
    if status in (401, 403):
        assert "Sup3r" not in message
