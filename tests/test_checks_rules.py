"""The rules every verify check follows, without a network: findings make one failure, warnings
pass, waivers apply up to their day, the TLS endpoints come from the site, and every check module
declares what the report and the mutation tests need (id, severity, EPIC/STORY/DOC_URL, markers)."""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path

import pytest

from smartid.site import Waiver, parse_site
from smartid.tls.judge import Finding
from smartid.verify import Findings, check_catalogue, read_junit, tls_endpoints
from smartid.verify.catalogue import check_id
from smartid.verify.findings import failure_text, waiver_status
from tests.helpers import ROOT

CATALOGUE = check_catalogue(ROOT / "checks")
TODAY = date(2026, 11, 25)


def _expired() -> Finding:
    return Finding(
        "expired",
        "critical",
        "'CN=localhost' expired on 2026-11-20, 5 days ago",
        "at least 7 days of validity left",
        "localhost:18443",
    )


def test_one_finding_fails_as_one_line_naming_target_observed_and_required() -> None:
    findings = Findings("TLS-003", "critical")
    findings.extend([_expired()], target="idm (localhost:18443)")
    assert failure_text("TLS-003[idm]", findings.failures) == (
        "TLS-003[idm]: [critical] idm (localhost:18443): 'CN=localhost' expired on 2026-11-20, "
        "5 days ago (required: at least 7 days of validity left)"
    )


def test_several_findings_fail_once_with_a_headline_and_a_line_each() -> None:
    findings = Findings("CONF-004", "critical")
    findings.add("data-pool", "data pool is 'Batch order'", "data pool 'Credentials'", "task X")
    findings.add("sub-process", "sub-process is 'a'", "sub-process 'b'", "task X")
    findings.detail("--- declared\n+++ live")
    text = failure_text(
        "CONF-004[X]",
        findings.failures,
        errors=["https://idm:8443/x: connection refused"],
        details=findings.details,
        note="the waiver of ops (renewal) expired after 2026-11-24 and no longer applies",
    )
    assert text.splitlines() == [
        "CONF-004[X]: 3 findings",
        "- [critical] task X: data pool is 'Batch order' (required: data pool 'Credentials')",
        "- [critical] task X: sub-process is 'a' (required: sub-process 'b')",
        "- https://idm:8443/x: connection refused",
        "the waiver of ops (renewal) expired after 2026-11-24 and no longer applies",
        "--- declared",
        "+++ live",
    ]


def test_a_finding_takes_the_checks_severity_and_a_warning_does_not_fail() -> None:
    findings = Findings("TLS-003", "critical")
    findings.add("expiring", "expires in 9 days", "30 days left", "idm", severity="warning")
    findings.add("key", "1024-bit key", "2048 bits", "idm")
    assert [f.severity for f in findings.all] == ["warning", "critical"]
    assert [f.key for f in findings.failures] == ["key"]
    assert [f.key for f in findings.warnings] == ["expiring"]


def _waiver(check: str, until: date, owner: str = "ops@example.com") -> Waiver:
    return Waiver(check=check, reason="renewal booked", owner=owner, until=until)


@pytest.mark.parametrize(
    ("waivers", "skip", "note"),
    [
        pytest.param([], None, None, id="no waiver"),
        pytest.param(
            [_waiver("TLS-003", date(2026, 12, 31))],
            "waived: renewal booked (ops@example.com, until 2026-12-31)",
            None,
            id="active",
        ),
        pytest.param(
            [_waiver("TLS-003", TODAY)],
            "waived: renewal booked (ops@example.com, until 2026-11-25)",
            None,
            id="last day",
        ),
        pytest.param(
            [_waiver("TLS-003", date(2026, 11, 24))],
            None,
            "the waiver of ops@example.com (renewal booked) expired after 2026-11-24 and no "
            "longer applies",
            id="expired",
        ),
        pytest.param([_waiver("TLS-005", date(2026, 12, 31))], None, None, id="other check"),
        pytest.param(
            [_waiver("TLS-003", date(2026, 1, 1), "old"), _waiver("TLS-003", date(2027, 1, 1))],
            "waived: renewal booked (ops@example.com, until 2027-01-01)",
            None,
            id="renewed",
        ),
    ],
)
def test_a_waiver_applies_up_to_and_including_its_day(
    waivers: list[Waiver], skip: str | None, note: str | None
) -> None:
    status = waiver_status(waivers, "TLS-003", "idm", TODAY)
    assert (status.skip_reason, status.expired_note) == (skip, note)


def _site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text('target = "remote"\n' + text, encoding="utf-8")
    return path


