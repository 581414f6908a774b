"""The HTML report works where people open it: a real headless Chromium loads the single-file report
from file:// and shows the run's counts.

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
from html.parser import HTMLParser
from pathlib import Path

import pytest

from smartid.report import nightly
from tests.helpers import ROOT

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
    index = reports / "html" / "index.html"
    profile = tmp_path / "profile"
    began = time.monotonic()
    dump = ["--virtual-time-budget=10000", "--dump-dom", index.as_uri()]
    opened = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *dump],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - began
    assert opened.returncode == 0, opened.stderr[-2000:]
    counts = page_counts(opened.stdout)
    assert counts == {"total": 5, "passed": 2, "failed": 1, "broken": 1, "skipped": 1}, (
        f"counts on the page: {counts}"
    )
    summary = nightly.summarize(results, done.returncode).as_json()["counts"]
    assert counts == summary
    assert "googletagmanager" not in opened.stdout
    print(f"chromium --dump-dom of the report: {elapsed:.1f} s")
    shutil.rmtree(profile, ignore_errors=True)


def test_a_missing_browser_fails_and_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SMARTID_NO_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        chromium(str(tmp_path / "no-chromium"))
