"""`python -m MODULE ARGS` without paying the interpreter's start each time (docs/fleet.md).

A short verify spends most of its time starting: Python, pytest, requests, cryptography, pydantic
and the suite's library take about 0.7 s of CPU to import. A fleet that starts one verify per site
pays that per site. A fork server (multiprocessing's "forkserver" context) imports those modules
once; each run is a child forked from that pristine server, never from the caller, so no run sees
what another one (or the caller) did. The child does what `python -m` does: it changes to the
working folder, takes the environment it is given (and only that), points its file descriptors 1
and 2 at the run's files, and runs the module as `__main__` with runpy; its exit status is the
module's `SystemExit` code. With `new_session` it leads a process group of its own, so one signal
stops it and whatever it started.

pytest runs as a command here, as `python -m pytest` would, never as a library. The suite's
fixture plugins (`fixtures/`, SUITE_PLUGINS) and its verify checks (`checks/`, SUITE_CHECKS) are
preloaded too when the server's working folder is the suite's: they say PYTEST_DONT_REWRITE, so
a run that finds them imported uses them as a new interpreter would have imported them (pytest's
collection takes a test module it finds imported from the same file). Without that, a verify's
pytest parses, rewrites and compiles every check module again wherever the environment sets
PYTHONDONTWRITEBYTECODE (about 8 % of a fleet site's run). A child that works in another folder
forgets them first, so that its pytest imports that folder's own. The root conftest (which
pytest always imports afresh) and `setup_steps/` (whose asserts are its steps' verdicts) are
imported by each run's own pytest, with its assertion rewriting. Where the platform has no fork
server (`available()` is false), callers start real subprocesses.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import runpy
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path
from typing import Any

__all__ = ["SUITE_CHECKS", "SUITE_PLUGINS", "SUITE_PRELOAD", "ForkRunner", "Run", "available"]

# What a verify imports before its first check, all of them libraries that read nothing from the
# environment or the working folder when imported. pytest plugins loaded through entry points
# (allure-pytest, pytest-order, the suite's own) are not here: pytest rewrites their asserts on
# import and refuses a plugin that is imported already (a warning; an error under
# filterwarnings=error). The smartid package says PYTEST_DONT_REWRITE for the same reason.
SUITE_PRELOAD = (
    "pytest",
    # pytest's own plugins that `import pytest` leaves to each run's configuration (its
    # `default_plugins`; pytest never rewrites its own modules): about 0.02 s.
    "_pytest.faulthandler",
    "_pytest.helpconfig",
    "_pytest.junitxml",
    "_pytest.pastebin",
    "_pytest.setuponly",
    "_pytest.setupplan",
    "_pytest.skipping",
    "_pytest.stepwise",
    "_pytest.threadexception",
    "_pytest.unittest",
    "_pytest.unraisableexception",
    "_pytest.warnings",
    # What allure-pytest, pytest-xdist, pytest-order and pytest's own plugins import when a run
    # loads them: the plugins themselves are each run's, these libraries they use are not
    # (about 0.1 s).
    "attr",
    "allure_commons._allure",
    "allure_commons.lifecycle",
    "allure_commons.logger",
    "allure_commons.model2",
    "allure_commons.reporter",
    "allure_commons.utils",
    "execnet",
    "packaging.version",
    "pdb",
    "unittest",
    "requests",
    "cryptography.x509",
    "cryptography.x509.ocsp",
    "pydantic",
    "ruamel.yaml",
    "smartid.site",
    "smartid.deployment",
    "smartid.verify",
    "smartid.verify.drift",
    "smartid.tls",
    "smartid.idm",
    "smartid.idm.manifest",
    "smartid.idm.signature",
    "smartid.hermod",
    "smartid.cm",
    "smartid.plan",
    "smartid.report.nightly",
)
# The fixture plugins of the suite, in the order the root conftest registers them
# (`pytest_plugins` is built from this), imported from the fork server's working folder; a
# folder without them (a fleet started elsewhere) preloads nothing of these.
SUITE_PLUGINS = (
    "fixtures.site",
    "fixtures.selection",
    "fixtures.lab",
    "fixtures.clients",
    "fixtures.outcomes",
    "fixtures.steps",
    "fixtures.reporting",
    "fixtures.checks",
    "fixtures.waivers",
)


# The verify checks of the suite (every module of `checks/`), preloaded as SUITE_PLUGINS are.
SUITE_CHECKS = (
    "checks",
    "checks.test_authentication",
    "checks.test_configuration",
    "checks.test_connections",
    "checks.test_drift",
    "checks.test_export",
    "checks.test_tls",
)
# The packages of SUITE_PLUGINS and SUITE_CHECKS: a child in another working folder forgets them.
_SUITE_PACKAGES = ("fixtures", "checks")


def available() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()


def _exit_status(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def _forget_pytest_plugins() -> None:
    # A preloaded library may have imported a pytest plugin's package (FastAPI imports anyio);
    # pytest marks every installed plugin for assert rewriting, blocked or not, and refuses one
    # found imported already. The run imports its own copy if it needs one.
    from importlib.metadata import entry_points

    names = {point.value.split(".")[0].split(":")[0] for point in entry_points(group="pytest11")}
    for loaded in list(sys.modules):
        if loaded.split(".")[0] in names:
            del sys.modules[loaded]


def _forget_foreign_plugins(cwd: str) -> None:
    """Forget the preloaded fixture plugins and checks unless they are this working folder's
    own."""
    for name in _SUITE_PACKAGES:
        package = sys.modules.get(name)
        where = getattr(package, "__file__", None)
        if where is None or Path(where).parent.parent == Path(cwd).resolve():
            continue
        for loaded in list(sys.modules):
            if loaded == name or loaded.startswith(f"{name}."):
                del sys.modules[loaded]


def run_module(module: str, args: Sequence[str]) -> int:
    """`python -m module args` in this process; its exit status (never raises)."""
    saved = sys.argv
    sys.argv = [module, *args]
    if module == "pytest":
        _forget_pytest_plugins()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return _exit_status(exit_)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved
    return 0


def _name_process(name: str) -> None:
    """What `ps` and `top` call this child (every child of the server has the server's command
    line): the module or function it runs, as far as Linux's 15 characters go."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name.rsplit(".", 1)[-1][:15] or "python")


