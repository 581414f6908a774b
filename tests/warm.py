"""`python -m MODULE ARGS` for the project's tests, from a fork server per test worker
(smartid.forkrun): the tests start the suite and the lab hundreds of times, and each start would
otherwise pay Python's, pytest's and the libraries' imports (about 0.7 s of CPU).

The tests' server preloads what the suite's fleet preloads, plus pytester and the lab (FastAPI,
uvicorn). `SMARTID_TEST_COLD=1` makes every run a real `python -m` subprocess, to compare.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from smartid.forkrun import SUITE_CHECKS, SUITE_PLUGINS, SUITE_PRELOAD, ForkRunner
from smartid.forkrun import Run as Run

COLD = os.environ.get("SMARTID_TEST_COLD", "") not in ("", "0")

_RUNNER = ForkRunner(
    [
        *SUITE_PRELOAD,
        *SUITE_PLUGINS,
        *SUITE_CHECKS,
        "_pytest.pytester",
        "smartid.lab.cli",
        "smartid.lab.server",
        "smartid.lab.state",
        "smartid.lab.factory",
        "smartid.lab.faults",
        "fastapi",
        "uvicorn",
    ]
)


def start(
    module: str, args: Sequence[str], env: dict[str, str], cwd: Path, out: Path, err: Path
) -> Run:
    """A running `python -m module args` in `cwd` with exactly `env`, its output in the files."""
    return _RUNNER.start(module, args, env=env, cwd=cwd, out=out, err=err)