def test_tls_endpoints_are_the_declared_components_and_endpoints(tmp_path: Path) -> None:
    site = parse_site(
        _site(
            tmp_path,
            """
[idm]
admin_url = "https://idm.test:8443/idm-admin"
operator_url = "https://idm.test:8443/idm-operator"
admin_password = { env = "P" }
[messaging]
url = "https://hermod.test:20400/hermod/rest"
callback_url = "https://idm.test:8443/idm-operator/ws/hermod"
hermod_password = { env = "P" }
[certificate_manager]
url = "https://cm.test:8444/cm"
[[endpoints]]
name = "selfservice"
url = "https://self.test/"
client_auth = "required"
""",
        )
    )
    endpoints = tls_endpoints(site)
    assert [(e.id, e.client_auth_required, e.officer) for e in endpoints] == [
        ("idm", False, False),
        ("hermod", False, False),
        ("cm", True, True),
        ("endpoint-selfservice", True, False),
    ]
    assert endpoints[3].address == ("self.test", 443, "self.test")


def test_idm_operator_on_its_own_listener_is_observed_too(tmp_path: Path) -> None:
    site = parse_site(
        _site(
            tmp_path,
            """
[idm]
admin_url = "https://idm.test:8443/idm-admin"
operator_url = "https://idm.test:9443/idm-operator"
admin_password = { env = "P" }
""",
        )
    )
    assert [e.id for e in tls_endpoints(site)] == ["idm", "idm-operator"]


def test_a_site_of_endpoints_alone_has_only_those(tmp_path: Path) -> None:
    text = '[[endpoints]]\nname = "portal"\nurl = "https://portal.test:444/"\n'
    site = parse_site(_site(tmp_path, text))
    assert [e.id for e in tls_endpoints(site)] == ["endpoint-portal"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param("TLS-003 The leaf ...", "TLS-003", id="id"),
        pytest.param("\n    DRIFT-001 The live ...", "DRIFT-001", id="indented"),
        pytest.param("The leaf ...", None, id="no id"),
        pytest.param(None, None, id="no docstring"),
        pytest.param("TLS-0031 x", None, id="four digits"),
    ],
)
def test_check_id_is_the_first_word_of_the_docstring(doc: str | None, expected: str | None) -> None:
    assert check_id(doc) == expected


def test_every_check_has_a_unique_id_a_severity_and_a_requirement() -> None:
    ids = [entry.id for entry in CATALOGUE]
    assert len(ids) == len(set(ids)), ids
    for entry in CATALOGUE:
        assert entry.severity in ("blocker", "critical", "normal", "minor"), entry
        assert entry.requirement.endswith("."), entry
        family = entry.id.split("-")[0]
        assert (
            entry.module
            in {
                "CONN": ("test_connections",),
                "TLS": ("test_tls",),
                "AUTH": ("test_authentication",),
                "CONF": ("test_configuration", "test_export"),
                "DRIFT": ("test_drift",),
            }[family]
        ), entry


@pytest.mark.parametrize("path", sorted((ROOT / "checks").glob("test_*.py")), ids=lambda p: p.stem)
def test_every_check_module_is_one_family_marked_and_labelled(path: Path) -> None:
    module = importlib.import_module(f"checks.{path.stem}")
    assert all(
        isinstance(getattr(module, name, None), str) for name in ("EPIC", "STORY", "DOC_URL")
    )
    marks = {mark.name for mark in module.pytestmark}
    assert "verify" in marks
    quick = path.stem in ("test_connections", "test_tls", "test_authentication")
    assert ("health" in marks) == quick
    tests = [name for name in vars(module) if name.startswith("test_")]
    entries = [entry for entry in CATALOGUE if entry.module == path.stem]
    # Every test of a check module is a check: it has an id.
    assert sorted(tests) == sorted(entry.function for entry in entries)
    assert len({entry.id.split("-")[0] for entry in entries}) == 1


def test_junit_report_is_read_as_check_outcomes(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="checks.test_tls" name="test_handshake_verifies[idm]"/>
<testcase classname="checks.test_tls" name="test_handshake_verifies[cm]">
<failure message="TLS-001[cm]: x">TLS-001[cm]: cm (localhost:1): refused</failure></testcase>
<testcase classname="checks.test_authentication" name="test_default_admin_password_refused">
<skipped type="pytest.skip" message="probe_default_password is false"/></testcase>
<testcase classname="tests.test_other" name="test_something"/>
</testsuite></testsuites>""",
        encoding="utf-8",
    )
    outcomes = read_junit(junit, CATALOGUE)
    assert [(o.label, o.status, o.message) for o in outcomes] == [
        ("TLS-001[idm]", "passed", ""),
        ("TLS-001[cm]", "failed", "TLS-001[cm]: cm (localhost:1): refused"),
        ("AUTH-001", "skipped", "probe_default_password is false"),
    ]
