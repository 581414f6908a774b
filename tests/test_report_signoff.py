"""The sign-off a QA owner reads (docs/operations.md, "The sign-off"): the verdict in words,
what the run was pointed at (endpoints, lab faults, waivers in force) in the results, in
summary.json and on the report's first page, and a trend history per site."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smartid.lab.faults import FaultSet
from smartid.masking import MASK, MASKER, Secret
from smartid.report import html, nightly
from smartid.report.context import CONTEXT_FILE, RunContext, read_context, run_context
from smartid.report.results import TestRecord, read_environment, read_results
from smartid.report.signoff import FirstPage, SignOff, blocked_groups, first_page
from smartid.site import Waiver, parse_site
from tests.allure_results import Result, write_results
from tests.helpers import ROOT, run_suite
from tests.lab import new_state

pytestmark = pytest.mark.usefixtures("shared_allure_worker")

ALLURE = ROOT / "node_modules" / ".bin" / "allure"
CAUSE = "CONN-001[idm]: idm (localhost:18443): connection refused"
NOW = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)


def record(
    check: str,
    status: str,
    severity: str,
    *,
    waived: str | None = None,
    blocked_by: str | None = None,
) -> TestRecord:
    return TestRecord(
        name=f"{check} something",
        full_name=f"checks.test_x#{check}",
        status=status,
        severity=severity,
        check_id=check,
        message="",
        start=NOW,
        stop=NOW,
        waived=waived,
        outcome="blocked" if blocked_by else None,
        blocked_by=blocked_by,
    )


def blocked(check: str, severity: str) -> TestRecord:
    return record(check, "skipped", severity, blocked_by=CAUSE)


PASSED = record("TLS-001", "passed", "critical")


@pytest.mark.parametrize(
    ("records", "pytest_exit", "expected"),
    [
        pytest.param([PASSED], 0, (True, "signed off"), id="all-passed"),
        pytest.param(
            [PASSED, record("AUTH-002", "skipped", "critical", waived="waived: WAF (ops)")],
            0,
            (True, "signed off"),
            id="a-waived-critical-check-is-signed-off",
        ),
        pytest.param(
            [PASSED, record("X-001", "failed", "normal"), record("X-002", "broken", "minor")],
            1,
            (True, "signed off with 1 normal, 1 minor failed"),
            id="lesser-failures-are-named",
        ),
        pytest.param(
            [
                record("CONN-001", "broken", "blocker"),
                record("TLS-003", "failed", "critical"),
                record("TLS-004", "broken", "critical"),
                PASSED,
            ],
            1,
            (False, "not signed off: 1 blocker, 2 critical failed"),
            id="counts-by-severity",
        ),
        pytest.param(
            [record("CONN-001", "failed", "blocker"), record("X-001", "failed", "minor")],
            1,
            (False, "not signed off: 1 blocker, 1 minor failed"),
            id="lesser-failures-counted-with-the-serious",
        ),
        pytest.param(
            [record("CONN-001", "failed", "normal"), blocked("TLS-001", "critical"), PASSED],
            1,
            (False, "not signed off: 1 normal failed; 1 critical blocked"),
            id="a-blocked-critical-check-is-not-verified",
        ),
        pytest.param([], 5, (False, "not signed off: no check ran"), id="nothing-ran"),
    ],
)
def test_the_verdict_reads_signed_off_or_counts_what_failed_by_severity(
    records: list[TestRecord], pytest_exit: int, expected: tuple[bool, str]
) -> None:
    verdict = nightly.sign_off(records, pytest_exit)
    assert (verdict.signed_off, verdict.text) == expected


@pytest.mark.parametrize(
    ("records", "pytest_exit", "counts"),
    [
        pytest.param([record("CONN-001", "failed", "blocker")], 2, "1 blocker failed; ", id="int"),
        pytest.param([PASSED], 1, "", id="failures-missing-from-the-results"),
        pytest.param([], 4, "", id="site-error"),
    ],
)
def test_a_run_the_exit_policy_fails_for_its_own_reason_says_that_reason(
    records: list[TestRecord], pytest_exit: int, counts: str
) -> None:
    code, reason = nightly.exit_code(records, pytest_exit)
    assert code != 0
    verdict = nightly.sign_off(records, pytest_exit)
    assert (verdict.signed_off, verdict.text) == (False, f"not signed off: {counts}{reason}")


def test_blocked_and_outcome_labels_are_read_into_the_record(tmp_path: Path) -> None:
    results = [
        Result(check="TLS-001", title="TLS-001 x", status="passed", severity="critical"),
        Result(check="TLS-003", title="TLS-003 x", status="passed").blocked_by(CAUSE),
    ]
    write_results(tmp_path, results, site="lab")
    by_check = {r.check_id: r for r in read_results(tmp_path)}
    assert (by_check["TLS-001"].outcome, by_check["TLS-001"].blocked_by) == (None, None)
    assert (by_check["TLS-003"].outcome, by_check["TLS-003"].blocked_by) == ("blocked", CAUSE)
    assert by_check["TLS-003"].status == "skipped"


def test_blocked_checks_are_grouped_under_their_root_cause() -> None:
    other = "CONN-001[cm]: cm (localhost:18444): connection refused"
    records = [
        blocked("TLS-001", "critical"),
        PASSED,
        record("TLS-002", "skipped", "critical", blocked_by=other),
        blocked("TLS-003", "critical"),
    ]
    groups = [(cause, [r.check_id for r in group]) for cause, group in blocked_groups(records)]
    assert groups == [(CAUSE, ["TLS-001", "TLS-003"]), (other, ["TLS-002"])]


SITE = """
name = "prod"
target = "remote"

