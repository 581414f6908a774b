"""What a whole verify run costs, as a ratio in one run (bench/README.md): `pytest -m verify`
against a running lab that the suite's setup has configured, divided by a pytest run of as many
trivial tests with allure-pytest writing results (`--alluredir`). Both are started the same way, so
both pay for Python, pytest and Allure; the ratio is what the checks themselves add. Goal: <= 2.
Each is measured twice: as a new interpreter (a single nightly) and forked from a warm server that
has the libraries imported (smartid.forkrun, as a fleet runs its sites).

It also prints the TLS verdict of each lab endpoint (one observation and judgement each).

    python bench/verify_cost.py [--repeat 5] [--bytecode-cache]

`--bytecode-cache` lets the subprocesses keep compiled modules (and pytest's rewritten test
modules) as a user's machine does, where the environment sets PYTHONDONTWRITEBYTECODE; without it
every run compiles the suite's modules again, which costs the suite more than the trivial run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from smartid.lab.state import LabState
from smartid.site import TlsPolicy
from smartid.tls import ProbeTarget, judge_all, observe_many

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import run_suite  # noqa: E402
from tests.lab import new_state, running_lab  # noqa: E402

# The framework alone: pytest and allure-pytest, with the suite's own pytest.ini switches (no
# cache provider, no anyio plugin, which FastAPI's anyio brings into the environment).
_TRIVIAL_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:anyio"]


def _pytest(
    args: Sequence[str], env: dict[str, str], cwd: Path = ROOT, ok: int = 0, cold: bool = True
) -> float:
    """Seconds a pytest run takes (a new interpreter, or `cold=False` a child of a warm fork
    server, as a fleet's site runs); it must exit with `ok`."""
    started = time.perf_counter()
    run = run_suite(*args, env=env, cwd=cwd, cold=cold)
    elapsed = time.perf_counter() - started
    if run.returncode != ok:
        raise SystemExit(f"pytest {' '.join(args)} exited {run.returncode}:\n{run.stdout}")
    return elapsed


def _count(junit: Path) -> int:
    return junit.read_text(encoding="utf-8").count("<testcase ")


def _trivial(folder: Path, count: int) -> None:
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (folder / "test_trivial.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('case', range({count}))\n"
        "def test_trivial(case: int) -> None:\n"
        "    assert case >= 0\n",
        encoding="utf-8",
    )


def _tls_verdicts(state: LabState) -> None:
    officer = state.pki.officer
    targets = [
        ProbeTarget(
            name,
            "127.0.0.1",
            port,
            "localhost",
            state.pki.ca_bundle,
            (officer.cert, officer.key) if name == "cm" else None,
        )
        for name, port in state.ports().items()
        if name in ("idm", "hermod", "cm")  # cm_pki is CM's plain-HTTP CRL and OCSP listener
    ]
    started = time.perf_counter()
    observed = observe_many(targets, client_auth=True)
    policy = TlsPolicy()
    for name, facts in observed.items():
        findings = judge_all(facts, policy, client_auth_required=name == "cm")
        verdict = "ok" if not findings else "; ".join(f"{f.key}: {f.observed}" for f in findings)
        print(f"  {name:7} {facts.protocol or '-':8} {facts.duration_ms:6.1f} ms  {verdict}")
    print(f"  all endpoints in parallel: {(time.perf_counter() - started) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each, median taken")
    parser.add_argument(
        "--bytecode-cache",
        action="store_true",
        help="let the runs write and use bytecode caches (drop PYTHONDONTWRITEBYTECODE)",
    )
    args = parser.parse_args()
    caches = (
        "with" if args.bytecode_cache or "PYTHONDONTWRITEBYTECODE" not in os.environ else "without"
    )
    if args.bytecode_cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the runs inherit this environment
    with tempfile.TemporaryDirectory(prefix="verify-cost-") as work:
        folder = Path(work)
        state = new_state(folder / "lab")
        env = {"SMARTID_LAB_STATE": str(state.path), "SMARTID_STATE": str(folder / "state")}
        allure = f"--alluredir={folder / 'allure'}"
        with running_lab(state):
            _pytest(["-m", "setup", "-q", allure], env)
            junit = folder / "junit.xml"
            _pytest(["-m", "verify", "-q", allure, f"--junitxml={junit}"], env)  # warm-up
            count = _count(junit)
            _trivial(folder / "trivial", count)
            times: dict[tuple[str, bool], list[float]] = {}
            none = ["-m", "verify", "-q", "-k", "no_such_check", allure]
            for _ in range(args.repeat):
                for cold in (True, False):  # interleaved: the machine's drift weighs on both
                    runs = (
                        ("verify", ["-m", "verify", "-q", allure], ROOT, 0),
                        # Nothing selected (exit 5): what the suite costs before any check runs.
                        ("empty", none, ROOT, 5),
                        ("trivial", [*_TRIVIAL_ARGS, allure], folder / "trivial", 0),
                    )
                    for name, argv, cwd, ok in runs:
                        took = _pytest(argv, env, cwd=cwd, ok=ok, cold=cold)
                        times.setdefault((name, cold), []).append(took)
            print("TLS verdict per lab endpoint:")
            _tls_verdicts(state)
    for cold in (True, False):
        v, e, t = (
            statistics.median(times[(name, cold)]) for name in ("verify", "empty", "trivial")
        )
        how = "new interpreter per run" if cold else "forked from a warm server (a fleet's site)"
        print(f"{how}:")
        print(
            f"  pytest -m verify ({count} checks, lab set up): {v:.2f} s (median of {args.repeat})"
        )
        print(f"    of which the suite's start and end, no check selected: {e:.2f} s")
        print(f"  {count} trivial tests with allure-pytest:     {t:.2f} s")
        print(f"  ratio: {v / t:.2f} (goal <= 2; a fleet's goal <= 1.5), {caches} bytecode caches")


if __name__ == "__main__":
    main()
