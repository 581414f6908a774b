"""Helpers of the project's own tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 300
) -> Run:
    """Run the suite's pytest in a subprocess, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    full_env.update(env or {})
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


@dataclass(frozen=True)
class Cost:
    seconds: float
    peak_bytes: int
    error: BaseException | None


def cost(action: Callable[[], object]) -> Cost:
    """Wall time and peak traced memory of `action`, and the exception it raised, if any."""
    tracemalloc.start()
    started = time.monotonic()
    error: BaseException | None = None
    try:
        action()
    except Exception as exc:
        error = exc
    seconds = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return Cost(seconds, peak, error)
