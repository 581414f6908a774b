"""Many sites at once: the nightly verify of each site in its own process, and one overview
(docs/fleet.md).

    python -m smartid.report.fleet run SITE_OR_FOLDER... [-j N] [--timeout S] [--only NAME]
                                        [--setup | --plan] [--cold] [--reports DIR]
                                        [-- PYTEST_ARGS...]
    python -m smartid.report.fleet merge DIR... [--reports DIR]

Each site's run is forked from one warm server that has the suite's libraries imported
(smartid.forkrun), and every report is rendered by one Allure worker (smartid.report.allure_worker)
instead of an `allure generate` per site; `--cold` starts each site as a new interpreter instead.

`run --setup` sets each site up (`python -m pytest -m setup`), `run --plan` plans it (`--plan`:
a plan.json per site and one `reports/fleet-plan.json`); otherwise `run` starts
`python -m smartid.report.nightly run` for each site file (a folder stands for its
`*.toml` files), at most N at a time (default: the number of cores), each bounded by `--timeout`
seconds (default 900) and each writing its own reports folder, `reports/sites/<name>/` (its
summary, JUnit, HTML report and trend history), and its own output log there (`nightly.log`).
A site's unusable file (exit 4), crash or timeout never stops the others: it is a row of the
fleet's result with its one sentence. Then `merge` runs over those folders.

`merge` reads sites' reports folders, made here or by other machines (a CI matrix job per site),
and writes `reports/fleet.json` (one entry per site: name, target, verdict, exit code, duration,
counts by status, failed and waived check ids with one line each) and `reports/fleet-junit.xml`
(every site's JUnit suites, each named after its site). The terminal ends with one line per site.

The fleet's exit code is the worst site's, with the nightly's meanings: 4 (a site's file or setup
is unusable) over 3 (internal error) over 2 (interrupted, or the site did not finish in time)
over 1 (a blocker or critical check failed) over 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET

from smartid import forkrun
from smartid.forkrun import ForkRunner, Run
from smartid.masking import MASKER
from smartid.report import allure_worker, nightly
from smartid.report.html import ReportError, ReportPaths, allure_binary, render
from smartid.report.signoff import FleetLine, fleet_page

__all__ = ["FleetSite", "SiteRow", "find_sites", "main", "merge", "run", "worst"]

# Worst first: the fleet's exit code is the first of these that any site has.
_SEVERITY_OF_EXIT = (4, 3, 2, 1, 0)
DEFAULT_TIMEOUT = 900.0
_SITES = "sites"


@dataclass(frozen=True)
class FleetSite:
    """One site of the fleet: its file and the name its reports folder takes."""

    name: str
    path: Path


@dataclass(frozen=True)
class SiteRow:
    """How one site's run ended, as `fleet.json` holds it."""

    name: str
    exit: int
    verdict: str
    target: str | None = None
    duration_seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    waived: list[dict[str, str]] = field(default_factory=list)
    reports: str | None = None

    def line(self) -> str:
        took = f", {self.duration_seconds:.1f} s" if self.duration_seconds is not None else ""
        return f"{self.name}: exit {self.exit}: {self.verdict}{took}"


def _site_name(path: Path) -> str:
    """The site's `name` where its file can be read, else the file's stem (the suite's own
    default); an unreadable file is the site's run to report, not the fleet's."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return path.stem
    name = data.get("name")
    return name if isinstance(name, str) and name and "/" not in name else path.stem


def find_sites(arguments: Sequence[str | Path]) -> list[FleetSite]:
    """Each site file named, each `*.toml` of a folder named, in name order; two files with one
    site name are a usage error (their reports would mix)."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files += sorted(path.glob("*.toml"))
        else:
            files.append(path)
    sites = [FleetSite(_site_name(p), p.resolve()) for p in files]
    seen: dict[str, Path] = {}
    for site in sites:
        if site.name in seen:
            raise ValueError(
                f"sites {seen[site.name]} and {site.path} are both named '{site.name}': "
                "give one of them another `name`"
            )
        seen[site.name] = site.path
    return sites


