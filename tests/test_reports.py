"""Reports: Allure evidence of every suite run, the nightly's summary and exit code, the HTML report
with its trend, and no secret in any of them (docs/operations.md).

Most tests share one run of a small synthetic suite (its own checks/, conftest and a remote site
whose password comes from an environment variable) that loads this project's fixtures/reporting.py
exactly as the real suite does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from smartid.masking import MASK, Secret, find_leaks
from smartid.report import allure_worker, html, nightly
from smartid.report.context import read_context
from smartid.report.results import CATEGORIES, TestRecord, categorize, read_environment
from tests.helpers import ROOT, Run, run_suite
from tests.lab import new_state

SECRET = "Synth-s3cret-Passw0rd-77"
ALLURE = ROOT / "node_modules" / ".bin" / "allure"
NIGHTLY = [sys.executable, "-m", "smartid.report.nightly"]

pytestmark = pytest.mark.usefixtures("shared_allure_worker")

# The suite's options (--site, --plan, --lab-state) come from the installed plugin.
CONFTEST = """
pytest_plugins = ["fixtures.site", "fixtures.outcomes", "fixtures.reporting"]
"""

PYTEST_INI = """
[pytest]
testpaths = checks
strict = true
addopts = -ra -p no:cacheprovider
markers =
    verify: read-only checks
    severity(level): blocker, critical, normal or minor
filterwarnings =
    error
"""

SITE = """
name = "synthetic"
target = "remote"

