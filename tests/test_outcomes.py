"""Outcomes as data and the facts checks need (smartid.verify.outcome, smartid.verify.depends,
fixtures.outcomes): pure tests, no lab."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixtures.outcomes import verify_block
from smartid.site import IdmSection, TlsPolicy
from smartid.tls import HandshakeFacts
from smartid.tls.facts import ErrorKind
from smartid.tls.judge import Finding
from smartid.verify import TlsEndpoint
from smartid.verify.depends import Need, Prerequisites, Sources, parse_need
from smartid.verify.outcome import Blocker, Outcome, category_of

IDM = TlsEndpoint("idm", "IDM Admin", "https://idm.test:8443/idm-admin", None, None, False)
HERMOD = TlsEndpoint("hermod", "Smart ID Messaging", "https://hermod.test:8443", None, None, False)
POLICY = TlsPolicy()


def facts(
    target: str, *, error: str | None = None, kind: ErrorKind | None = None
) -> HandshakeFacts:
    return HandshakeFacts(
        target=target,
        server_name=target.split(":")[0],
        observed_at=datetime.now(UTC),
        ok=error is None,
        error=error,
        error_kind=kind,
        protocol="TLSv1.3" if error is None else None,
        cipher=None,
        chain=(),
        client_cert_demanded=None,
    )


def sources(
    observed: dict[str, HandshakeFacts], login: list[Finding] | None = None
) -> tuple[Sources, list[str]]:
    asked: list[str] = []

    def observations() -> dict[str, HandshakeFacts]:
        asked.append("observations")
        return observed

    def logged_in() -> list[Finding]:
        asked.append("login")
        return login or []

    return Sources(observations, logged_in), asked


@pytest.mark.parametrize(
    ("text", "case", "need"),
    [
        ("reachable:{case}", "hermod", Need("reachable", "hermod")),
        ("verified:idm", None, Need("verified", "idm")),
        ("login", None, Need("login")),
    ],
)
def test_needs_parse(text: str, case: str | None, need: Need) -> None:
    assert parse_need(text, case) == need


@pytest.mark.parametrize(
    ("text", "case", "words"),
    [
        ("answers:idm", None, "is not one of reachable, verified, login"),
        ("verified", None, "names no endpoint"),
        ("verified:{case}", None, "for a check with cases"),
        ("login:idm", None, "login takes no endpoint"),
    ],
)
def test_a_wrong_need_is_one_sentence(text: str, case: str | None, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_need(text, case)


def test_an_unreachable_endpoint_blocks_on_conn_001_with_its_line() -> None:
    down = facts("idm.test:8443", error="TCP connection failed: connection refused", kind="connect")
    given, _ = sources({"idm": down})
    facts_of_run = Prerequisites([IDM, HERMOD], POLICY)
    blocker = facts_of_run.blocker(Need("verified", "idm"), given)
    assert blocker == Blocker(
        "CONN-001[idm]",
        "[blocker] idm (idm.test:8443): TCP connection failed: connection refused "
        "(required: a TCP connection within 5 s)",
    )
    # A need that only asks for an answer is taken away by the same root.
    assert facts_of_run.blocker(Need("reachable", "idm"), given) == blocker


def test_a_failed_verification_blocks_on_tls_001_and_login_needs_it_first() -> None:
    untrusted = facts(
        "idm.test:8443",
        error="TLS certificate verification failed: self-signed certificate in certificate chain",
        kind="tls",
    )
    given, asked = sources({"idm": untrusted}, login=[])
    facts_of_run = Prerequisites([IDM], POLICY)
    assert facts_of_run.blocker(Need("reachable", "idm"), given) is None
    blocker = facts_of_run.blocker(Need("login"), given)
    assert blocker is not None
    assert blocker.label == "TLS-001[idm]"
    assert "self-signed certificate in certificate chain" in blocker.line
    assert "login" not in asked  # IDM was never asked: its TLS did not verify


def test_a_refused_login_blocks_on_conn_002_and_each_fact_is_resolved_once() -> None:
    idm = IdmSection.model_validate(
        {"admin_url": "https://idm.test:8443/idm-admin", "admin_password": {"env": "X"}}
    )
    refused = Finding("refused", "blocker", "refuses user 'admin' (HTTP 401)", "accepted", "IDM")
    given, asked = sources({"idm": facts("idm.test:8443")}, login=[refused])
    facts_of_run = Prerequisites([IDM], POLICY)
    for _ in range(3):
        blocker = facts_of_run.first_blocker([Need("verified", "idm"), Need("login")], given)
        assert blocker is not None
        assert blocker.label == "CONN-002"
    assert asked.count("login") == 1
    assert asked.count("observations") == 1
    assert idm.admin_user == "admin"


def test_an_endpoint_the_site_does_not_declare_blocks_nothing() -> None:
    given, asked = sources({})
    facts_of_run = Prerequisites([IDM], POLICY)
    assert facts_of_run.blocker(Need("verified", "cm"), given) is None
    # IDM Operator on IDM Admin's listener is observed as "idm".
    assert facts_of_run.blocker(Need("verified", "idm-operator"), given) is None
    assert asked == ["observations"]


def test_an_outcome_survives_json_as_pytest_xdist_carries_it() -> None:
    finding = Finding("expired", "critical", "expired on 2026-11-30", "valid", "idm (x:1)")
    outcome = Outcome(
        "blocked",
        "CONF-004",
        case="Lock user/Lock related credentials",
        severity="critical",
        component="idm",
        line="blocked by TLS-001[idm]: ...",
        findings=(finding,),
        warnings=("w",),
        blocked_by=Blocker("TLS-001[idm]", "..."),
    )
    assert Outcome.from_json(outcome.to_json()) == outcome
    with pytest.raises(ValueError, match="is not one of"):
        Outcome.from_json({**outcome.to_json(), "status": "broken"})


@pytest.mark.parametrize(
    ("status", "check", "keys", "errors", "category"),
    [
        ("failed", "TLS-003", ["expired"], [], "Trust / TLS"),
        ("failed", "TLS-001", ["connect"], [], "Connectivity"),
        ("failed", "CONN-001", ["timeout"], [], "Connectivity"),
        ("failed", "CONN-002", ["refused"], [], "Authentication"),
        ("failed", "CONN-005", ["round-trip"], [], "Connectivity"),
        ("failed", "CONF-004", ["data_pool"], [], "Configuration drift"),
        ("failed", "CONF-001", [], ["AuthenticationError"], "Authentication"),
        ("failed", "AUTH-002", ["anonymous"], [], "Authentication"),
        ("error", "TLS-003", [], [], "Suite error"),
        ("blocked", "TLS-003", [], [], None),
        ("passed", "TLS-003", [], [], None),
    ],
)
def test_the_category_comes_from_the_outcome_not_from_the_words(
    status: str, check: str, keys: list[str], errors: list[str], category: str | None
) -> None:
    found = [Finding(key, "critical", "observed", "required", "target") for key in keys]
    assert category_of(status, check, found, errors) == category  # type: ignore[arg-type]


def test_the_verify_block_puts_the_root_cause_first() -> None:
    root = Outcome(
        "failed",
        "TLS-001",
        case="idm",
        severity="blocker",
        component="idm",
        findings=(Finding("expired", "blocker", "certificate has expired", "valid", "idm (x)"),),
    )
    also = Outcome(
        "failed",
        "TLS-003",
        case="idm",
        severity="critical",
        component="idm",
        findings=(Finding("expired", "critical", "expired on 2026-11-30", "7 days", "idm (x)"),),
    )
    blocked = [
        Outcome(
            "blocked",
            check,
            component="idm",
            line="blocked by TLS-001[idm]: ...",
            blocked_by=Blocker("TLS-001[idm]", "..."),
        )
        for check in ("CONN-002", "AUTH-001")
    ]
    warned = Outcome("passed", "TLS-003", case="hermod", warnings=("[warning] expires soon",))
    lines = verify_block([also, *blocked, root, warned, Outcome("passed", "TLS-004")])
    assert lines == [
        "root causes (2 failed):",
        "  idm:",
        "    TLS-001[idm]: [blocker] idm (x): certificate has expired (required: valid) [blocks 2]",
        "    TLS-003[idm]: [critical] idm (x): expired on 2026-11-30 (required: 7 days)",
        "blocked (2, not run: a fact they need is missing):",
        "  by TLS-001[idm]: 2: AUTH-001, CONN-002",
        "warnings (1: the checks passed; act before they fail):",
        "  TLS-003[hermod]: [warning] expires soon",
        "6 checks: 2 blocked, 2 failed, 2 passed",
    ]


def test_a_check_marker_names_only_known_needs() -> None:
    """Every `needs` marker of the suite's checks parses (a typo would block nothing)."""
    checks = Path(__file__).parent.parent / "checks"
    found = 0
    for path in checks.glob("test_*.py"):
        for line in path.read_text().splitlines():
            if line.startswith("@pytest.mark.needs("):
                for text in line.removeprefix("@pytest.mark.needs(").rstrip(")").split(","):
                    parse_need(text.strip().strip('"'), "case")
                    found += 1
    assert found >= 20
