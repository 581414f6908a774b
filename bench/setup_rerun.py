"""Benchmark: a second (no-change) `pytest -m setup` run against the first, in one run.

Both runs go against the same freshly reset lab, started once beforehand so that neither run
pays for the lab's start-up; the ratio is what idempotence costs compared with doing the work.

    .venv/bin/python bench/setup_rerun.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import run_suite  # noqa: E402
from tests.lab import new_state, running_lab  # noqa: E402


def _setup(env: dict[str, str]) -> float:
    started = time.perf_counter()
    run = run_suite("-m", "setup", "-q", env=env)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"setup failed:\n{run.output}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    firsts, seconds = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            state = new_state(Path(folder) / "lab")
            env = {
                "SMARTID_LAB_STATE": str(state.path),
                "SMARTID_STATE": f"{folder}/state",
                "SMARTID_REPORTS": f"{folder}/reports",
            }
            with running_lab(state):
                firsts.append(_setup(env))
                seconds.append(_setup(env))
    first, second = statistics.median(firsts), statistics.median(seconds)
    print(f"{'run':<28}{'median s':>10}")
    print(f"{'first (factory lab)':<28}{first:>10.2f}")
    print(f"{'second (no change)':<28}{second:>10.2f}")
    print(f"ratio second / first: {second / first:.2f}  (n={args.repeat})")


if __name__ == "__main__":
    main()