def worst(codes: Sequence[int]) -> int:
    for code in _SEVERITY_OF_EXIT:
        if code in codes:
            return code
    return max(codes, default=0)


Mode = str  # "verify" (the nightly), "setup" or "plan" (setup --plan)
MODES = ("verify", "setup", "plan")
LOGS = {"verify": "nightly.log", "setup": "setup.log", "plan": "plan.log"}


def _pytest_args(site: FleetSite, mode: Mode, pytest_args: Sequence[str]) -> list[str]:
    """The setup's (or plan's) pytest arguments."""
    plan = ["--plan"] if mode == "plan" else []
    return ["-m", "setup", f"--site={site.path}", *plan, *pytest_args]


def _command(site: FleetSite, folder: Path, mode: Mode, pytest_args: Sequence[str]) -> list[str]:
    """The site's run as a new interpreter (`--cold`)."""
    if mode == "verify":
        command = [sys.executable, "-m", "smartid.report.nightly", "run"]
        command += [f"--site={site.path}", f"--reports={folder}"]
        return [*command, "--", *pytest_args] if pytest_args else command
    return [sys.executable, "-m", "pytest", *_pytest_args(site, mode, pytest_args)]


def _nightly(site: str, folder: str, pytest_args: list[str]) -> int:
    """A site's nightly in a child of the fleet's fork server: pytest in that same child."""
    return nightly.run(Path(folder), site=site, pytest_args=pytest_args, in_process=True)


_RUNNER = ForkRunner()