[idm]
admin_url = "https://idm.example.test:8443/idm-admin"
operator_url = "https://idm.example.test:8443/idm-operator"
admin_password = { env = "P" }

[messaging]
url = "https://hermod.example.test:20400/hermod/rest"
callback_url = "https://idm.example.test:8443/idm-operator/ws/hermod"
hermod_password = { env = "P" }

[certificate_manager]
url = "https://cm.example.test:8444/cm"

[[endpoints]]
name = "selfservice"
url = "https://self.example.test/"

[[waivers]]
check = "AUTH-002"
reason = "default password probe blocked by the WAF"
owner = "ops"
until = "2026-11-26"

[[waivers]]
check = "TLS-004"
reason = "old key until the renewal"
owner = "pki team"
until = "2026-11-25"
"""


def test_the_run_context_names_every_endpoint_as_tested_and_the_waivers_in_force(
    tmp_path: Path,
) -> None:
    (tmp_path / "site.toml").write_text(SITE, encoding="utf-8")
    site = parse_site(tmp_path / "site.toml")
    context = run_context(site, lab_faults=(), today=date(2026, 11, 26))
    # IDM Operator shares IDM Admin's listener (observed once) but is tested under its own URL.
    assert context.endpoints == {
        "IDM Admin": "https://idm.example.test:8443/idm-admin",
        "IDM Operator": "https://idm.example.test:8443/idm-operator",
        "Smart ID Messaging": "https://hermod.example.test:20400/hermod/rest",
        "Certificate Manager": "https://cm.example.test:8444/cm",
        "endpoint 'selfservice'": "https://self.example.test",
    }
    assert context.lab_faults == ()
    # A waiver is in force up to and including its day; yesterday's is not.
    assert [w.check for w in context.waivers_in_force] == ["AUTH-002"]
    assert context.environment()["endpoint.IDM Operator"] == (
        "https://idm.example.test:8443/idm-operator"
    )


def _context() -> RunContext:
    return RunContext(
        endpoints={"IDM Admin": "https://localhost:18443/idm-admin", "Certificate Manager": "x"},
        lab_faults=("idm-cert-expired",),
        waivers_in_force=(
            Waiver(check="AUTH-002", reason="WAF", owner="ops", until=date(2099, 1, 31)),
        ),
    )


def test_summary_json_holds_endpoints_lab_faults_waivers_in_force_and_the_sign_off(
    tmp_path: Path,
) -> None:
    results = [
        Result(check="CONN-001", title="CONN-001 x [idm]", status="broken", severity="blocker"),
        Result(check="TLS-001", title="TLS-001 x [idm]", status="passed", severity="critical"),
    ]
    write_results(tmp_path, results, site="lab", context=_context())
    data = nightly.summarize(tmp_path, 1).as_json()
    assert data["endpoints"] == _context().endpoints
    assert data["lab_faults"] == ["idm-cert-expired"]
    assert data["waivers_in_force"] == [
        {"check": "AUTH-002", "reason": "WAF", "owner": "ops", "until": "2099-01-31"}
    ]
    assert data["signoff"] == "not signed off: 1 blocker failed"


def test_a_run_without_a_context_reports_empty_lists(tmp_path: Path) -> None:
    write_results(tmp_path, [], site="lab")
    (tmp_path / CONTEXT_FILE).unlink()
    data = nightly.summarize(tmp_path, 5).as_json()
    assert (data["endpoints"], data["lab_faults"], data["waivers_in_force"]) == ({}, [], [])


HOSTILE = '<script>alert("x")</script><img src="https://tracker.example.com/p.gif">'
PAGE_SECRET = "Page-s3cret-Passw0rd-91"


def test_the_first_page_escapes_and_masks_every_value_and_loads_nothing(tmp_path: Path) -> None:
    MASKER.register(Secret(PAGE_SECRET, "test"))
    context = RunContext(
        endpoints={"IDM Admin": f"https://admin:{PAGE_SECRET}@idm.test/idm-admin"},
        lab_faults=("idm-down",),
        waivers_in_force=(
            Waiver(check="AUTH-002", reason=HOSTILE, owner=PAGE_SECRET, until=date(2099, 1, 1)),
        ),
    )
    records = (blocked("TLS-001", "critical"),)
    page = FirstPage(
        title="Smart ID verify: lab 2026-11-26 02:30 UTC",
        signoff=SignOff(signed_off=False, text="not signed off: 1 critical blocked"),
        exit=1,
        verdict="x",
        site="lab",
        target="lab",
        start=NOW,
        duration=41.2,
        context=context,
        records=records,
        allure_href="allure/index.html",
    )
    text = first_page(page)
    assert "<script" not in text
    assert "<img" not in text
    assert "&lt;script&gt;" in text
    assert PAGE_SECRET not in text
    assert f"https://admin:{MASK}@idm.test/idm-admin" in text
    (tmp_path / "index.html").write_text(text)
    assert html.find_external_urls(tmp_path) == []


def _finish(reports: Path, site: str, start: datetime, results: list[Result]) -> None:
    shutil.rmtree(reports / "allure-results", ignore_errors=True)
    write_results(reports / "allure-results", results, site=site, start=start.timestamp())
    assert nightly.finish(reports, 0, allure=ALLURE) == 0


def _history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_sites_keep_two_histories_and_each_run_is_named_by_its_date_and_time(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    results = [Result(check="TLS-001", title="TLS-001 x [idm]", status="passed")]
    first = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
    _finish(reports, "alpha", first, results)
    _finish(reports, "beta", first + timedelta(minutes=5), results)
    _finish(reports, "alpha", first + timedelta(days=1), results)
    alpha = _history(reports / "history" / "alpha.jsonl")
    beta = _history(reports / "history" / "beta.jsonl")
    assert not (reports / "history.jsonl").exists()
    assert [run["name"] for run in alpha] == [
        "Smart ID verify: alpha 2026-11-25 02:30 UTC",
        "Smart ID verify: alpha 2026-11-26 02:30 UTC",
    ]
    assert [run["name"] for run in beta] == ["Smart ID verify: beta 2026-11-25 02:35 UTC"]
    config = json.loads((reports / "allurerc.json").read_text())
    assert config["historyPath"] == str((reports / "history" / "alpha.jsonl").resolve())
    # The same test keeps one trend per site: its history id takes in the site (a hidden
    # parameter), so the two sites' runs stay apart also where their results meet.
    ids = [set(run["testResults"]) for run in (*alpha, *beta)]
    assert ids[0] == ids[1]
    assert ids[0].isdisjoint(ids[2])
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["site"] == "alpha"
    assert summary["signoff"] == "signed off"


def test_a_history_file_is_named_by_the_site_and_safe_for_any_name() -> None:
    assert html.history_name("prod-eu.1") == "prod-eu.1"
    assert html.history_name(None) == "unknown-site"
    assert re.fullmatch(r"site-[0-9a-f]{16}", html.history_name(".."))
    assert html.history_name("..") != html.history_name("...")


@pytest.mark.lab
@pytest.mark.e2e
def test_a_run_against_a_faulted_lab_says_so_first_and_records_the_faults(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    FaultSet(state.path).switch("idm-cert-expired", True)
    reports = tmp_path / "reports"
    env = {
        "SMARTID_LAB_STATE": str(state.path),
        "SMARTID_STATE": str(tmp_path / "state"),
        "SMARTID_REPORTS": str(reports),
    }
    run = run_suite("-m", "verify", "-k", "CONN-001", env=env)
    assert run.returncode in (0, 1), run.output
    lines = run.stdout.splitlines()
    warning = "lab faults on: idm-cert-expired (the results describe a deliberately broken lab)"
    assert warning in lines, run.output
    # In the header: before pytest says what it collected, so before any result.
    assert lines.index(warning) < next(i for i, x in enumerate(lines) if x.startswith("collect"))
    results = reports / "allure-results"
    assert read_environment(results)["lab.faults"] == "idm-cert-expired"
    context = read_context(results)
    assert context.lab_faults == ("idm-cert-expired",)
    endpoints = state.endpoints()
    assert context.endpoints["IDM Admin"] == endpoints["idm_admin"]
    assert context.endpoints["IDM Operator"] == endpoints["idm_operator"]
    assert {r.check_id for r in read_results(results)} == {"CONN-001"}
    for path in results.glob("*-result.json"):
        labels = json.loads(path.read_text())["labels"]
        assert {"name": "site", "value": "lab"} in labels
    data = nightly.summarize(results, run.returncode).as_json()
    assert data["lab_faults"] == ["idm-cert-expired"]
    assert data["endpoints"]["Certificate Manager"] == endpoints["cm"]
