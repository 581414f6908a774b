"""Helpers of the project's own tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests import warm

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_suite(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 300,
    cold: bool = False,
) -> Run:
    """Run the suite's pytest as a user would: `python -m pytest ARGS` in `cwd` with the test's
    environment (none of the suite's variables but `env`). By default the run is a child of the
    worker's fork server (tests/warm.py), which has the libraries imported already; `cold=True`
    (or SMARTID_TEST_COLD=1) starts a new interpreter."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    full_env.update(env or {})
    if cold or warm.COLD:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)
    with tempfile.TemporaryDirectory(prefix="smartid-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        child = warm.start("pytest", args, full_env, cwd, out, err)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
        return Run(code, _text(out), _text(err))


def _text(path: Path) -> str:
    # as subprocess.run(text=True) reads a child's output: universal newlines
    return path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Cost:
    seconds: float
    peak_bytes: int
    error: BaseException | None


def cost(action: Callable[[], object]) -> Cost:
    """Wall time and peak traced memory of `action`, and the exception it raised, if any. It
    runs twice: timed untraced (tracing slows Python code several times), then traced."""
    error: BaseException | None = None
    started = time.monotonic()
    try:
        action()
    except Exception as exc:
        error = exc
    seconds = time.monotonic() - started
    tracemalloc.start()
    with contextlib.suppress(Exception):  # the first run's error is the one reported
        action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return Cost(seconds, peak, error)
