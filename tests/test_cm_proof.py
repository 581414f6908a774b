"""The officer's mutual-TLS proof (`smartid.cm.mtls`, judged by `smartid.cm.proof`): CM must refuse
a client without a certificate and answer the officer's first request; under TLS 1.2 a refusal is
an alert in the handshake, under TLS 1.3 an alert on the first read; every verdict comes from a
verified connection, and a CM that does not answer is one sentence within the deadline."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smartid.cm import judge_officer_proof, prove_officer
from smartid.cm.proof import Attempt, OfficerProof
from smartid.errors import PackageError
from smartid.lab.cm_server import CMServer, CMSettings
from smartid.lab.pki import LabPKI, ServerCredentials
from tests.servers import closed_port, https_server, silent_listener

PASSWORD = "pw-123456"
TIMEOUT = 3.0

# --- the judge, from a table --------------------------------------------------------------------

REFUSED_13 = Attempt(
    with_certificate=False,
    outcome="refused",
    stage="read",
    protocol="TLSv1.3",
    alert="certificate_required",
    error="TLS alert certificate_required",
)
ANSWER = Attempt(
    with_certificate=True,
    outcome="answered",
    stage="read",
    protocol="TLSv1.3",
    status_line="HTTP/1.1 404 Not Found",
)
DOWN = Attempt(
    with_certificate=False,
    outcome="unreachable",
    stage="connect",
    error="TCP connection failed: connection refused",
)
UNTRUSTED = Attempt(
    with_certificate=False,
    outcome="untrusted",
    stage="handshake",
    error="TLS certificate verification failed: unable to get local issuer certificate",
)


def _refused(alert: str | None, stage: str = "handshake") -> Attempt:
    error = f"TLS alert {alert}" if alert else "the peer closed the connection"
    return Attempt(
        with_certificate=True,
        outcome="refused",
        stage=stage,  # type: ignore[arg-type]
        alert=alert,
        error=error,
    )


def _proof(anonymous: Attempt, officer: Attempt) -> OfficerProof:
    return OfficerProof(
        url="https://cm.test:8444/cm",
        target="cm.test:8444",
        server_name="cm.test",
        anonymous=anonymous,
        officer=officer,
    )


def _with_cert(attempt: Attempt) -> Attempt:
    return replace(attempt, with_certificate=True)


@pytest.mark.parametrize(
    ("anonymous", "officer", "expected"),
    [
        pytest.param(REFUSED_13, ANSWER, [], id="refused without, answered with: proven"),
        pytest.param(
            replace(REFUSED_13, stage="handshake", alert="handshake_failure", protocol=None),
            replace(ANSWER, status_line="HTTP/1.1 401 Unauthorized"),
            [],
            id="tls1.2 refusal in the handshake, any status answers",
        ),
        pytest.param(
            replace(ANSWER, with_certificate=False, status_line="HTTP/1.0 401 Unauthorized"),
            ANSWER,
            [("client-auth", "answers 'HTTP/1.0 401 Unauthorized' to a client without a cert")],
            id="answers without a certificate",
        ),
        pytest.param(
            REFUSED_13,
            _refused("unknown_ca"),
            [("officer", "in the TLS handshake with the TLS alert 'unknown_ca'")],
            id="officer refused in the handshake",
        ),
        pytest.param(
            REFUSED_13,
            _refused("certificate_expired", "read"),
            [("officer", "on the first read after the handshake with the TLS alert 'certif")],
            id="officer refused on the first read",
        ),
        pytest.param(
            REFUSED_13,
            _refused(None, "read"),
            [("officer", "on the first read after the handshake (the peer closed the conn")],
            id="officer refused by a close",
        ),
        pytest.param(
            DOWN,
            _with_cert(DOWN),
            [("unreachable", "TCP connection failed: connection refused")],
            id="down: said once",
        ),
        pytest.param(
            UNTRUSTED,
            _with_cert(UNTRUSTED),
            [("untrusted", "TLS certificate verification failed: unable to get local issuer")],
            id="CM's certificate not verified: no verdict on the client",
        ),
        pytest.param(
            REFUSED_13,
            replace(_with_cert(DOWN), outcome="timeout", error="no HTTP answer within the timeout"),
            [("timeout", "no HTTP answer within the timeout (connecting with the officer cert")],
            id="officer attempt timed out",
        ),
    ],
)
def test_judge_officer_proof(
    anonymous: Attempt, officer: Attempt, expected: list[tuple[str, str]]
) -> None:
    findings = judge_officer_proof(_proof(anonymous, officer))
    assert [f.key for f in findings] == [key for key, _ in expected]
    for finding, (_, words) in zip(findings, expected, strict=True):
        assert words in finding.observed, finding.observed
        assert finding.target == "CM cm.test:8444"
        assert finding.severity == "critical"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"outcome": "answered"}, id="answer without status line"),
        pytest.param({"status_line": "HTTP/1.1 200 OK"}, id="status line with an error"),
        pytest.param({"outcome": "unreachable", "alert": "x"}, id="alert without refusal"),
    ],
)
def test_impossible_attempts_are_refused_when_built(bad: dict[str, str]) -> None:
    fields = {"with_certificate": False, "outcome": "refused", "stage": "read", "error": "e"}
    with pytest.raises(ValueError, match="Attempt"):
        Attempt(**{**fields, **bad})  # type: ignore[arg-type]


def test_the_anonymous_attempt_is_the_one_without_a_certificate() -> None:
    with pytest.raises(ValueError, match="OfficerProof"):
        _proof(ANSWER, ANSWER)


# --- the probe, against the lab CM ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    lab = LabPKI(tmp_path_factory.mktemp("lab") / "pki")
    lab.ensure(PASSWORD)
    return lab


@pytest.fixture(scope="module")
def clients(pki: LabPKI) -> dict[str, tuple[Path, Path]]:
    expired = datetime.now(UTC) - timedelta(days=1)
    made = {
        "officer": ServerCredentials(pki.officer.cert, pki.officer.key),
        "foreign": pki.issue_client("foreign", common_name="IDM Officer", issuer="foreign"),
        "expired": pki.issue_client("expired", common_name="IDM Officer", not_after=expired),
    }
    return {name: (c.cert, c.key) for name, c in made.items()}


@dataclass
class Switch:
    current: CMSettings

    def __call__(self) -> CMSettings:
        return self.current


@pytest.fixture
def settings(pki: LabPKI) -> Switch:
    server = pki.server("cm")
    return Switch(CMSettings(server.cert, server.key, pki.ca_bundle))


@pytest.fixture
def cm(settings: Switch) -> Iterator[CMServer]:
    with CMServer(socket.create_server(("127.0.0.1", 0)), settings) as server:
        yield server


VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, "handshake", id="tls1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, "read", id="tls1.3"),
]


def _prove(cm: CMServer, pki: LabPKI, client: tuple[Path, Path]) -> OfficerProof:
    return prove_officer(
        f"https://localhost:{cm.port}/cm",
        client_cert=client,
        ca_bundle=pki.ca_bundle,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize(("version", "stage"), VERSIONS)
def test_the_lab_cm_refuses_no_certificate_and_answers_the_officer(
    cm: CMServer,
    pki: LabPKI,
    settings: Switch,
    clients: dict[str, tuple[Path, Path]],
    version: ssl.TLSVersion,
    stage: str,
) -> None:
    settings.current = replace(settings.current, maximum_version=version)
    proof = _prove(cm, pki, clients["officer"])
    assert proof.anonymous.outcome == "refused"
    assert proof.anonymous.stage == stage
    assert proof.anonymous.alert in ("handshake_failure", "certificate_required")
    assert proof.officer.outcome == "answered"
    assert proof.officer.status_line == "HTTP/1.0 404 Not Found"  # /cm itself: any status counts
    assert proof.officer.protocol == ("TLSv1.3" if version == ssl.TLSVersion.TLSv1_3 else "TLSv1.2")
    assert judge_officer_proof(proof) == []


@pytest.mark.parametrize(("version", "stage"), VERSIONS)
@pytest.mark.parametrize(
    ("client", "alert"),
    [("foreign", "unknown_ca"), ("expired", "certificate_expired")],
    ids=["foreign", "expired"],
)
def test_a_refused_officer_certificate_names_the_alert(
    cm: CMServer,
    pki: LabPKI,
    settings: Switch,
    clients: dict[str, tuple[Path, Path]],
    version: ssl.TLSVersion,
    stage: str,
    client: str,
    alert: str,
) -> None:
    settings.current = replace(settings.current, maximum_version=version)
    proof = _prove(cm, pki, clients[client])
    assert (proof.officer.outcome, proof.officer.stage, proof.officer.alert) == (
        "refused",
        stage,
        alert,
    )
    [finding] = judge_officer_proof(proof)
    assert finding.key == "officer"
    assert f"with the TLS alert '{alert}'" in finding.observed
    assert finding.target == f"CM localhost:{cm.port}"


@pytest.mark.parametrize(("version", "stage"), VERSIONS)
def test_a_cm_that_does_not_demand_a_certificate_is_a_finding(
    cm: CMServer,
    pki: LabPKI,
    settings: Switch,
    clients: dict[str, tuple[Path, Path]],
    version: ssl.TLSVersion,
    stage: str,
) -> None:
    settings.current = replace(settings.current, maximum_version=version, require_client_cert=False)
    [finding] = judge_officer_proof(_prove(cm, pki, clients["officer"]))
    assert finding.key == "client-auth"
    assert finding.observed == (
        "answers 'HTTP/1.0 404 Not Found' to a client without a certificate"
    )


def test_a_cm_that_is_down_is_one_sentence(
    pki: LabPKI, clients: dict[str, tuple[Path, Path]]
) -> None:
    port = closed_port()
    proof = prove_officer(
        f"https://localhost:{port}/cm",
        client_cert=clients["officer"],
        ca_bundle=pki.ca_bundle,
        timeout=TIMEOUT,
    )
    [finding] = judge_officer_proof(proof)
    assert (finding.key, finding.target) == ("unreachable", f"CM localhost:{port}")
    assert finding.observed == "TCP connection failed: connection refused"


def test_cm_with_a_certificate_the_bundle_does_not_verify_gives_no_verdict(
    cm: CMServer, pki: LabPKI, clients: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    other = LabPKI(tmp_path / "other")
    other.ensure(PASSWORD)
    proof = prove_officer(
        f"https://localhost:{cm.port}/cm",
        client_cert=clients["officer"],
        ca_bundle=other.ca_bundle,
        timeout=TIMEOUT,
    )
    assert proof.anonymous.outcome == proof.officer.outcome == "untrusted"
    [finding] = judge_officer_proof(proof)
    assert finding.key == "untrusted"
    assert "certificate verification failed" in finding.observed


def test_a_silent_cm_ends_at_the_deadline(
    pki: LabPKI, clients: dict[str, tuple[Path, Path]]
) -> None:
    with silent_listener() as port:
        started = time.monotonic()
        proof = prove_officer(
            f"https://localhost:{port}/cm",
            client_cert=clients["officer"],
            ca_bundle=pki.ca_bundle,
            timeout=0.5,
        )
        waited = time.monotonic() - started
    assert waited < 2.5, f"the proof took {waited:.1f} s"
    [finding] = judge_officer_proof(proof)
    assert finding.key == "timeout"


def test_plain_http_on_the_cm_port_is_one_sentence(
    pki: LabPKI, clients: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    server = pki.server("cm")
    with https_server(server.cert, server.key, tls=False) as port:
        proof = prove_officer(
            f"https://localhost:{port}/cm",
            client_cert=clients["officer"],
            ca_bundle=pki.ca_bundle,
            timeout=TIMEOUT,
        )
    [finding] = judge_officer_proof(proof)
    assert finding.key == "protocol"
    assert "does not speak TLS" in finding.observed


def test_unusable_officer_files_are_a_package_error(pki: LabPKI, tmp_path: Path) -> None:
    missing = (tmp_path / "officer.pem", tmp_path / "officer.key")
    with pytest.raises(PackageError, match=r"officer\.pem: not a usable client certificate"):
        prove_officer(
            "https://localhost:1/cm", client_cert=missing, ca_bundle=pki.ca_bundle, timeout=1
        )
