"""`smartid`: the suite's one command.

    smartid setup [--plan] [--site PATH] [PYTEST_ARGS...]  apply the guide (pytest -m setup)
    smartid verify [--site PATH] [PYTEST_ARGS...]          sign off, read-only (pytest -m verify)
    smartid health [--site PATH] [PYTEST_ARGS...]          verify's quick subset (pytest -m health)
    smartid nightly [--site PATH] [--reports DIR] [PYTEST_ARGS...]
                                                           verify with its reports (make nightly)
    smartid fleet run SITE_OR_FOLDER... [-j N] [--timeout S] [--only NAME] [--reports DIR]
    smartid fleet merge DIR... [--reports DIR]               many sites, one overview (make fleet)
    smartid lab serve|reset|status|faults|fault|hermod-refresh [...]
                                                           the embedded lab (smartid-lab)

`-v` (anywhere) prints the command before running it and gives pytest its `-v`. `--site PATH`,
`--site=PATH`, `--lab-state DIR` and `--reports DIR` are taken from the folder smartid is started
in; every other argument goes to pytest as it is (after `--`, also what looks like smartid's own).

Each command runs in a subprocess, in the suite's folder (the checkout with pytest.ini and
setup_steps/ around the current folder, else the one this package is installed from), as the
README documents it: `python -m pytest -m setup ...`, `python -m smartid.report.nightly run ...`,
`python -m smartid.report.fleet ...`, `python -m smartid.lab ...`. A subprocess keeps pytest's
own process, options and exit code exactly those of the documented command, and keeps pytest
out of this package. The exit code is the subprocess's (pytest's: 0 passed, 1 failed, 2
interrupted, 3 internal error, 4 usage or site error, 5 nothing selected; 128 + N when a signal N
ended it).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Invocation", "SmartidUsageError", "find_suite", "invocation", "main"]

MARKERS = ("setup", "verify", "health")
COMMANDS = (*MARKERS, "nightly", "fleet", "lab")
# Options whose value is a path, taken from the folder smartid is started in.
_PYTEST_PATHS = ("--site", "--lab-state")
_NIGHTLY_PATHS = ("--site", "--reports", "--allure")
_LAB_PATHS = ("--state-dir",)
# Environment variables that name paths (fixtures/environment.py), also taken from there.
_PATH_VARIABLES = ("SMARTID_SITE", "SMARTID_LAB_STATE", "SMARTID_STATE", "SMARTID_REPORTS")


class SmartidUsageError(Exception):
    """A command line smartid cannot run, in one sentence."""


@dataclass(frozen=True)
class Invocation:
    """One subprocess: its arguments, its folder and what it changes in the environment."""

    command: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def shown(self) -> str:
        return f"cd {shlex.quote(str(self.cwd))} && {shlex.join(self.command)}"


def find_suite(start: Path) -> Path | None:
    """The suite's folder: the nearest one at or above `start` with pytest.ini and setup_steps/,
    else the checkout this package is installed from (an editable install)."""
    installed = Path(__file__).resolve().parents[2]
    for folder in (start, *start.parents, installed):
        if (folder / "pytest.ini").is_file() and (folder / "setup_steps").is_dir():
            return folder
    return None


def _absolute(value: str, here: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else here / path)


def _take_paths(args: list[str], names: Sequence[str], here: Path) -> tuple[list[str], list[str]]:
    """(`--name=ABSOLUTE` for each of `names` given as `--name VALUE` or `--name=VALUE`, the other
    arguments in their order)."""
    taken: list[str] = []
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        name, equals, value = arg.partition("=")
        if name in names and equals:
            if not value:
                raise SmartidUsageError(f"{name} needs a value: {name} PATH or {name}=PATH")
            taken.append(f"{name}={_absolute(value, here)}")
        elif arg in names:
            following = next(items, None)
            if following is None or following.startswith("-"):
                raise SmartidUsageError(f"{arg} needs a value: {arg} PATH or {arg}=PATH")
            taken.append(f"{arg}={_absolute(following, here)}")
        else:
            rest.append(arg)
    return taken, rest


def _environment(here: Path) -> dict[str, str]:
    return {
        name: _absolute(os.environ[name], here) for name in _PATH_VARIABLES if os.environ.get(name)
    }


def invocation(argv: Sequence[str], *, here: Path) -> tuple[Invocation | None, bool]:
    """What `smartid ARGV` runs (None: print the help) and whether to show it (`-v`)."""
    args = list(argv)
    split = args.index("--") if "--" in args else len(args)
    own, verbatim = args[:split], args[split + 1 :]
    verbose = any(arg in ("-v", "--verbose") for arg in own)
    own = [arg for arg in own if arg not in ("-v", "--verbose")]
    if not own or own[0] in ("-h", "--help"):
        return None, verbose
    if own[0] in (*MARKERS, "nightly") and any(arg in ("-h", "--help") for arg in own[1:]):
        return None, verbose  # pytest's own options: `python -m pytest --help`
    command, rest = own[0], own[1:]
    if command not in COMMANDS:
        raise SmartidUsageError(
            f"unknown command '{command}': choose one of {', '.join(COMMANDS)} (smartid --help)"
        )
    python = sys.executable
    env = _environment(here)
    if command == "lab":
        taken, rest = _take_paths(rest, _LAB_PATHS, here)
        lab_cwd = find_suite(here) or here
        lab = [python, "-m", "smartid.lab", *rest, *taken, *verbatim]
        return Invocation(lab, lab_cwd, env), verbose
    suite = find_suite(here)
    if suite is None:
        raise SmartidUsageError(
            f"no suite found: run smartid inside the suite's checkout (a folder with pytest.ini "
            f"and setup_steps/), not in {here}"
        )
    if command == "fleet":
        taken, rest = _take_paths(rest, ("--reports",), here)
        # The sites and reports folders named, as paths from the folder smartid started in.
        named = [
            _absolute(arg, here) if not arg.startswith("-") and (here / arg).exists() else arg
            for arg in rest
        ]
        fleet = [python, "-m", "smartid.report.fleet", *named, *taken]
        return Invocation([*fleet, *(["--", *verbatim] if verbatim else [])], suite, env), verbose
    if command == "nightly":
        taken, rest = _take_paths(rest, _NIGHTLY_PATHS, here)
        lab, rest = _take_paths(rest, ("--lab-state",), here)
        pytest_args = [*lab, *(["-v"] if verbose else []), *rest, *verbatim]
        runner = [python, "-m", "smartid.report.nightly", "run", *taken]
        if pytest_args:
            runner += ["--", *pytest_args]
        return Invocation(runner, suite, env), verbose
    taken, rest = _take_paths(rest, _PYTEST_PATHS, here)
    pytest = [python, "-m", "pytest", "-m", command, *taken, *(["-v"] if verbose else [])]
    return Invocation([*pytest, *rest, *verbatim], suite, env), verbose


def _run(call: Invocation) -> int:
    env = {**os.environ, **call.env}
    with subprocess.Popen(call.command, cwd=call.cwd, env=env) as process:
        while True:
            try:
                code = process.wait()
            except KeyboardInterrupt:
                continue  # the subprocess had the same Ctrl-C: it stops (and cleans up) itself
            return 128 - code if code < 0 else code


def main(argv: Sequence[str] | None = None) -> int:
    """The `smartid` console script."""
    try:
        try:
            call, verbose = invocation(sys.argv[1:] if argv is None else argv, here=Path.cwd())
        except SmartidUsageError as exc:
            print(f"smartid: {exc}", file=sys.stderr)
            return 4
        if call is None:
            print(__doc__)
            sys.stdout.flush()
            return 0
        if verbose:
            print(f"smartid: {call.shown()}", file=sys.stderr, flush=True)
        return _run(call)
    except BrokenPipeError:
        # Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