[idm]
admin_url = "https://idm.example.test:8443/idm-admin"
operator_url = "https://idm.example.test:8443/idm-operator"
admin_password = { env = "SYNTH_ADMIN_PASSWORD" }
"""

CHECKS = '''
import logging
import os

import pytest

from fixtures.outcomes import Waived
from smartid.report import seam
from smartid.errors import ConnectError
from smartid.verify.outcome import Outcome

EPIC = "Verify TLS"
STORY = "Certificates"
DOC_URL = "https://doc.example.test/tls"

pytestmark = pytest.mark.verify


@pytest.fixture
def password(site):
    return site.idm.admin_password.get().reveal()


@pytest.fixture
def findings():
    return []


@pytest.fixture
def observed():
    seam.attach_text("observation", "what the fixture saw")


@pytest.mark.severity("blocker")
def test_passes(findings, observed):
    """TLS-001 The leaf certificate is valid
    for the site's server name.

    Details that stay in the description only.
    """
    seam.attach_text("evidence", "the same evidence")


@pytest.mark.severity("critical")
@pytest.mark.parametrize("endpoint", ["idm", "cm"])
def test_parametrized(endpoint):
    """TLS-002 Each endpoint answers."""


@pytest.mark.severity("critical")
@pytest.mark.parametrize("value", [os.environ["SYNTH_ADMIN_PASSWORD"]], ids=["admin-password"])
def test_parameter_holds_a_secret(value):
    """AUTH-002 A parameter value that is a secret is masked."""


@pytest.mark.severity("normal")
def test_warns():
    """TLS-003 The certificate is not about to expire."""
    seam.attach_text("evidence", "the same evidence")
    seam.warn("idm: certificate expires on 2026-12-01, in 6 days (warning from 30 days)")


@pytest.mark.severity("minor")
def test_minor_fails(password):
    """TLS-004 A minor check fails, with the secret in every channel pytest captures."""
    print("stdout says " + password)
    logging.getLogger("smartid.synthetic").warning("log says %s", password)
    assert password == "the expected certificate chain"


@pytest.mark.severity("critical")
def test_waived():
    """AUTH-001 A waived check."""
    raise Waived(
        Outcome("waived", "AUTH-001", waiver="known issue (ops team, until 2099-01-01)")
    )


@pytest.mark.severity("blocker")
def test_blocker():
    """CONN-001 IDM answers on its admin URL."""
    if os.environ.get("SYNTH_BLOCKER") == "fail":
        raise ConnectError("https://idm.example.test:8443", "connection refused")


def test_without_docstring_or_severity():
    pass
'''


def write_suite(folder: Path, checks: str = CHECKS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text(PYTEST_INI)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "site.toml").write_text(SITE)
    (folder / "checks").mkdir(exist_ok=True)
    (folder / "checks" / "test_synthetic.py").write_text(checks)
    return folder


def run_synthetic(suite: Path, *args: str, blocker: str = "pass") -> Run:
    env = {"PYTHONPATH": str(ROOT), "SYNTH_ADMIN_PASSWORD": SECRET, "SYNTH_BLOCKER": blocker}
    return run_suite("--site=site.toml", *args, cwd=suite, env=env, timeout=180)


def results_by_title(results: Path) -> dict[str, Any]:
    found = {}
    for path in results.glob("*-result.json"):
        data = json.loads(path.read_text())
        found[str(data["name"])] = data
    return found


def labels(result: Any) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for label in result["labels"]:
        grouped.setdefault(label["name"], []).append(label["value"])
    return grouped


class Synthetic:
    """One run of the synthetic suite: its folder, its output and its Allure results."""

    def __init__(self, suite: Path, run: Run) -> None:
        self.suite = suite
        self.run = run
        self.results = suite / "reports" / "allure-results"
        self.junit = suite / "junit.xml"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    suite = write_suite(tmp_path_factory.mktemp("synthetic"))
    stale = suite / "reports" / "allure-results" / "stale-result.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    run = run_synthetic(suite, "--junitxml=junit.xml")
    assert run.returncode == 1, run.output  # the minor check fails
    return Synthetic(suite, run)


def test_suite_run_writes_allure_results_to_reports_cleaned_at_start(synthetic: Synthetic) -> None:
    assert not (synthetic.results / "stale-result.json").exists()
    assert len(list(synthetic.results.glob("*-result.json"))) == 9


def test_the_results_hold_no_file_that_shows_nothing_and_each_attachment_once(
    synthetic: Synthetic,
) -> None:
    containers = [json.loads(p.read_text()) for p in synthetic.results.glob("*-container.json")]
    # A parametrized test's argument is a fixture without tests to allure-pytest, and `findings`
    # and `password` show nothing but their names: no container for them. `observed` attaches.
    assert all(container.get("children") for container in containers), containers
    fixtures = {item["name"] for c in containers for item in c.get("befores", [])}
    assert fixtures == {"observed"}, fixtures
    results = results_by_title(synthetic.results).values()
    fixtures_of = [f for c in containers for f in c.get("befores", []) + c.get("afters", [])]
    named = [a["source"] for r in [*results, *fixtures_of] for a in r.get("attachments", [])]
    assert all((synthetic.results / source).is_file() for source in named)
    # Two checks attached the same bytes: both name the one file written.
    sources = [
        a["source"] for r in results for a in r.get("attachments", []) if a["name"] == "evidence"
    ]
    assert len(sources) == 2
    assert len(set(sources)) == 1
    assert (synthetic.results / sources[0]).read_text() == "the same evidence"
    assert len(list(synthetic.results.glob("*-attachment.txt"))) == len(set(named))


def test_a_run_outside_the_suite_folders_writes_no_allure_results(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite")
    (suite / "own").mkdir()
    (suite / "own" / "test_own.py").write_text("def test_own():\n    pass\n")
    run = run_synthetic(suite, "own")
    assert run.returncode == 0, run.output
    assert not (suite / "reports").exists()


def test_a_run_with_allure_pytest_switched_off_runs_and_writes_no_allure_results(
    tmp_path: Path,
) -> None:
    """`-p no:allure_pytest` leaves the run its verdict, its summary and JUnit, without a
    report; it was an INTERNALERROR traceback (the option allure-pytest adds was missing)."""
    suite = write_suite(tmp_path / "suite")
    run = run_synthetic(suite, "-p", "no:allure_pytest", "--junitxml=junit.xml")
    assert run.returncode == 1, run.output  # the minor check fails, as with Allure on
    assert "INTERNALERROR" not in run.output, run.output
    assert "Traceback" not in run.output, run.output
    assert "Smart ID verify" in run.stdout, run.output
    assert (suite / "junit.xml").is_file()
    assert not (suite / "reports" / "allure-results").exists()


def test_each_test_is_labelled_from_module_markers_and_docstring(synthetic: Synthetic) -> None:
    by_title = results_by_title(synthetic.results)
    title = "TLS-001 The leaf certificate is valid for the site's server name."
    result = by_title[title]
    assert labels(result)["check_id"] == ["TLS-001"]
    assert labels(result)["epic"] == ["Verify TLS"]
    assert labels(result)["story"] == ["Certificates"]
    assert labels(result)["severity"] == ["blocker"]
    assert result["links"] == [
        {"type": "link", "url": "https://doc.example.test/tls", "name": "Vendor documentation"}
    ]
    assert "Details that stay in the description only." in str(result["description"])
    assert labels(by_title["TLS-002 Each endpoint answers. [cm]"])["severity"] == ["critical"]
    assert "TLS-002 Each endpoint answers. [idm]" in by_title
    plain = by_title["test_without_docstring_or_severity"]
    assert labels(plain)["severity"] == ["normal"]
    assert "check_id" not in labels(plain)
    # The site, as a label and as a hidden parameter (which Allure's history ids take in).
    assert all(labels(r)["site"] == ["synthetic"] for r in by_title.values())
    site = {"name": "site", "value": "'synthetic'", "mode": "hidden"}
    assert all(site in r["parameters"] for r in by_title.values())


def test_a_secret_parameter_is_masked_in_the_results(synthetic: Synthetic) -> None:
    result = results_by_title(synthetic.results)[
        "AUTH-002 A parameter value that is a secret is masked. [admin-password]"
    ]
    shown = [p for p in result["parameters"] if p["name"] != "site"]
    assert shown == [{"name": "value", "value": f"'{MASK}'"}]


def test_environment_and_categories_are_written_into_the_results(synthetic: Synthetic) -> None:
    environment = read_environment(synthetic.results)
    assert environment["site"] == "synthetic"
    assert environment["target"] == "remote"
    assert environment["site.file"].endswith("site.toml")
    assert environment["markers"] == "all"
    assert {"suite", "python", "pytest", "allure-pytest"} <= environment.keys()
    assert environment["endpoint.IDM Admin"] == "https://idm.example.test:8443/idm-admin"
    assert "lab.faults" not in environment  # a real target has no lab
    context = read_context(synthetic.results)
    assert context.endpoints == {
        "IDM Admin": "https://idm.example.test:8443/idm-admin",
        "IDM Operator": "https://idm.example.test:8443/idm-operator",
    }
    assert (context.lab_faults, context.waivers_in_force) == ((), ())
    # The categories live in the report's configuration and match the outcome's label.
    assert not (synthetic.results / "categories.json").exists()
    assert [c.name for c in CATEGORIES] == [
        "Trust / TLS",
        "Connectivity",
        "Authentication",
        "Configuration drift",
        "Suite error",
    ]


def test_the_secret_is_masked_in_terminal_junit_results_and_attachments(
    synthetic: Synthetic,
) -> None:
    assert SECRET not in synthetic.run.output
    assert f"AssertionError: assert '{MASK}' == 'the expected" in synthetic.run.output
    assert re.search(r"Captured stdout call -+\nstdout says \*{4}\n", synthetic.run.output)
    assert find_leaks(synthetic.results, [Secret(SECRET, "synthetic")]) == []
    assert find_leaks(synthetic.junit.parent, [Secret(SECRET, "synthetic")]) == []
    failed = results_by_title(synthetic.results)[
        "TLS-004 A minor check fails, with the secret in every channel pytest captures."
    ]
    assert MASK in failed["statusDetails"]["message"]
    attachments = {a["name"]: a["source"] for a in failed["attachments"]}
    assert {"stdout", "log"} <= attachments.keys()
    assert f"stdout says {MASK}" in (synthetic.results / attachments["stdout"]).read_text()
    assert f"log says {MASK}" in (synthetic.results / attachments["log"]).read_text()


def test_a_warning_passes_and_shows_in_the_terminal_summary(synthetic: Synthetic) -> None:
    output = synthetic.run.output
    assert "Smart ID verify" in output
    warning = "idm: certificate expires on 2026-12-01, in 6 days (warning from 30 days)"
    assert f"  TLS-003: {warning}" in output.split("Smart ID verify", 1)[1]
    result = results_by_title(synthetic.results)["TLS-003 The certificate is not about to expire."]
    assert result["status"] == "passed"
    assert labels(result)["warning"] == [warning]
    assert "warning" in labels(result)["tag"]
    assert "smartid_warning" in synthetic.junit.read_text()


def test_summary_counts_statuses_and_exits_zero_when_only_a_minor_check_failed(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(synthetic.results, reports / "allure-results")
    code = nightly.finish(reports, 1, allure=ALLURE)
    summary = json.loads((reports / "summary.json").read_text())
    assert code == 0
    assert summary["exit"] == 0
    assert summary["site"] == "synthetic"
    assert summary["target"] == "remote"
    assert summary["counts"] == {"total": 9, "passed": 7, "failed": 1, "waived": 1}
    assert summary["by_severity"]["minor"] == {"failed": 1}
    assert summary["by_severity"]["critical"] == {"passed": 3, "waived": 1}
    assert [(f["id"], f["severity"], f["status"]) for f in summary["failed"]] == [
        ("TLS-004", "minor", "failed")
    ]
    assert summary["waived"] == [
        {
            "id": "AUTH-001",
            "test": "AUTH-001 A waived check.",
            "severity": "critical",
            "reason": "known issue (ops team, until 2099-01-01)",
        }
    ]
    assert summary["warnings"][0]["id"] == "TLS-003"
    assert summary["start"] is not None
    assert summary["duration_seconds"] >= 0
    assert (reports / "html" / "index.html").is_file()


def test_a_failed_blocker_makes_the_nightly_exit_one(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite")
    run = run_synthetic(suite, blocker="fail")
    assert run.returncode == 1, run.output
    reports = tmp_path / "reports"
    shutil.copytree(suite / "reports" / "allure-results", reports / "allure-results")
    assert nightly.finish(reports, run.returncode, allure=ALLURE) == 1
    summary = json.loads((reports / "summary.json").read_text())
    blocker = next(f for f in summary["failed"] if f["id"] == "CONN-001")
    assert blocker == {
        "id": "CONN-001",
        "test": "CONN-001 IDM answers on its admin URL.",
        "severity": "blocker",
        "status": "broken",
        "category": "Connectivity",
        "reason": "smartid.errors.ConnectError: https://idm.example.test:8443: connection refused",
    }


def test_an_unknown_severity_stops_the_run_before_any_test(tmp_path: Path) -> None:
    checks = 'import pytest\n\n@pytest.mark.severity("high")\ndef test_x():\n    """X-001 x"""\n'
    suite = write_suite(tmp_path / "suite", checks)
    run = run_synthetic(suite)
    assert run.returncode == 4, run.output
    assert "severity 'high' is not one of blocker, critical, normal, minor" in run.output


def _record(status: str, severity: str, check: str = "X-001") -> TestRecord:
    now = datetime.now(UTC)
    return TestRecord(check, check, status, severity, check, "", now, now)


@pytest.mark.parametrize(
    ("records", "pytest_exit", "expected"),
    [
        pytest.param([_record("passed", "blocker")], 0, 0, id="all-passed"),
        pytest.param([_record("failed", "blocker")], 1, 1, id="blocker-failed"),
        pytest.param([_record("broken", "critical")], 1, 1, id="critical-broken"),
        pytest.param([_record("failed", "minor"), _record("failed", "normal")], 1, 0, id="lesser"),
        pytest.param([_record("skipped", "blocker")], 0, 0, id="waived-blocker"),
        pytest.param([], 4, 4, id="site-error"),
        pytest.param([_record("failed", "blocker")], 2, 2, id="interrupted"),
        pytest.param([_record("passed", "minor")], 3, 3, id="internal-error"),
        pytest.param([], 5, 0, id="nothing-selected"),
        pytest.param([_record("passed", "normal")], 1, 1, id="pytest-failed-results-lost"),
        pytest.param([_record("failed", "critical")], 0, 1, id="results-decide-over-pytest"),
    ],
)
def test_nightly_exit_code_follows_severity_and_pytest(
    records: list[TestRecord], pytest_exit: int, expected: int
) -> None:
    assert nightly.exit_code(records, pytest_exit)[0] == expected


@pytest.mark.parametrize(
    ("status", "label", "category"),
    [
        ("failed", "Trust / TLS", "Trust / TLS"),
        ("broken", "Connectivity", "Connectivity"),
        ("failed", "Configuration drift", "Configuration drift"),
        ("broken", None, "Suite error"),
        ("failed", None, None),
        ("skipped", "Trust / TLS", None),
        ("passed", None, None),
    ],
)
def test_failures_fall_into_the_category_their_outcome_names(
    status: str, label: str | None, category: str | None
) -> None:
    assert categorize(status, label) == category


def test_the_report_matches_categories_on_the_outcome_label_in_allure_3_javascript() -> None:
    """Allure 3 evaluates a rule's label matcher with JavaScript's RegExp: each rule matches its
    own category's label and no other."""
    rules = [c.as_allure() for c in CATEGORIES]
    script = (
        "const rules = JSON.parse(process.argv[1]);"
        "const names = rules.map(r => r.name);"
        "for (const r of rules) { const re = new RegExp(r.matchers.labels.smartid_category);"
        "  const hits = names.filter(n => re.test(n));"
        "  if (hits.length !== 1 || hits[0] !== r.name) {"
        "    console.error(r.name, hits); process.exit(1); } }"
    )
    done = subprocess.run(
        ["node", "-e", script, json.dumps(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_tracking_scripts_are_removed_and_nothing_else_is(tmp_path: Path) -> None:
    page = textwrap.dedent("""
        <script>window.allure = {};</script>
        <script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>
        <script>
            window.dataLayer = window.dataLayer || [];
            function gtag(){dataLayer.push(arguments);}
        </script>
        <script async>window.allureReportData = {};</script>
    """)
    stripped = html.strip_tracking(page)
    assert "googletagmanager" not in stripped
    assert "dataLayer" not in stripped
    assert "window.allure = {};" in stripped
    assert "window.allureReportData = {};" in stripped


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        # Tags in any case; the whitespace after a removed script goes with it.
        ("a<SCRIPT>gtag('js', 1)</Script>\n\tb", "ab"),
        # A script element ends at the first closing tag after its opening one.
        ("<script>x</script>gtag(</script>", "<script>x</script>gtag(</script>"),
        ("<script>dataLayer</script><script>y</script>", "<script>y</script>"),
        # A name that only contains the words is not the tag manager's.
        ("<script>mydataLayer; ngtag (1)</script>", "<script>mydataLayer; ngtag (1)</script>"),
        # A script with a source keeps its body; one never closed is left as it is.
        ('<script src="a.js">gtag(1)</script>', '<script src="a.js">gtag(1)</script>'),
        ("<p><script>gtag(1)", "<p><script>gtag(1)"),
        ("", ""),
    ],
)
def test_only_whole_tracking_script_elements_are_removed(page: str, expected: str) -> None:
    assert html.strip_tracking(page) == expected


@pytest.mark.parametrize(
    "page",
    [
        '<script src="https://cdn.example.com/x.js"></script>',
        '<link rel="stylesheet" href="http://fonts.example.com/f.css">',
        '<img src="https://tracker.example.com/p.gif">',
        '<iframe src="https://example.com/"></iframe>',
        "<script>fetch('https://api.example.com/collect')</script>",
        "<script>import('https://cdn.example.com/mod.js')</script>",
        '<script src="data:text/javascript;base64,'
        + base64.b64encode(b"fetch(`https://e.example.com/x`)").decode()
        + '"></script>',
        "<style>@import 'https://fonts.example.com/a.css';</style>",
        # A srcset whose first candidate is a data: URL still has its other candidates checked.
        '<img srcset="data:image/png;base64,AAAA,https://tracker.example.com/p.png 2x">',
        '<link rel="stylesheet" href="data:text/css,@import \'https://fonts.example.com/a.css\';">',
    ],
)
def test_the_external_url_scan_finds_what_a_page_would_load(tmp_path: Path, page: str) -> None:
    (tmp_path / "index.html").write_text(page)
    assert html.find_external_urls(tmp_path) != []


def test_links_and_loopback_urls_are_not_external_loads(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<a href="https://doc.example.com/">docs</a>'
        '<script src="http://127.0.0.1:8000/x.js"></script>'
        '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
    )
    assert html.find_external_urls(tmp_path) == []


def test_two_report_generations_keep_a_trend_of_two_runs_without_external_urls(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    paths = html.ReportPaths.under(tmp_path / "reports", site="synthetic")
    shutil.copytree(synthetic.results, paths.results)
    allure = html.allure_binary(ALLURE)
    timings = []
    for _ in range(2):
        began = time.monotonic()
        index = html.render(paths, name="Smart ID verify", allure=allure)
        timings.append(time.monotonic() - began)
    history = paths.history.read_text().splitlines()
    assert len(history) == 2
    assert all(json.loads(line) for line in history)
    assert paths.history == tmp_path.resolve() / "reports" / "history" / "synthetic.jsonl"
    # The first page, and beside it the Allure report it links to.
    report = paths.html / "allure" / "index.html"
    assert sorted(paths.html.rglob("*.htm*")) == [report, index]
    assert 'href="allure/index.html"' in index.read_text()
    text = report.read_text()
    assert "googletagmanager" not in text
    assert "dataLayer" not in text
    assert html.find_external_urls(paths.html) == []
    assert find_leaks(paths.html.parent, [Secret(SECRET, "synthetic")]) == []
    print(f"report generation: {', '.join(f'{t:.2f} s' for t in timings)}")


def _history_statuses(paths: html.ReportPaths) -> dict[str, str]:
    (line,) = paths.history.read_text().splitlines()
    results = json.loads(line)["testResults"]
    return {key: value["status"] for key, value in results.items()}


def test_the_allure_worker_renders_what_allure_generate_renders(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    allure = html.allure_binary(ALLURE)
    made = {}
    # Rendered inside a git checkout (as reports/ is in the suite's own): the report describes
    # the site, not the checkout's branch or folder.
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "checkout-branch-x"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    with allure_worker.Worker(allure, tmp_path / "worker.log") as worker:
        address = worker.start()
        assert address is not None, (tmp_path / "worker.log").read_text()
        # "" rather than None: `allure generate` even where the tests share a worker.
        for how, via in (("cli", ""), ("worker", address), ("worker-again", address)):
            paths = html.ReportPaths.under(tmp_path / how, site="synthetic")
            shutil.copytree(synthetic.results, paths.results)
            index = html.render(paths, name="Smart ID verify", allure=allure, worker=via)
            assert index.is_file()
            assert html.find_external_urls(paths.html) == []
            page = (paths.allure_html / "index.html").read_text()
            assert "checkout-branch-x" not in page, how
            assert f'"repoName":"{tmp_path.name}"' not in page, how
            made[how] = paths
    cli, by_worker = (_history_statuses(made[how]) for how in ("cli", "worker"))
    assert len(cli) >= 8
    assert by_worker == cli
    assert _history_statuses(made["worker-again"]) == cli
    size = {how: (p.allure_html / "index.html").stat().st_size for how, p in made.items()}
    assert abs(size["worker"] - size["cli"]) < size["cli"] * 0.02
    assert worker.process is None  # closed with its block


def test_an_allure_worker_that_cannot_be_reached_leaves_the_report_to_allure_generate(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    paths = html.ReportPaths.under(tmp_path / "reports", site="synthetic")
    shutil.copytree(synthetic.results, paths.results)
    gone = str(tmp_path / "no-such-worker.sock")
    index = html.render(paths, name="v", allure=html.allure_binary(ALLURE), worker=gone)
    assert (paths.allure_html / "index.html").is_file()
    assert index.is_file()


def test_a_job_allure_fails_is_one_sentence_naming_the_results(tmp_path: Path) -> None:
    config = tmp_path / "allurerc.mjs"
    config.write_text("export default {;\n")  # not JavaScript
    results = tmp_path / "allure-results"
    results.mkdir()
    with allure_worker.Worker(html.allure_binary(ALLURE), tmp_path / "worker.log") as worker:
        address = worker.start()
        assert address is not None
        with pytest.raises(allure_worker.WorkerJobError) as failed:
            allure_worker.generate(address, config, results, tmp_path, timeout=60)
        # The worker goes on with the next job.
        config.write_text("export default { output: 'out' };\n")
        assert allure_worker.generate(address, config, results, tmp_path, timeout=60)
    assert str(failed.value)
    assert "\n" not in str(failed.value)


def test_a_site_error_exits_four_and_leaves_no_stale_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "html").mkdir(parents=True)
    (reports / "html" / "index.html").write_text("yesterday")
    done = subprocess.run(
        [*NIGHTLY, "run", "--reports", str(reports), "--site", str(tmp_path / "missing.toml")],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "the site file does not exist" in done.stdout + done.stderr
    summary = json.loads((reports / "summary.json").read_text())
    assert (summary["exit"], summary["pytest_exit"], summary["counts"]) == (4, 4, {"total": 0})
    assert not (reports / "html").exists()


def _lab_secrets(lab: Path, state: Path) -> list[Secret]:
    values = json.loads((lab / "secrets.json").read_text())
    secrets = [Secret(v, f"lab secret {k}") for k, v in values.items() if isinstance(v, str)]
    # Secrets that setup creates for the site (the Hermod client key) are kept as *.key files.
    for path in sorted(state.rglob("*.key")):
        secrets.append(Secret(path.read_text().strip(), f"site state {path.name}"))
    return secrets


@pytest.mark.e2e
@pytest.mark.lab
def test_no_lab_secret_reaches_any_file_of_setup_verify_and_nightly(tmp_path: Path) -> None:
    """Honest while setup_steps/ or checks/ are empty (pytest's 5): it scans what there is."""
    lab = new_state(tmp_path / "lab").path
    state = tmp_path / "state"
    env = {"SMARTID_LAB_STATE": str(lab), "SMARTID_STATE": str(state)}
    reports = tmp_path / "reports"
    results = reports / "allure-results"
    setup = run_suite(
        "-m",
        "setup",
        f"--alluredir={results}",
        "--clean-alluredir",
        f"--junitxml={reports / 'setup-junit.xml'}",
        env=env,
        timeout=600,
    )
    assert setup.returncode in (0, 1, 5), setup.output
    # Verify cleans the results folder: setup's results are kept, and rendered, beside it.
    setup_paths = html.ReportPaths(
        results=reports / "setup-allure-results",
        html=reports / "setup-html",
        history=reports / "setup-history.jsonl",
        config=reports / "setup-allurerc.json",
    )
    shutil.copytree(results, setup_paths.results)
    html.render(setup_paths, name="Smart ID setup", allure=html.allure_binary(ALLURE))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    verify = subprocess.run(
        [*NIGHTLY, "run", "--reports", str(reports), "--allure", str(ALLURE)],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = setup.output + verify.stdout + verify.stderr
    assert verify.returncode in (0, 1), output
    assert (reports / "summary.json").is_file()
    assert (reports / "html" / "index.html").is_file()
    secrets = _lab_secrets(lab, state)
    assert len(secrets) >= 3
    assert [str(leak) for leak in find_leaks(reports, secrets)] == []
    assert not any(secret.reveal() in output for secret in secrets)