def _child(
    target: Callable[..., int] | str,
    args: Sequence[Any],
    env: Mapping[str, str],
    cwd: str,
    out: str,
    err: str,
    new_session: bool,
) -> None:
    if new_session:
        os.setsid()
    _name_process(target if isinstance(target, str) else target.__name__)
    os.chdir(cwd)
    _forget_foreign_plugins(cwd)
    os.environ.clear()
    os.environ.update(env)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    first = os.open(out, flags, 0o600)
    second = first if err == out else os.open(err, flags, 0o600)
    os.dup2(first, 1)
    os.dup2(second, 2)
    for fd in {first, second}:
        os.close(fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the process's stdin until it exits
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    code = 1
    try:
        code = run_module(target, args) if isinstance(target, str) else target(*args)
    except SystemExit as exit_:
        code = _exit_status(exit_)
    except BaseException:
        traceback.print_exc()
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)


class Run:
    """A running child: `subprocess.Popen`'s poll, wait, send_signal and kill."""

    def __init__(self, process: ForkServerProcess, name: str) -> None:
        self.process = process
        self.name = name
        assert process.pid is not None
        self.pid: int = process.pid

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        """The exit status (negative: the signal that ended it), as `Popen.wait` gives it;
        `subprocess.TimeoutExpired` if it is still running after `timeout` seconds."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired([self.name], timeout or 0)
        return self.process.exitcode

    def send_signal(self, signal: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, signal)

    def kill(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join()


class ForkRunner:
    """A fork server that has imported `preload`, started on first use. multiprocessing keeps
    one fork server per process: the first runner to start it decides what it preloads."""

    def __init__(
        self, preload: Sequence[str] = SUITE_PRELOAD + SUITE_PLUGINS + SUITE_CHECKS
    ) -> None:
        self.preload = list(preload)
        self._context: ForkServerContext | None = None

    def _server(self) -> ForkServerContext:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(self.preload)
            self._context = context
        return self._context

    def start(
        self,
        target: str | Callable[..., int],
        args: Sequence[Any],
        *,
        env: Mapping[str, str],
        cwd: Path,
        out: Path,
        err: Path | None = None,
        new_session: bool = False,
    ) -> Run:
        """Run `target` (a module name, as `python -m` runs it, or a module-level function whose
        return value is the exit status) with `args` in a child; its output in `out` (and `err`,
        else `out` too)."""
        error = out if err is None else err
        process = self._server().Process(
            target=_child,
            args=(target, list(args), dict(env), str(cwd), str(out), str(error), new_session),
        )
        process.start()
        name = target if isinstance(target, str) else target.__qualname__
        return Run(process, name)
