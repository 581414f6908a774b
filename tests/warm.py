"""`python -m MODULE ARGS` without paying the interpreter's start each time.

Most of what a short suite run costs is its start: Python, pytest, allure-pytest, requests,
cryptography, pydantic and the suite's library modules take about 0.7 s of CPU to import, and the
project's tests start the suite and the lab hundreds of times. A fork server (multiprocessing's
"forkserver" context) imports those modules once per test worker; each run is a child forked from
that pristine process, so no run sees what another one did. The child does what `python -m` does:
it changes to the working folder, takes the environment it is given (and only that), points its
file descriptors 1 and 2 at the run's files, and runs the module as `__main__` with runpy; its exit
status is the module's `SystemExit` code.

What is not shared: the suite's conftest, `fixtures/`, `checks/` and `setup_steps/` are imported by
each run's own pytest (so its assertion rewriting applies), and nothing is preloaded from them.
`SMARTID_TEST_COLD=1` makes every run a real `python -m` subprocess, to compare.
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
from collections.abc import Sequence
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path

# Imported once by the fork server; all of them are libraries that read nothing from the
# environment or the working folder when imported. pytest plugins loaded through entry points
# (allure-pytest, pytest-order, xdist) are not here: pytest rewrites their asserts on import and
# refuses (a warning, an error under filterwarnings=error) a plugin that is imported already.
PRELOAD = [
    "pytest",
    "_pytest.pytester",
    "allure_commons",
    "requests",
    "cryptography.x509",
    "cryptography.x509.ocsp",
    "pydantic",
    "ruamel.yaml",
    "smartid.site",
    "smartid.deployment",
    "smartid.verify",
    "smartid.tls",
    "smartid.idm",
    "smartid.hermod",
    "smartid.cm",
    "smartid.plan",
    "smartid.report.nightly",
    "smartid.lab.cli",
    "smartid.lab.server",
    "smartid.lab.state",
    "smartid.lab.factory",
    "smartid.lab.faults",
    "fastapi",
    "uvicorn",
]

COLD = os.environ.get("SMARTID_TEST_COLD", "") not in ("", "0")

_context: ForkServerContext | None = None


def _server() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


def _child(module: str, args: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the process's stdin until it exits
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.argv = [module, *args]
    if module == "pytest":
        _forget_pytest_plugins()
    code: int = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)


def _forget_pytest_plugins() -> None:
    # A library the fork server imported may have imported a pytest plugin's package (FastAPI
    # imports anyio); pytest marks every installed plugin for assert rewriting, blocked or not,
    # and refuses one found imported already. This run imports its own copy if it needs one.
    # (The smartid package, also marked as part of the plugin's distribution, says
    # PYTEST_DONT_REWRITE in its docstring, so it stays imported.)
    from importlib.metadata import entry_points

    names = {point.value.split(".")[0].split(":")[0] for point in entry_points(group="pytest11")}
    for loaded in list(sys.modules):
        if loaded.split(".")[0] in names:
            del sys.modules[loaded]


class Run:
    """A running `python -m MODULE`: its process, and the files its output goes to."""

    def __init__(
        self, module: str, args: Sequence[str], env: dict[str, str], cwd: Path, out: Path, err: Path
    ) -> None:
        self.module = module
        self.out = out
        self.err = err
        process = _server().Process(
            target=_child, args=(module, list(args), dict(env), str(cwd), str(out), str(err))
        )
        process.start()
        self.process: ForkServerProcess = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        """The exit status, as `subprocess.Popen.wait` gives it (TimeoutExpired if running)."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(["python", "-m", self.module], timeout or 0)
        return self.process.exitcode

    def send_signal(self, signal: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, signal)

    def kill(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join()