def _start(
    site: FleetSite,
    folder: Path,
    mode: Mode,
    pytest_args: Sequence[str],
    log: Path,
    cold: bool,
    extra_env: dict[str, str],
) -> subprocess.Popen[bytes] | Run:
    """The site's run in a process group of its own, its output in `log`: forked from the
    fleet's warm server (smartid.forkrun), else (`cold`, or no fork server here) a new
    interpreter."""
    # Setup writes its Allure results and plan.json under $SMARTID_REPORTS: the site's folder.
    env = {**os.environ, **extra_env, "SMARTID_REPORTS": str(folder)}
    if cold or not forkrun.available():
        with log.open("wb") as out:
            return subprocess.Popen(
                _command(site, folder, mode, pytest_args),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
    if mode == "verify":
        target: str | Callable[..., int] = _nightly
        args: list[Any] = [str(site.path), str(folder), list(pytest_args)]
    else:
        target, args = "pytest", _pytest_args(site, mode, pytest_args)
    return _RUNNER.start(target, args, env=env, cwd=Path.cwd(), out=log, new_session=True)


def _run_site(
    site: FleetSite,
    reports: Path,
    timeout: float,
    pytest_args: Sequence[str],
    mode: Mode = "verify",
    cold: bool = False,
    extra_env: dict[str, str] | None = None,
) -> tuple[int, str | None]:
    """The site's nightly (or setup, or plan) in its own process group, its output in its
    folder's log; (exit code, why it did not finish)."""
    folder = reports / _SITES / site.name
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / LOGS[mode]
    process = _start(site, folder, mode, pytest_args, log, cold, extra_env or {})
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return 2, f"did not finish within {timeout:g} s and was stopped"
    # A run ended by a signal is not the site's verdict: an internal error (3).
    return (code if code >= 0 else 3), None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _log_lines(path: Path) -> list[str]:
    """A site's run log, newest line first; nothing when it is missing."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[::-1]
    except OSError:
        return []


def _one(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _site_error(lines: list[str]) -> str | None:
    """What pytest printed about an unusable site: its `ERROR:` lines, one problem each."""
    errors = [line.removeprefix("ERROR: ") for line in lines[::-1] if line.startswith("ERROR: ")]
    return _one("; ".join(errors), 500) if errors else None


def _last_line(lines: list[str]) -> str | None:
    return next((_one(line) for line in lines if line.strip()), None)


def _pytest_line(lines: list[str]) -> str | None:
    """pytest's last line ("22 passed, 40 deselected in 1.19s"), or the plan's count."""
    texts = [line.strip("= ").strip() for line in lines]
    planned = [text for text in texts if "pending changes, written to" in text]
    summary = [text for text in texts if re.search(r"\bin [\d.]+s\b", text)]
    found = planned or summary
    return _one(found[0]) if found else None


def site_row(
    name: str,
    folder: Path,
    *,
    exit_code: int | None = None,
    why: str | None = None,
    mode: Mode = "verify",
) -> SiteRow:
    """The row of a site from its reports folder: its summary.json where it has one; else the
    exit code and the line that says most (a site error names its file in it)."""
    summary = _read_json(folder / "summary.json") if mode == "verify" else None
    log = _log_lines(folder / LOGS[mode])
    if summary is None or why is not None:
        code = exit_code if exit_code is not None else 3
        said = _site_error(log) if code == 4 else _pytest_line(log)
        verdict = why or said or _last_line(log) or "the run left no summary"
        return SiteRow(name, code, MASKER.mask(verdict), reports=str(folder))
    counts = summary.get("counts") or {}
    code = int(summary.get("exit", exit_code if exit_code is not None else 3))
    verdict = str(summary.get("verdict", ""))
    if code == 4:
        verdict = _site_error(log) or verdict
    return SiteRow(
        name=str(summary.get("site") or name),
        exit=code,
        verdict=MASKER.mask(verdict),
        target=summary.get("target"),
        duration_seconds=summary.get("duration_seconds"),
        counts={str(k): int(v) for k, v in counts.items()},
        failed=[
            {"id": str(f.get("id")), "line": str(f.get("reason", ""))}
            for f in summary.get("failed", [])
        ],
        waived=[
            {"id": str(w.get("id")), "line": str(w.get("reason", ""))}
            for w in summary.get("waived", [])
        ],
        reports=str(folder),
    )


def _merged_junit(folders: Sequence[tuple[str, Path]], target: Path) -> Path:
    suites = ET.Element("testsuites")
    for name, folder in folders:
        path = folder / "junit.xml"
        if not path.is_file():
            continue
        try:
            root = SafeET.parse(path).getroot()
        except (SafeET.ParseError, OSError):
            continue
        if root is None:
            continue
        for suite in [root] if root.tag == "testsuite" else list(root.iter("testsuite")):
            suite.set("name", f"{name}: {suite.get('name', 'pytest')}")
            for case in suite.iter("testcase"):
                case.set("classname", f"{name}.{case.get('classname', '')}")
            suites.append(suite)
    target.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(target, encoding="utf-8", xml_declaration=True)
    return target


# What a site's results folder holds about its own run only: not merged into the fleet's.
_RUN_FILES = frozenset({"environment.properties", "smartid-run.json", "executor.json"})


def fleet_report(
    named: Sequence[tuple[str, Path]],
    rows: Sequence[SiteRow],
    code: int,
    reports: Path,
    *,
    allure: Path | str | None = None,
    worker: str | None = None,
) -> Path:
    """One Allure Report 3 HTML of every site's results, the sites as environments, under
    `reports/fleet/html/`, with a first page of one row per site."""
    folder = reports / "fleet"
    paths = ReportPaths(
        results=folder / "allure-results",
        html=folder / "html",
        history=folder / "history.jsonl",
        config=folder / "allurerc.json",
    )
    shutil.rmtree(paths.results, ignore_errors=True)
    paths.results.mkdir(parents=True)
    # The sites whose run finished with results; a stopped run's partial results stay in its
    # own folder.
    finished = {row.name for row in rows if row.counts.get("total")}
    for name, site_folder in named:
        if name not in finished:
            continue
        for path in sorted((site_folder / "allure-results").glob("*")):
            if path.is_file() and path.name not in _RUN_FILES:
                _link_or_copy(path, paths.results / path.name)
    lines = [
        FleetLine(
            row.name,
            row.exit,
            row.verdict,
            ", ".join(f"{n} {status}" for status, n in sorted(row.counts.items())),
            _site_page(folder / "html", site_folder),
        )
        for row, (_, site_folder) in zip(rows, named, strict=True)
    ]
    title = f"Smart ID fleet: {len(rows)} site(s)"
    page = fleet_page(title, code, lines, paths.allure_href)
    sites = [row.name for row in rows if row.name in finished]
    return render(
        paths,
        name=title,
        allure=allure_binary(allure),
        first_page=page,
        environments=sites,
        worker=worker,
    )


def _link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (a site's result file, never changed once written:
    its next run writes new files under new names), else a copy where the file system cannot
    link. 64 sites hold about 17,000 result files; a copy costs 0.4 ms each, a link 0.03."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _site_page(fleet_html: Path, site_folder: Path) -> str | None:
    page = site_folder / "html" / "index.html"
    if not page.is_file():
        return None
    return os.path.relpath(page, fleet_html)


def _folder_site(folder: Path) -> str:
    summary = _read_json(folder / "summary.json") or {}
    site = summary.get("site")
    return site if isinstance(site, str) and site else folder.name


def _fleet_plan(named: Sequence[tuple[str, Path]], rows: Sequence[SiteRow], target: Path) -> None:
    """One plan of the fleet: each site's plan.json (pending changes, manual steps) in a row."""
    sites = []
    for (_, folder), row in zip(named, rows, strict=True):
        plan = _read_json(folder / "plan.json") or {}
        sites.append(
            {
                "name": row.name,
                "exit": row.exit,
                "verdict": row.verdict,
                "pending": plan.get("pending"),
                "changes": plan.get("changes", []),
                "manual": plan.get("manual", []),
            }
        )
    document = {"pending": sum(s["pending"] or 0 for s in sites), "sites": sites}
    target.write_text(MASKER.mask(json.dumps(document, indent=2)) + "\n", encoding="utf-8")


def merge(
    folders: Sequence[Path],
    reports: Path,
    *,
    outcomes: dict[str, tuple[int, str | None]] | None = None,
    render_report: bool = True,
    allure: Path | str | None = None,
    mode: Mode = "verify",
    worker: str | None = None,
) -> tuple[int, list[SiteRow]]:
    """fleet.json, the merged JUnit and the fleet's report from sites' reports folders (a
    folder's name is its site's name); the fleet's exit code and its rows."""
    # A folder is named by the site its summary names (a CI artifact's folder may be named
    # otherwise), else by itself.
    named = [(_folder_site(folder), folder) for folder in folders]
    rows = []
    for (name, folder), original in zip(named, folders, strict=True):
        code, why = (outcomes or {}).get(original.name, (None, None))
        rows.append(site_row(name, folder, exit_code=code, why=why, mode=mode))
    code = worst([row.exit for row in rows])
    reports.mkdir(parents=True, exist_ok=True)
    fleet = {
        "exit": code,
        "sites": [asdict(row) for row in rows],
        "counts": {
            "sites": len(rows),
            **{str(c): sum(1 for r in rows if r.exit == c) for c in sorted({r.exit for r in rows})},
        },
    }
    (reports / "fleet.json").write_text(
        MASKER.mask(json.dumps(fleet, indent=2)) + "\n", encoding="utf-8"
    )
    _merged_junit(named, reports / "fleet-junit.xml")
    if mode == "plan":
        _fleet_plan(named, rows, reports / "fleet-plan.json")
    if render_report and mode == "verify":
        try:
            index = fleet_report(named, rows, code, reports, allure=allure, worker=worker)
            print(f"Fleet report: {index}")
        except ReportError as exc:
            print(f"Fleet report: not written: {exc}", file=sys.stderr)
            code = worst([code, 3])
    return code, rows


def run(
    sites: Sequence[FleetSite],
    reports: Path,
    *,
    jobs: int,
    timeout: float = DEFAULT_TIMEOUT,
    pytest_args: Sequence[str] = (),
    mode: Mode = "verify",
    cold: bool = False,
) -> tuple[int, list[SiteRow]]:
    """Each site's nightly (or setup, or plan), at most `jobs` at a time; then `merge` over
    their folders. `cold` starts each site as a new interpreter instead of forking it from the
    fleet's warm server."""
    outcomes: dict[str, tuple[int, str | None]] = {}
    with contextlib.ExitStack() as stack:
        address = None
        if mode == "verify" and not cold:
            address = _worker(stack, reports)
        extra = {allure_worker.ENV: address} if address else {}

        def one(site: FleetSite) -> None:
            began = time.monotonic()
            outcomes[site.name] = _run_site(site, reports, timeout, pytest_args, mode, cold, extra)
            took = time.monotonic() - began
            print(f"fleet: {site.name}: exit {outcomes[site.name][0]} ({took:.1f} s)", flush=True)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, sites))
        folders = [reports / _SITES / site.name for site in sites]
        return merge(folders, reports, outcomes=outcomes, mode=mode, worker=address)


