"""The HTML report works where people open it: a real headless Chromium loads it from file://. The
first page shows the sign-off (verdict, endpoints as tested, lab faults, waivers in force, blocked
checks under their root cause); the single-file Allure report beside it shows the run's counts.

Chromium is a test requirement (`make test` installs Debian's package as root, else stops before
the tests and says what to install). Without it this test fails and says how to install it;
SMARTID_NO_BROWSER=1 skips it on a machine that cannot have a browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from smartid.report import html, nightly
from smartid.report.context import RunContext
from smartid.site import Waiver
from tests.allure_results import Result, write_results
from tests.helpers import ROOT

pytestmark = pytest.mark.usefixtures("shared_allure_worker")

CHROMIUM = "/usr/bin/chromium"
# Loopback only (PLATFORM-NOTES): nothing may leave the machine, and the two EXCLUDEs keep
# localhost reachable.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]
STATUSES = ("total", "passed", "failed", "broken", "skipped")

TESTS = """
import pytest


def test_passes_one():
    pass


def test_passes_two():
    pass


def test_fails():
    assert 1 == 2


def test_breaks():
    raise RuntimeError("boom")


def test_skipped():
    pytest.skip("waived: not today (ops, until 2099-01-01)")
"""


INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"


def chromium(path: str = CHROMIUM) -> str:
    if os.environ.get("SMARTID_NO_BROWSER") == "1":
        pytest.skip("SMARTID_NO_BROWSER=1: the report is not opened in a browser")
    if not Path(path).is_file():
        message = (
            f"{path} is missing. Install Debian's chromium (make test does, as root): `{INSTALL}`"
        )
        pytest.fail(f"{message} (or export SMARTID_NO_BROWSER=1 to skip this test)", pytrace=False)
    return path


class _Counts(HTMLParser):
    """The numbers in the report's `metadata-item-<status>` blocks (absent when 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self._item: str | None = None
        self._in_value = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        testid = dict(attrs).get("data-testid") or ""
        if testid.startswith("metadata-item-"):
            self._item = testid.removeprefix("metadata-item-")
        elif testid == "metadata-value" and self._item is not None:
            self._in_value = True

    def handle_data(self, data: str) -> None:
        if self._in_value and self._item is not None and data.strip().isdigit():
            self.counts[self._item] = int(data.strip())
            self._item, self._in_value = None, False


