"""A run against the lab says what it does with it: started it and stopped it, with its URLs, or
found it running and left it so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_suite
from tests.lab import new_state, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]


def _run(state_dir: Path, tmp: Path) -> str:
    run = run_suite(
        "-m",
        "verify",
        "-k",
        "CONN-001",
        env={"SMARTID_LAB_STATE": str(state_dir), "SMARTID_STATE": str(tmp / "state")},
    )
    assert run.returncode == 0, run.output
    return run.output


def test_a_run_that_starts_the_lab_says_so_names_its_urls_and_stops_it(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    output = _run(state.path, tmp_path)
    assert f"embedded lab ({state.path}): started for this run, stopped at its end" in output
    assert f"idm_admin {state.endpoints()['idm_admin']}" in output
    assert output.rstrip().endswith("embedded lab stopped (it was started for this run)")


def test_a_running_lab_is_named_and_left_running(tmp_path: Path) -> None:
    state = new_state(tmp_path / "lab")
    with running_lab(state) as process:
        output = _run(state.path, tmp_path)
        assert process.poll() is None
    assert f"embedded lab ({state.path}): already running, left running" in output
    assert "embedded lab stopped" not in output