def _worker(stack: contextlib.ExitStack, reports: Path) -> str | None:
    """The address of one Allure worker for every report of this run; None where it cannot
    start (each report is then made by `allure generate`)."""
    try:
        allure = allure_binary()
    except ReportError:
        return None  # each site's run says so in its own words
    worker = stack.enter_context(allure_worker.Worker(allure, reports / "fleet" / "allure.log"))
    return worker.start()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m smartid.report.fleet", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="verify each site, then merge")
    go.add_argument("sites", nargs="+", metavar="SITE_OR_FOLDER")
    go.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N")
    go.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S")
    go.add_argument("--only", default=None, metavar="NAME", help="run only the site named NAME")
    how = go.add_mutually_exclusive_group()
    how.add_argument("--setup", action="store_true", help="set each site up (pytest -m setup)")
    how.add_argument("--plan", action="store_true", help="plan each site's setup (--plan)")
    go.add_argument(
        "--cold",
        action="store_true",
        help="start each site as a new interpreter (default: fork it from a warm server)",
    )
    together = commands.add_parser("merge", help="fleet.json and JUnit from reports folders")
    together.add_argument("folders", nargs="+", type=Path, metavar="DIR")
    for sub in (go, together):
        sub.add_argument(
            "--reports",
            type=Path,
            default=Path(os.environ.get("SMARTID_REPORTS") or "reports"),
            metavar="DIR",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    split = args_in.index("--") if "--" in args_in else len(args_in)
    args = _parser().parse_args(args_in[:split])
    pytest_args = args_in[split + 1 :]
    reports = args.reports.resolve()
    if args.command == "merge":
        code, rows = merge([f.resolve() for f in args.folders], reports)
    else:
        try:
            sites = find_sites(args.sites)
        except ValueError as exc:
            print(f"fleet: {exc}", file=sys.stderr)
            return 4
        if args.only is not None:
            sites = [s for s in sites if s.name == args.only]
            if not sites:
                print(f"fleet: no site is named '{args.only}'", file=sys.stderr)
                return 4
        mode = "plan" if args.plan else "setup" if args.setup else "verify"
        code, rows = run(
            sites,
            reports,
            jobs=args.jobs,
            timeout=args.timeout,
            pytest_args=pytest_args,
            mode=mode,
            cold=args.cold,
        )
    print(f"Smart ID fleet: {len(rows)} site(s), exit {code}")
    for row in rows:
        print(f"  {row.line()}")
    print(f"Fleet: {reports / 'fleet.json'} (JUnit: {reports / 'fleet-junit.xml'})")
    return code


if __name__ == "__main__":
    sys.exit(main())
