"""The suite's HTTP policy holds against hostile servers (docs/architecture.md, "Talking to
servers"): no redirect is followed, so nothing secret reaches another origin; a drip, an endless
body, a gzip bomb, deep JSON or a broken connection costs a bounded time and memory and is one
sentence naming the target; a server's own words are repeated only as one short masked line.

Every server here is real (TLS on 127.0.0.1, tests.hostile); the timeouts are 0.5 s to connect
and 0.5 s per read, so the deadline of a whole request is 1 s.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from smartid import errors
from smartid.cm.client import cm_ping
from smartid.hermod.api import HermodApi
from smartid.http import MAX_ANSWER_BYTES, Timeouts, check_status, json_body, session
from smartid.idm import IdmClient
from smartid.masking import MASKER, Secret, find_leaks
from tests.certs import Cert, make_ca, make_leaf, write_chain
from tests.helpers import run_suite
from tests.hostile import (
    Behaviour,
    Hostile,
    answer,
    close_mid_body,
    drain_slowly,
    drain_then_answer,
    drip_body,
    drip_headers,
    endless_body,
    gzip_bomb,
    handshake_drip,
    hostile_server,
    redirect,
)

TIMEOUTS = Timeouts(connect=0.5, read=0.5)
# A few times the deadline (connect + read = 1 s); a hostile answer costs no more.
MAX_SECONDS = 3.0
MAX_PEAK_BYTES = 50 * 1024 * 1024

ADMIN_PASSWORD = "Adm1n-Secret-Pass-42"
NEW_PASSWORD = "N3w-Secret-Pass-43"
HERMOD_KEY = "b" * 64
SECRETS = (ADMIN_PASSWORD, NEW_PASSWORD, HERMOD_KEY)


@dataclass(frozen=True)
class Tls:
    ca: Cert
    bundle: Path
    cert: Path
    key: Path
    client: tuple[Path, Path]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    folder = tmp_path_factory.mktemp("hostile")
    ca = make_ca("Hostile Test Root")
    bundle = folder / "ca.pem"
    bundle.write_bytes(ca.pem)
    cert, key = write_chain(folder, "server", make_leaf(ca))
    client = write_chain(folder, "client", make_leaf(ca, hosts=("officer",)))
    return Tls(ca, bundle, cert, key, client)


@dataclass(frozen=True)
class Cost:
    seconds: float
    peak: int


def _measured(call: Callable[[], object]) -> tuple[BaseException | None, Cost]:
    tracemalloc.start()
    started = time.monotonic()
    caught: BaseException | None = None
    try:
        call()
    except Exception as exc:
        caught = exc
    seconds = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return caught, Cost(seconds, peak)


def _assert_one_sentence(caught: BaseException | None, kind: type[Exception], url: str) -> str:
    assert isinstance(caught, kind), repr(caught)
    message = str(caught)
    assert url in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert len(message) < 400, message
    return message


def _assert_bounded(cost: Cost) -> None:
    assert cost.seconds < MAX_SECONDS, f"took {cost.seconds:.2f} s"
    assert cost.peak < MAX_PEAK_BYTES, f"peak {cost.peak / 2**20:.1f} MiB"


def _get_json(tls: Tls, url: str) -> Any:
    with session(tls.bundle, timeouts=TIMEOUTS) as http:
        return json_body(check_status(http.get(url)))


_DEEP = b"[" * 100_000 + b"]" * 100_000
_DEEPISH = json.dumps(json.loads("[" * 80 + "]" * 80)).encode()
_TRACE = (
    b"java.sql.SQLException: Access denied for user 'idm'@'db' (using password: "
    + ADMIN_PASSWORD.encode()
    + b")\n\tat com.mysql.jdbc.SQLError.createSQLException(SQLError.java:1073)\n"
    b"Caused by: java.net.ConnectException\n"
)

# behaviour, error, what the sentence says
HOSTILE = [
    pytest.param(
        drip_headers(0.1),
        errors.TimeoutError,
        "sent no complete answer within 1 s",
        id="drip-headers-1-byte-per-0.1s",
    ),
    pytest.param(
        drip_body(0.1),
        errors.TimeoutError,
        "sent no complete answer within 1 s",
        id="drip-body-1-byte-per-0.1s",
    ),
    pytest.param(
        drip_headers(1.0), errors.TimeoutError, "timed out (read)", id="drip-headers-1-byte-per-s"
    ),
    pytest.param(
        endless_body(), errors.ProtocolError, "larger than 1 MiB", id="endless-close-delimited"
    ),
    pytest.param(
        endless_body(chunked=True), errors.ProtocolError, "larger than 1 MiB", id="endless-chunked"
    ),
    pytest.param(
        endless_body(total=300 * 2**20),
        errors.ProtocolError,
        "larger than 1 MiB",
        id="300-MB-body",
    ),
    pytest.param(
        endless_body(length=500_000_000),
        errors.ProtocolError,
        "announces an answer of 500000000 bytes, larger than 1 MiB",
        id="announced-500-MB",
    ),
    pytest.param(gzip_bomb(), errors.ProtocolError, "larger than 1 MiB", id="gzip-bomb-10-MB"),
    pytest.param(
        answer(200, _DEEP), errors.ProtocolError, "nested deeper than 64", id="deep-json-100000"
    ),
    pytest.param(
        answer(200, _DEEPISH), errors.ProtocolError, "nested deeper than 64", id="deep-json-80"
    ),
    pytest.param(
        answer(200, b"<html><body>Welcome</body></html>", "text/html"),
        errors.ProtocolError,
        "the answer is not JSON",
        id="not-json-200",
    ),
    pytest.param(
        answer(200, b"\xff\xfe\x00garbage"),
        errors.ProtocolError,
        "the answer is not JSON",
        id="not-utf8-200",
    ),
    pytest.param(
        close_mid_body(),
        errors.ConnectError,
        "closed the connection mid-answer",
        id="closed-mid-body",
    ),
    pytest.param(
        close_mid_body(chunked=True),
        errors.ConnectError,
        "closed the connection mid-answer",
        id="closed-mid-chunked-body",
    ),
    pytest.param(
        answer(500, _TRACE, "text/plain"),
        errors.HTTPStatusError,
        "HTTP 500: a stack trace (java.sql.SQLException), not repeated",
        id="500-stack-trace-with-password",
    ),
    pytest.param(
        answer(500, b"<html><title>Oops \x1b[31m" + ADMIN_PASSWORD.encode() + b"</title>"),
        errors.HTTPStatusError,
        "HTTP 500: Oops [31m****",
        id="500-page-with-known-secret",
    ),
    pytest.param(
        answer(502, b"x" * 5000 + b"\n" + b"y" * 10),
        errors.HTTPStatusError,
        "HTTP 502: " + "x" * 117 + "...",
        id="500-long-line",
    ),
]


@pytest.fixture(autouse=True)
def _known_secrets() -> None:
    for value in SECRETS:
        MASKER.register(Secret(value, "hostile test"))


@pytest.mark.parametrize(("behaviour", "kind", "said"), HOSTILE)
def test_a_hostile_answer_is_one_bounded_sentence(
    tls: Tls, behaviour: Behaviour, kind: type[Exception], said: str
) -> None:
    with hostile_server(behaviour, tls.cert, tls.key) as server:
        url = server.url("/api/v1/packages")
        caught, cost = _measured(lambda: _get_json(tls, url))
    message = _assert_one_sentence(caught, kind, url)
    assert said in message
    assert ADMIN_PASSWORD not in message
    _assert_bounded(cost)


def test_a_handshake_that_drips_ends_within_the_connect_timeout(tls: Tls) -> None:
    with handshake_drip(0.1) as port:
        url = f"https://localhost:{port}/api/v1/packages"
        caught, cost = _measured(lambda: _get_json(tls, url))
    message = _assert_one_sentence(caught, errors.ConnectError, url)
    assert "timed out" in message
    _assert_bounded(cost)


def test_the_configuration_download_has_its_own_larger_bound(tls: Tls) -> None:
    zeros = 3 * MAX_ANSWER_BYTES
    with hostile_server(endless_body(length=zeros, total=zeros), tls.cert, tls.key) as server:
        with _idm(tls, server.url("/idm-admin")) as idm:
            assert len(idm.download_configuration()) == zeros
        with (
            _idm(tls, server.url("/idm-admin")) as idm,
            pytest.raises(errors.ProtocolError, match="larger than 1 MiB"),
        ):
            idm.packages()


def test_a_download_announced_too_large_is_refused_before_reading(tls: Tls) -> None:
    behaviour = endless_body(length=10 * 2**30)
    with hostile_server(behaviour, tls.cert, tls.key) as server, _idm(tls, server.url("")) as idm:
        caught, cost = _measured(idm.download_configuration)
    message = _assert_one_sentence(caught, errors.ProtocolError, server.url("/ws/deploy"))
    assert "announces an answer of 10737418240 bytes, larger than 200 MiB" in message
    _assert_bounded(cost)


def test_a_large_package_file_is_uploaded_as_it_is_read(tls: Tls, tmp_path: Path) -> None:
    package = tmp_path / "large.zip"
    with package.open("wb") as file:
        file.truncate(256 * 2**20)  # sparse: costs no disk
    deployed = json.dumps(
        {
            "package": "Large",
            "version": "1.0",
            "sha256": "0" * 64,
            "created": [],
            "replaced": [],
            "unchanged": [],
        }
    ).encode()
    with hostile_server(drain_then_answer(200, deployed), tls.cert, tls.key) as server:
        idm = IdmClient(
            server.url("/idm-admin"),
            user="admin",
            password=Secret(ADMIN_PASSWORD, "test"),
            ca_bundle=tls.bundle,
            timeouts=Timeouts(connect=2, read=20),
        )
        with idm:
            caught, cost = _measured(lambda: idm.upload_configuration(package))
    assert caught is None, caught
    assert cost.peak < MAX_PEAK_BYTES, f"peak {cost.peak / 2**20:.1f} MiB"


def test_a_server_that_takes_the_upload_slowly_ends_it_at_the_deadline(
    tls: Tls, tmp_path: Path
) -> None:
    """Each send makes progress (16 KiB every 50 ms), yet the request's deadline (connect + read
    = 1 s) ends the upload: between blocks (the body's own sentence) or in a send whose socket
    timeout is the time left, whichever comes first."""
    package = tmp_path / "large.zip"
    with package.open("wb") as file:
        file.truncate(64 * 2**20)  # sparse: costs no disk
    with (
        hostile_server(drain_slowly(16 * 1024, 0.05), tls.cert, tls.key) as server,
        _idm(tls, server.url("/idm-admin")) as idm,
    ):
        caught, cost = _measured(lambda: idm.upload_configuration(package))
    message = _assert_one_sentence(caught, errors.ConnectError, server.url("/idm-admin/ws/deploy"))
    assert any(
        words in message
        for words in ("took the request body too slowly", "within 1 s", ": timed out")
    ), message
    _assert_bounded(cost)


def test_a_normal_answer_is_read_whole(tls: Tls) -> None:
    body = json.dumps([{"name": "x" * 100}] * 5000).encode()
    assert len(body) < MAX_ANSWER_BYTES
    with hostile_server(answer(200, body), tls.cert, tls.key) as server:
        assert len(_get_json(tls, server.url("/"))) == 5000


def test_a_compressed_answer_within_the_bound_is_decoded(tls: Tls) -> None:
    with (
        hostile_server(gzip_bomb(MAX_ANSWER_BYTES // 2), tls.cert, tls.key) as server,
        session(tls.bundle, timeouts=TIMEOUTS) as http,
    ):
        response = check_status(http.get(server.url("/")))
    assert response.content == b"\0" * (MAX_ANSWER_BYTES // 2)


# --- redirects: never followed, so nothing reaches the other origin -----------------------------


@pytest.fixture(scope="module")
def elsewhere(tls: Tls) -> Iterator[dict[str, Hostile]]:
    """Where the redirects point: another TLS port, and plain http. Both record what arrives."""
    with (
        hostile_server(answer(200, b"{}"), tls.cert, tls.key) as other,
        hostile_server(answer(200, b"{}")) as plain,
    ):
        yield {"other-port": other, "plain-http": plain}


def _idm(tls: Tls, url: str) -> IdmClient:
    secret = Secret(ADMIN_PASSWORD, "hostile test")
    return IdmClient(url, user="admin", password=secret, ca_bundle=tls.bundle, timeouts=TIMEOUTS)


def _hermod(tls: Tls, url: str) -> HermodApi:
    return HermodApi(url, ca_bundle=tls.bundle, timeouts=TIMEOUTS)


def _packages(tls: Tls, url: str) -> object:
    with _idm(tls, url) as idm:
        return idm.packages()


def _set_password(tls: Tls, url: str) -> object:
    with _idm(tls, url) as idm:
        return idm.set_password("admin", Secret(NEW_PASSWORD, "test"), version=1)


def _download(tls: Tls, url: str) -> object:
    with _idm(tls, url) as idm:
        return idm.download_configuration()


def _upload(tls: Tls, url: str) -> object:
    with _idm(tls, url) as idm:
        return idm.upload_configuration(b"PK\x05\x06" + NEW_PASSWORD.encode())


def _login(tls: Tls, url: str) -> object:
    secret = Secret(ADMIN_PASSWORD, "hostile test")
    with IdmClient(
        url, user="admin", password=secret, ca_bundle=tls.bundle, timeouts=TIMEOUTS, contract=False
    ) as idm:
        return idm.login_works()


def _ping(tls: Tls, url: str) -> object:
    return _hermod(tls, url).ping(Secret(HERMOD_KEY, "test"))


def _command(tls: Tls, url: str) -> object:
    return _hermod(tls, url).command(Secret(HERMOD_KEY, "test"), "c-1")


def _cm(tls: Tls, url: str) -> object:
    return cm_ping(url, ca_bundle=tls.bundle, client=tls.client, timeouts=TIMEOUTS)


# call, the label the sentence starts with
CLIENTS = [
    pytest.param(_packages, "IDM Admin", id="idm-contract-read"),
    pytest.param(_set_password, "IDM Admin", id="idm-contract-password"),
    pytest.param(_download, "IDM Admin", id="idm-deploy-download"),
    pytest.param(_upload, "IDM Admin", id="idm-deploy-upload"),
    pytest.param(_login, "IDM Admin", id="idm-deploy-login"),
    pytest.param(_ping, "Hermod", id="hermod-ping"),
    pytest.param(_command, "Hermod", id="hermod-command"),
    pytest.param(_cm, "CM", id="cm-ping-client-cert"),
]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("where", ["other-port", "plain-http"])
@pytest.mark.parametrize(("call", "label"), CLIENTS)
def test_no_client_follows_a_redirect(
    tls: Tls,
    elsewhere: dict[str, Hostile],
    call: Callable[[Tls, str], object],
    label: str,
    where: str,
    status: int,
) -> None:
    target = elsewhere[where]
    before = target.connections
    location = target.url("/stolen?next=1")
    with hostile_server(redirect(status, location), tls.cert, tls.key) as server:
        base = server.url("/base")
        caught, cost = _measured(lambda: call(tls, base))
    assert isinstance(caught, errors.RedirectError), repr(caught)
    message = str(caught)
    assert message.startswith(f"{label} {base}")
    assert f"HTTP {status}: redirects to {target.url('/stolen')};" in message
    assert message.endswith("the suite does not follow redirects: point the site at the final URL")
    assert "next=1" not in message
    assert target.connections == before, "a redirect was followed"
    assert not any(value in message for value in SECRETS)
    _assert_bounded(cost)


def test_a_relative_redirect_names_the_absolute_url(tls: Tls) -> None:
    with hostile_server(redirect(307, "/login"), tls.cert, tls.key) as server:
        caught, _ = _measured(lambda: _packages(tls, server.url("/idm-admin")))
    assert f"redirects to {server.url('/login')};" in str(caught)


def test_a_caller_cannot_switch_following_on(tls: Tls, elsewhere: dict[str, Hostile]) -> None:
    target = elsewhere["plain-http"]
    before = target.connections
    with (
        hostile_server(redirect(307, target.url("/x")), tls.cert, tls.key) as server,
        session(tls.bundle, timeouts=TIMEOUTS) as http,
    ):
        http.auth = ("admin", ADMIN_PASSWORD)
        with pytest.raises(errors.RedirectError):
            http.post(server.url("/"), allow_redirects=True, data=b"body")
        # Not even requests' own send, past the suite's funnel, follows one.
        prepared = http.prepare_request(requests.Request("POST", server.url("/"), data=b"body"))
        with http.send(prepared, allow_redirects=True, timeout=1) as response:
            assert response.status_code == 307
    assert target.connections == before


# --- through the suite itself ----------------------------------------------------------------


def _redirecting_site(folder: Path, tls: Tls, base: str) -> Path:
    """A remote site whose IDM, Hermod and CM all live at the redirecting server `base`."""
    site = folder / "redirecting.toml"
    site.write_text(
        'target = "remote"\n'
        "[idm]\n"
        f'admin_url = "{base}/idm-admin"\n'
        f'operator_url = "{base}/idm-operator"\n'
        f'ca_bundle = "{tls.bundle}"\n'
        'admin_password = { env = "SMARTID_TEST_ADMIN_PASSWORD" }\n'
        "probe_default_password = true\n"
        "[messaging]\n"
        f'url = "{base}/hermod/rest"\n'
        f'ca_bundle = "{tls.bundle}"\n'
        f'callback_url = "{base}/idm-operator/ws/hermod"\n'
        'key = { env = "SMARTID_TEST_HERMOD_KEY" }\n'
        'hermod_password = { env = "SMARTID_TEST_NEW_PASSWORD" }\n'
        "[certificate_manager]\n"
        f'url = "{base}/cm"\n'
        f'ca_bundle = "{tls.bundle}"\n'
        "[tls]\nconnect_timeout = 0.5\nread_timeout = 0.5\n",
        encoding="utf-8",
    )
    return site


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["verify", "setup"])
def test_a_run_against_a_redirecting_site_sends_nothing_elsewhere(
    tls: Tls, tmp_path: Path, mode: str
) -> None:
    with (
        hostile_server(answer(200, b"{}")) as recorder,
        hostile_server(redirect(307, recorder.url("/stolen")), tls.cert, tls.key) as server,
    ):
        site = _redirecting_site(tmp_path, tls, server.url("").rstrip("/"))
        reports = tmp_path / "reports"
        started = time.monotonic()
        run = run_suite(
            "-m",
            mode,
            f"--site={site}",
            f"--junitxml={reports / 'junit.xml'}",
            f"--alluredir={reports / 'allure'}",
            env={
                "SMARTID_TEST_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SMARTID_TEST_NEW_PASSWORD": NEW_PASSWORD,
                "SMARTID_TEST_HERMOD_KEY": HERMOD_KEY,
                "SMARTID_STATE": str(tmp_path / "state"),
            },
            timeout=120,
        )
        seconds = time.monotonic() - started
    assert run.returncode == 1, run.output
    assert "INTERNALERROR" not in run.output
    assert "Traceback" not in run.output
    said = f"redirects to {recorder.url('/stolen')}; the suite does not follow redirects"
    assert said in run.output
    assert recorder.connections == 0, "a redirect was followed"
    assert not any(value in run.output for value in SECRETS)
    secrets = [Secret(value, "a secret of the site") for value in SECRETS]
    assert not find_leaks(reports, secrets)
    assert seconds < 60
