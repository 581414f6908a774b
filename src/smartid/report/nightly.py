"""The nightly run (docs/operations.md): `verify` against a site, then JUnit XML, `summary.json`,
the HTML report with its trend history, and an exit code that tells cron whether something serious
broke.

    python -m smartid.report.nightly run [--site PATH] [--reports DIR] [-- PYTEST_ARGS...]
    python -m smartid.report.nightly finish [--pytest-exit N] [--reports DIR]

`run` runs `pytest -m verify` and then `finish`; `finish` alone summarizes and renders the results
a pytest run left in `reports/allure-results/`. Exit codes:

    0  every blocker and critical check passed (lesser failures are in the report)
    1  a blocker or critical check failed or broke
    2  pytest was interrupted (also: a checks module failed to import)
    3  internal error: pytest's, or the report could not be made
    4  the site file or the target's setup is unusable; no check ran
A run whose marker selects no test (pytest's 5) has nothing to report: 0, as for `make demo`.

`allure quality-gate` would compute the same verdict but crashes on Node 20, so the policy is here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartid.masking import MASKER
from smartid.report.html import ReportError, ReportPaths, allure_binary, render
from smartid.report.results import TestRecord, categorize, read_environment, read_results

__all__ = ["Summary", "exit_code", "finish", "main", "run", "summarize"]

SERIOUS = ("blocker", "critical")
_PROBLEM = ("failed", "broken")
# pytest's exit codes that this module passes through or reads.
_INTERRUPTED, _INTERNAL, _USAGE, _NO_TESTS = 2, 3, 4, 5


@dataclass(frozen=True)
class Summary:
    """What `summary.json` holds: one run, as counts and as the lists a person acts on."""

    site: str | None
    target: str | None
    start: datetime | None
    duration: float | None
    pytest_exit: int | None
    exit: int
    verdict: str
    records: tuple[TestRecord, ...]

    def as_json(self) -> dict[str, Any]:
        records = self.records
        by_severity: dict[str, Counter[str]] = {}
        for record in records:
            by_severity.setdefault(record.severity, Counter())[record.state] += 1
        return {
            "site": self.site,
            "target": self.target,
            "start": self.start.isoformat(timespec="seconds") if self.start else None,
            "duration_seconds": round(self.duration, 3) if self.duration is not None else None,
            "pytest_exit": self.pytest_exit,
            "exit": self.exit,
            "verdict": self.verdict,
            "counts": {"total": len(records), **Counter(r.state for r in records)},
            "waived_count": sum(1 for r in records if r.state == "waived"),
            "by_severity": {level: dict(counts) for level, counts in sorted(by_severity.items())},
            "failed": [_problem(r) for r in records if r.status in _PROBLEM],
            "blocked": [
                {"id": r.ident, "test": r.name, "severity": r.severity, "by": r.blocked_by}
                for r in records
                if r.state == "blocked"
            ],
            "waived": [
                {"id": r.ident, "test": r.name, "severity": r.severity, "reason": r.waived}
                for r in records
                if r.state == "waived"
            ],
            "warnings": [
                {"id": r.ident, "test": r.name, "text": text}
                for r in records
                for text in r.warnings
            ],
        }


def _problem(record: TestRecord) -> dict[str, Any]:
    return {
        "id": record.ident,
        "test": record.name,
        "severity": record.severity,
        "status": record.status,
        "category": categorize(record.status, record.category),
        "reason": record.reason,
    }


def exit_code(records: Sequence[TestRecord], pytest_exit: int | None) -> tuple[int, str]:
    """The nightly's exit code and why, from the results and pytest's own exit code."""
    if pytest_exit == _USAGE:
        return 4, "site error: no check ran (see the run's output)"
    if pytest_exit in (_INTERRUPTED, _INTERNAL):
        return pytest_exit, f"pytest stopped early (exit {pytest_exit}); the results are partial"
    serious = [r for r in records if r.status in _PROBLEM and r.severity in SERIOUS]
    if serious:
        ids = ", ".join(sorted({r.ident for r in serious}))
        return 1, f"{len(serious)} blocker or critical check(s) failed: {ids}"
    lesser = [r for r in records if r.status in _PROBLEM]
    if pytest_exit == 1 and not lesser:
        # pytest saw a failure the results do not hold (results written elsewhere?): never green.
        return 1, "pytest reported failures that are missing from the Allure results"
    if pytest_exit == _NO_TESTS or not records:
        return 0, "nothing to do: no check was selected"
    if lesser:
        return 0, f"passed with {len(lesser)} lesser failure(s), see the report"
    return 0, "passed"


def summarize(
    results_dir: Path,
    pytest_exit: int | None,
    *,
    start: datetime | None = None,
    duration: float | None = None,
) -> Summary:
    """The run's summary; a site error (pytest's 4) left no results of its own to read."""
    records = [] if pytest_exit == _USAGE else read_results(results_dir)
    environment = {} if pytest_exit == _USAGE else read_environment(results_dir)
    starts = [r.start for r in records if r.start]
    stops = [r.stop for r in records if r.stop]
    if start is None and starts:
        start = min(starts)
    if duration is None and starts and stops:
        duration = (max(stops) - min(starts)).total_seconds()
    code, verdict = exit_code(records, pytest_exit)
    return Summary(
        site=environment.get("site"),
        target=environment.get("target"),
        start=start,
        duration=duration,
        pytest_exit=pytest_exit,
        exit=code,
        verdict=verdict,
        records=tuple(records),
    )


def _headline(summary: Summary) -> str:
    counts = Counter(r.state for r in summary.records)
    told = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no tests"
    where = f"site {summary.site} ({summary.target})" if summary.site else "site unknown"
    return f"Smart ID nightly: {where}: {told}; exit {summary.exit}: {summary.verdict}"


def finish(
    reports: Path,
    pytest_exit: int | None,
    *,
    start: datetime | None = None,
    duration: float | None = None,
    allure: Path | str | None = None,
    listing: bool = True,
) -> int:
    """Write summary.json, render the HTML report (not after a site error) and return the exit
    code; what a person needs is printed in a few lines. `listing=False` leaves out the list of
    failures, waivers and warnings, for a run whose pytest output has just shown them (the
    Smart ID verify block): each is printed once."""
    paths = ReportPaths.under(reports)
    summary = summarize(paths.results, pytest_exit, start=start, duration=duration)
    reports.mkdir(parents=True, exist_ok=True)
    data = summary.as_json()
    (reports / "summary.json").write_text(
        MASKER.mask(json.dumps(data, indent=2)) + "\n", encoding="utf-8"
    )
    print(_headline(summary))
    for problem in data["failed"] if listing else ():
        print(f"  {problem['status']} [{problem['severity']}] {problem['id']}: {problem['reason']}")
    if data["blocked"] and listing:
        print(f"  blocked: {len(data['blocked'])} check(s), see the report")
    for waived in data["waived"] if listing else ():
        print(f"  waived {waived['id']}: {waived['reason']}")
    for warning in data["warnings"] if listing else ():
        print(f"  warning {warning['id']}: {warning['text']}")
    print(f"Summary: {reports / 'summary.json'}")
    if pytest_exit == _USAGE:
        # The results folder still holds an older run; a report from it would mislead.
        shutil.rmtree(paths.html, ignore_errors=True)
        return summary.exit
    try:
        name = f"Smart ID verify: {summary.site}" if summary.site else "Smart ID verify"
        index = render(paths, name=name, allure=allure_binary(allure))
    except ReportError as exc:
        print(f"Report: not written: {exc}", file=sys.stderr)
        return summary.exit or _INTERNAL
    print(f"Report: {index} (trend history in {paths.history})")
    return summary.exit


def run(
    reports: Path,
    *,
    site: str | None = None,
    pytest_args: Sequence[str] = (),
    allure: Path | str | None = None,
) -> int:
    """`pytest -m verify` with Allure results and JUnit XML under `reports`, then `finish()`."""
    paths = ReportPaths.under(reports)
    reports.mkdir(parents=True, exist_ok=True)
    for stale in (reports / "junit.xml", reports / "summary.json"):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-m", "verify"]
    command += [f"--alluredir={paths.results}", "--clean-alluredir"]
    command += [f"--junitxml={reports / 'junit.xml'}"]
    # Each failure once: in the Smart ID verify block, not again in pytest's failure section,
    # its short summary or the lines below.
    command += ["--tb=no", "-rN"]
    if site:
        command.append(f"--site={site}")
    command += list(pytest_args)
    start = datetime.now(UTC)
    began = time.monotonic()
    pytest_exit = subprocess.run(command, check=False).returncode
    duration = time.monotonic() - began
    return finish(
        reports, pytest_exit, start=start, duration=duration, allure=allure, listing=False
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m smartid.report.nightly", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("run", "finish"):
        sub = commands.add_parser(command)
        sub.add_argument(
            "--reports",
            type=Path,
            default=Path(os.environ.get("SMARTID_REPORTS") or "reports"),
            metavar="DIR",
            help="default: $SMARTID_REPORTS, else reports/",
        )
        sub.add_argument(
            "--allure",
            default=os.environ.get("SMARTID_ALLURE"),
            metavar="PATH",
            help="default: $SMARTID_ALLURE, else node_modules/.bin/allure",
        )
    commands.choices["run"].add_argument("--site", default=None, metavar="PATH")
    commands.choices["run"].add_argument("pytest_args", nargs="*", metavar="PYTEST_ARGS")
    commands.choices["finish"].add_argument("--pytest-exit", type=int, default=None, metavar="N")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args.reports, site=args.site, pytest_args=args.pytest_args, allure=args.allure)
    return finish(args.reports, args.pytest_exit, allure=args.allure)


if __name__ == "__main__":
    sys.exit(main())
