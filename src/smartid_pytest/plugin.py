"""The suite's command-line options (`--site`, `--plan`, `--lab-state`), registered by an installed
plugin that pytest loads through its `pytest11` entry point, before it reads any conftest.py.

A conftest.py registers options only once pytest has found it, and pytest looks for it from the
paths on the command line: `--site ../other.toml` (with a space) would then be an unknown option
and its path a test path. Registered here, `--site PATH` is an option wherever pytest starts.

pytest still picks its root folder and its pytest.ini from the command line's paths before any
plugin loads, and it takes the PATH of `--site PATH` for one. Where that PATH is outside the folder
of the pytest.ini pytest would use anyway, the run stops with one sentence asking for
`--site=PATH` (or the `smartid` command, which always passes it so).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

__all__ = ["misread_site", "pytest_addoption", "pytest_load_initial_conftests"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smartid", "Smart ID suite")
    group.addoption(
        "--site",
        metavar="PATH",
        default=None,
        help="site file (default: $SMARTID_SITE, else sites/lab.toml)",
    )
    group.addoption(
        "--plan",
        action="store_true",
        default=False,
        help="setup: report what each step would change, change nothing",
    )
    group.addoption(
        "--lab-state",
        metavar="DIR",
        default=None,
        help="lab state directory (default: $SMARTID_LAB_STATE, else .lab/)",
    )


def _spaced_site(args: list[str]) -> str | None:
    """The PATH of a `--site PATH` (with a space) on the command line, if any."""
    for index, arg in enumerate(args[:-1]):
        if arg == "--":
            return None
        if arg == "--site":
            return args[index + 1]
    return None


def _marker(args: list[str]) -> str | None:
    for index, arg in enumerate(args[:-1]):
        if arg == "-m" and args[index + 1] in ("setup", "verify", "health"):
            return args[index + 1]
    return None


def misread_site(args: list[str], *, here: Path, inipath: Path | None) -> str | None:
    """Why pytest's root folder cannot be trusted for these arguments, as one sentence; None when
    it can. `inipath` is the pytest.ini pytest chose, `here` where it was started."""
    value = _spaced_site(args)
    if value is None:
        return None
    site = Path(value).expanduser()
    site = site if site.is_absolute() else here / site
    if not site.exists():
        return None  # pytest ignores a path that does not exist; the site check names it
    if inipath is not None:
        project = inipath.parent.resolve()
        if here.resolve().is_relative_to(project) and site.resolve().is_relative_to(project):
            return None
    command = _marker(args) or "verify"
    return (
        f"pytest took the site file of '--site {value}' for a test path and chose its root folder "
        f"from it, so write '--site={shlex.quote(value)}' with '=' "
        f"(or run 'smartid {command} --site {shlex.quote(value)}', which does)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    problem = misread_site(
        args, here=early_config.invocation_params.dir, inipath=early_config.inipath
    )
    if problem is not None:
        raise pytest.UsageError(problem)
