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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartid.forkrun import run_module
from smartid.masking import MASKER
from smartid.report.context import RunContext, read_context
from smartid.report.html import ReportError, ReportPaths, allure_binary, render
from smartid.report.results import TestRecord, categorize, read_environment, read_results
from smartid.report.seam import SEVERITIES
from smartid.report.signoff import BLOCKED, FirstPage, SignOff, first_page

__all__ = ["Summary", "exit_code", "finish", "main", "run", "sign_off", "summarize"]

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
    signoff: SignOff
    context: RunContext

    def _run_context_json(self) -> dict[str, Any]:
        """What the run was pointed at, and the sign-off sentence."""
        return {
            "endpoints": dict(self.context.endpoints),
            "lab_faults": list(self.context.lab_faults),
            "waivers_in_force": self.context.waivers_json(),
            "signoff": self.signoff.text,
        }

    def as_json(self) -> dict[str, Any]:
        records = self.records
        by_severity: dict[str, Counter[str]] = {}
        for record in records:
            by_severity.setdefault(record.severity, Counter())[record.state] += 1
        return {
            "site": self.site,
            "target": self.target,
            **self._run_context_json(),
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


def _by_severity(records: Iterable[TestRecord]) -> str:
    """`1 blocker, 2 critical`: most severe first (a severity of another tool's results last)."""
    counts = Counter(r.severity for r in records)
    order = [*SEVERITIES, *sorted(set(counts) - set(SEVERITIES))]
    return ", ".join(f"{counts[level]} {level}" for level in order if counts[level])


def sign_off(records: Sequence[TestRecord], pytest_exit: int | None) -> SignOff:
    """The verdict in a QA owner's words, from the same results and policy as `exit_code()`:
    "signed off" when the nightly exits 0, no blocker or critical check failed or was blocked,
    and a check ran at all; else "not signed off: 1 blocker, 2 critical failed"."""
    code, reason = exit_code(records, pytest_exit)
    failed = [r for r in records if r.status in _PROBLEM]
    serious = [r for r in failed if r.severity in SERIOUS]
    # A blocker that could not run is not verified, whatever the exit code says.
    unverified = [r for r in records if r.outcome == BLOCKED and r.severity in SERIOUS]
    if code == 0 and not serious and not unverified:
        if not records:
            return SignOff(signed_off=False, text="not signed off: no check ran")
        lesser = f" with {_by_severity(failed)} failed" if failed else ""
        return SignOff(signed_off=True, text=f"signed off{lesser}")
    parts = [f"{_by_severity(failed)} failed"] if failed else []
    if unverified:
        parts.append(f"{_by_severity(unverified)} blocked")
    if code != 0 and not (code == 1 and (serious or unverified)):
        parts.append(reason)  # the policy failed the run for a reason of its own
    return SignOff(signed_off=False, text="not signed off: " + "; ".join(parts))


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
    context = RunContext() if pytest_exit == _USAGE else read_context(results_dir)
    return Summary(
        site=environment.get("site"),
        target=environment.get("target"),
        start=start,
        duration=duration,
        pytest_exit=pytest_exit,
        exit=code,
        verdict=verdict,
        records=tuple(records),
        signoff=sign_off(records, pytest_exit),
        context=context,
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
    return _report(reports, summary, allure)


def _report_name(summary: Summary) -> str:
    """The Allure report's name, which also names the run on the trend charts: when it ran."""
    start = (summary.start or datetime.now(UTC)).astimezone(UTC)
    site = f" {summary.site}" if summary.site else ""
    return f"Smart ID verify:{site} {start:%Y-%m-%d %H:%M} UTC"


def _report(reports: Path, summary: Summary, allure: Path | str | None) -> int:
    """Print the sign-off, render the sign-off page and the Allure report with the site's own
    trend (not after a site error) and return the exit code."""
    print(f"Sign-off: {summary.signoff}")
    paths = ReportPaths.under(reports, site=summary.site)
    if summary.pytest_exit == _USAGE:
        # The results folder still holds an older run; a report from it would mislead.
        shutil.rmtree(paths.html, ignore_errors=True)
        return summary.exit
    name = _report_name(summary)
    page = FirstPage(
        title=name,
        signoff=summary.signoff,
        exit=summary.exit,
        verdict=summary.verdict,
        site=summary.site,
        target=summary.target,
        start=summary.start,
        duration=summary.duration,
        context=summary.context,
        records=summary.records,
        allure_href=paths.allure_href,
    )
    variables = {"Sign-off": summary.signoff.text}
    if summary.context.lab_faults:
        variables["Lab faults on"] = ", ".join(summary.context.lab_faults)
    try:
        index = render(
            paths,
            name=name,
            allure=allure_binary(allure),
            first_page=first_page(page),
            variables=variables,
        )
    except ReportError as exc:
        print(f"Report: not written: {exc}", file=sys.stderr)
        return summary.exit or _INTERNAL
    print(f"Report: {index} (the Allure report beside it: {paths.allure_html / 'index.html'})")
    print(f"Trend history of site {summary.site or 'unknown'}: {paths.history}")
    return summary.exit


def run(
    reports: Path,
    *,
    site: str | None = None,
    pytest_args: Sequence[str] = (),
    allure: Path | str | None = None,
    in_process: bool = False,
) -> int:
    """`pytest -m verify` with Allure results and JUnit XML under `reports`, then `finish()`.
    `in_process` runs pytest's command in this process instead of a new interpreter: for a
    process that exists only for this run (a fleet's site, forked from its warm server)."""
    paths = ReportPaths.under(reports)
    reports.mkdir(parents=True, exist_ok=True)
    for stale in (reports / "junit.xml", reports / "summary.json"):
        stale.unlink(missing_ok=True)
    command = ["-m", "verify"]
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
    if in_process:
        pytest_exit = run_module("pytest", command)
    else:
        pytest_exit = subprocess.run(
            [sys.executable, "-m", "pytest", *command], check=False
        ).returncode
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
