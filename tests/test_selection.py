"""A run of the suite writes only when asked: setup steps run with `-m setup` alone, and a bare
`pytest` stops before anything with one sentence on what to choose. Proven on a running lab by its
audit log, which counts every write."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.selection import CHOOSE
from smartid.lab.state import LabState
from smartid.lab.store import Store
from tests.helpers import run_suite
from tests.lab import new_state, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[LabState, subprocess.Popen[bytes]]]:
    state = new_state(tmp_path / "lab")
    with running_lab(state) as process:
        yield state, process


def _env(state: LabState, tmp_path: Path) -> dict[str, str]:
    return {
        "SMARTID_LAB_STATE": str(state.path),
        "SMARTID_STATE": str(tmp_path / "state"),
        "SMARTID_REPORTS": str(tmp_path / "reports"),
    }


def test_a_bare_pytest_writes_nothing_and_says_what_to_choose(
    serving: tuple[LabState, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    state, _ = serving
    writes = Store(state.database).audit_count()
    run = run_suite(env=_env(state, tmp_path))
    assert run.returncode == 4, run.output
    assert run.stderr.strip() == f"ERROR: {CHOOSE}"
    assert Store(state.database).audit_count() == writes
    assert not (tmp_path / "reports").exists()


def test_setup_steps_named_by_path_without_m_setup_do_not_run(
    serving: tuple[LabState, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    state, _ = serving
    writes = Store(state.database).audit_count()
    run = run_suite("setup_steps", env=_env(state, tmp_path))
    assert run.returncode == 5, run.output
    assert "setup steps deselected: setup runs only when asked for with -m setup" in run.stdout
    assert Store(state.database).audit_count() == writes


@pytest.mark.parametrize(
    "args",
    [["-k", "AUTH or PKG"], [".", "--plan"], ["-m", "not verify"]],
    ids=["keyword", "root", "markexpr-without-setup"],
)
def test_setup_steps_run_only_with_m_setup(
    serving: tuple[LabState, subprocess.Popen[bytes]], tmp_path: Path, args: list[str]
) -> None:
    state, _ = serving
    writes = Store(state.database).audit_count()
    run = run_suite(*args, "--co", env=_env(state, tmp_path))
    assert "setup_steps/" not in run.stdout, run.output
    assert Store(state.database).audit_count() == writes


def test_m_setup_still_selects_the_steps(
    serving: tuple[LabState, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    state, _ = serving
    run = run_suite("-m", "setup", "--co", "-q", env=_env(state, tmp_path))
    assert run.returncode == 0, run.output
    assert "setup_steps/" in run.stdout