def page_counts(dom: str) -> dict[str, int]:
    parser = _Counts()
    parser.feed(dom)
    return {status: n for status, n in parser.counts.items() if status in STATUSES}


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The page's DOM once its scripts (if any) have run."""
    dump = ["--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    opened = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *dump],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return opened.stdout


def test_the_report_opened_from_file_shows_the_runs_counts(tmp_path: Path) -> None:
    browser = chromium()
    (tmp_path / "test_run.py").write_text(textwrap.dedent(TESTS))
    reports = tmp_path / "reports"
    results = reports / "allure-results"
    pytest_run = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_run.py"]
    done = subprocess.run(
        [*pytest_run, f"--alluredir={results}", "--clean-alluredir"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    allure = ROOT / "node_modules" / ".bin" / "allure"
    assert nightly.finish(reports, done.returncode, allure=allure) == 0  # nothing is a blocker
    # The first page links to the Allure report beside it.
    assert 'href="allure/index.html"' in (reports / "html" / "index.html").read_text()
    began = time.monotonic()
    dom = dump_dom(browser, reports / "html" / "allure" / "index.html", tmp_path / "profile")
    elapsed = time.monotonic() - began
    counts = page_counts(dom)
    assert counts == {"total": 5, "passed": 2, "failed": 1, "broken": 1, "skipped": 1}, (
        f"counts on the page: {counts}"
    )
    summary = nightly.summarize(results, done.returncode).as_json()["counts"]
    assert counts == summary
    assert "googletagmanager" not in dom
    print(f"chromium --dump-dom of the report: {elapsed:.1f} s")


class _Sections(HTMLParser):
    """Each element with a `data-testid`: its text and its table rows (cells as text); and every
    tag the page has."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, list[str]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.tags: set[str] = set()
        self._open: list[tuple[str, str | None]] = []
        self._row: list[str] | None = None
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag in _VOID:
            return
        testid = dict(attrs).get("data-testid")
        self._open.append((tag, testid))
        if testid is not None:
            self.text.setdefault(testid, []).append("")
        if tag == "tr":
            self._row = []
            for _, open_id in self._open:
                if open_id is not None:
                    self.rows.setdefault(open_id, []).append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")
            self._in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, testid in self._open:
            if testid is not None:
                self.text[testid][-1] += data + " "
        if self._in_cell and self._row:
            self._row[-1] = " ".join(f"{self._row[-1]} {data}".split())

    def section(self, testid: str) -> str:
        return " ".join(" ".join(chunk.split()) for chunk in self.text.get(testid, []))


_VOID = {"meta", "link", "br", "img", "input", "hr", "wbr", "source", "col", "area", "base"}
CAUSE = "CONN-001[idm]: idm (localhost:18443): connection refused"


def test_the_first_page_shows_the_sign_off_endpoints_faults_waivers_and_blocked_checks(
    tmp_path: Path,
) -> None:
    browser = chromium()
    reports = tmp_path / "reports"
    context = RunContext(
        endpoints={
            "IDM Admin": "https://localhost:18443/idm-admin",
            "IDM Operator": "https://localhost:18443/idm-operator",
            "Smart ID Messaging": "https://localhost:20400/hermod/rest",
            "Certificate Manager": "https://localhost:18444/cm",
        },
        lab_faults=("idm-down",),
        waivers_in_force=(
            Waiver(
                check="AUTH-002",
                reason="default password probe <blocked> by the WAF",
                owner="ops team",
                until=date(2099, 1, 31),
            ),
        ),
    )
    tls = Result(check="TLS-001", title="TLS-001 The handshake [idm]", status="passed")
    results = [
        Result(
            check="CONN-001",
            title="CONN-001 IDM answers [idm]",
            status="broken",
            severity="blocker",
            message="smartid.errors.ConnectError: idm (localhost:18443): connection refused",
        ),
        Result(check="CONN-001", title="CONN-001 CM answers [cm]", status="passed"),
        Result(check="TLS-003", title="TLS-003 x [idm]", status="failed", severity="critical"),
        Result(check="TLS-004", title="TLS-004 x [idm]", status="broken", severity="critical"),
        tls.blocked_by(CAUSE),
        Result(check="TLS-002", title="TLS-002 The protocol [idm]", status="passed").blocked_by(
            CAUSE
        ),
    ]
    write_results(reports / "allure-results", results, site="lab", context=context)
    assert nightly.finish(reports, 1, allure=ROOT / "node_modules" / ".bin" / "allure") == 1
    index = reports / "html" / "index.html"
    assert html.find_external_urls(reports / "html") == []
    page = _Sections()
    page.feed(dump_dom(browser, index, tmp_path / "profile"))
    assert "script" not in page.tags
    verdict = page.section("signoff-verdict")
    assert verdict.startswith("not signed off: 1 blocker, 2 critical failed")
    assert nightly.summarize(reports / "allure-results", 1).signoff.text in verdict
    assert "6 checks: 2 blocked, 2 broken, 1 failed, 1 passed" in verdict
    assert page.rows["signoff-endpoints"][1:] == [list(row) for row in context.endpoints.items()]
    assert "idm-down" in page.section("signoff-faults")
    assert "deliberately broken lab" in page.section("signoff-faults")
    assert page.rows["signoff-waivers"] == [
        ["check", "reason", "owner", "until"],
        ["AUTH-002", "default password probe <blocked> by the WAF", "ops team", "2099-01-31"],
    ]
    assert page.section("signoff-blocked-group").startswith(f"Blocked by {CAUSE}")
    assert page.rows["signoff-blocked-group"][1:] == [
        ["TLS-001", "normal", "TLS-001 The handshake [idm]"],
        ["TLS-002", "normal", "TLS-002 The protocol [idm]"],
    ]
    failed = [row[:3] for row in page.rows["signoff-failed"][1:]]
    assert failed == [
        ["CONN-001", "blocker", "broken"],
        ["TLS-003", "critical", "failed"],
        ["TLS-004", "critical", "broken"],
    ]


def test_a_missing_browser_fails_and_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SMARTID_NO_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        chromium(str(tmp_path / "no-chromium"))
