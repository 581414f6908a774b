"""What a whole verify run costs, as a ratio in one run (bench/README.md): `pytest -m verify`
against a running lab that the suite's setup has configured, divided by a pytest run of as many
trivial tests with allure-pytest writing results (`--alluredir`). Both are subprocesses started the
same way, so both pay for Python, pytest and Allure; the ratio is what the checks themselves add.
Goal: <= 2.

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


def _pytest(args: Sequence[str], env: dict[str, str], cwd: Path = ROOT, ok: int = 0) -> float:
    """Seconds a pytest subprocess takes; it must exit with `ok`."""
    started = time.perf_counter()
    run = run_suite(*args, env=env, cwd=cwd)
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
            verify, trivial, empty = [], [], []
            for _ in range(args.repeat):
                verify.append(_pytest(["-m", "verify", "-q", allure], env))
                # Nothing selected (exit 5): what the suite costs before any check runs.
                none = ["-m", "verify", "-q", "-k", "no_such_check", allure]
                empty.append(_pytest(none, env, ok=5))
                trivial.append(_pytest([*_TRIVIAL_ARGS, allure], env, cwd=folder / "trivial"))
            print("TLS verdict per lab endpoint:")
            _tls_verdicts(state)
    v, t, e = statistics.median(verify), statistics.median(trivial), statistics.median(empty)
    print(f"pytest -m verify ({count} checks, lab set up): {v:.2f} s (median of {args.repeat})")
    print(f"  of which the suite's start and end, no check selected: {e:.2f} s")
    print(f"{count} trivial tests with allure-pytest:     {t:.2f} s (median of {args.repeat})")
    print(f"ratio: {v / t:.2f} (goal <= 2), {caches} bytecode caches")


if __name__ == "__main__":
    main()
