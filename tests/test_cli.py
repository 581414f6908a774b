"""`smartid`: one command for setup, verify, health, nightly and the lab, running the documented
pytest (or nightly, or lab) command in a subprocess in the suite's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartid.cli import Invocation, SmartidUsageError, find_suite, invocation
from tests.helpers import ROOT

PY = sys.executable
OUT = [f"--reports={ROOT}/out"]
SMARTID = str(Path(sys.executable).parent / "smartid")
# The interpreter the installed script runs (its #! line): python or python3, as pip wrote it.
SCRIPT_PY = Path(SMARTID).read_text(encoding="utf-8").splitlines()[0].removeprefix("#!")


def _call(*argv: str, here: Path = ROOT) -> Invocation:
    call, _ = invocation(list(argv), here=here)
    assert call is not None
    return call


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["setup"], [PY, "-m", "pytest", "-m", "setup"]),
        (["setup", "--plan"], [PY, "-m", "pytest", "-m", "setup", "--plan"]),
        (["verify"], [PY, "-m", "pytest", "-m", "verify"]),
        (["health", "-x"], [PY, "-m", "pytest", "-m", "health", "-x"]),
        (
            ["verify", "-k", "TLS-003", "--site", "s.toml"],
            [PY, "-m", "pytest", "-m", "verify", f"--site={ROOT / 's.toml'}", "-k", "TLS-003"],
        ),
        (
            ["verify", "--site=/abs/s.toml", "--lab-state", "lab"],
            [PY, "-m", "pytest", "-m", "verify", "--site=/abs/s.toml", f"--lab-state={ROOT}/lab"],
        ),
        (
            ["-v", "verify", "--", "--site", "x"],
            [PY, "-m", "pytest", "-m", "verify", "-v", "--site", "x"],
        ),
        (["nightly"], [PY, "-m", "smartid.report.nightly", "run"]),
        (
            ["nightly", "--site", "s.toml", "-k", "TLS"],
            [PY, "-m", "smartid.report.nightly", "run", f"--site={ROOT}/s.toml", "--", "-k", "TLS"],
        ),
        (
            ["fleet", "run", "sites", "-j", "2", "--reports", "out"],
            [PY, "-m", "smartid.report.fleet", "run", f"{ROOT}/sites", "-j", "2", *OUT],
        ),
        (
            ["fleet", "merge", "sites", "--", "-k", "TLS"],
            [PY, "-m", "smartid.report.fleet", "merge", f"{ROOT}/sites", "--", "-k", "TLS"],
        ),
        (["lab", "status"], [PY, "-m", "smartid.lab", "status"]),
        (
            ["lab", "fault", "on", "cm-down", "--state-dir", "x"],
            [PY, "-m", "smartid.lab", "fault", "on", "cm-down", f"--state-dir={ROOT}/x"],
        ),
        (["lab", "--help"], [PY, "-m", "smartid.lab", "--help"]),
    ],
)
def test_each_command_runs_the_documented_command(argv: list[str], command: list[str]) -> None:
    call = _call(*argv)
    assert call.command == command
    assert call.cwd == ROOT


def test_paths_are_taken_from_the_folder_smartid_starts_in(tmp_path: Path) -> None:
    call = _call("setup", "--site", "my.toml", here=tmp_path)
    assert call.command[-1] == f"--site={tmp_path / 'my.toml'}"
    assert call.cwd == ROOT  # the installed checkout: pytest runs where pytest.ini is


def test_path_variables_are_taken_from_the_starting_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTID_SITE", "sites/x.toml")
    monkeypatch.setenv("SMARTID_REPORTS", "/abs/reports")
    monkeypatch.delenv("SMARTID_LAB_STATE", raising=False)
    call = _call("verify", here=tmp_path)
    assert call.env == {
        "SMARTID_SITE": str(tmp_path / "sites/x.toml"),
        "SMARTID_REPORTS": "/abs/reports",
    }


def test_the_suite_is_found_above_the_starting_folder() -> None:
    assert find_suite(ROOT / "docs") == ROOT


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "unknown command 'frobnicate': choose one of setup, verify, health, "),
        (["verify", "--site"], "--site needs a value: --site PATH or --site=PATH"),
        (["verify", "--site="], "--site needs a value: --site PATH or --site=PATH"),
        (["setup", "--site", "--plan"], "--site needs a value: --site PATH or --site=PATH"),
    ],
)
def test_a_wrong_command_line_is_one_sentence(argv: list[str], message: str) -> None:
    with pytest.raises(SmartidUsageError) as caught:
        invocation(argv, here=ROOT)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["verify", "--help"]])
def test_help(argv: list[str]) -> None:
    assert invocation(argv, here=ROOT) == (None, False)


def _run(
    *args: str, cwd: Path = ROOT, stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    return subprocess.run(
        [SMARTID, *args],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_console_script_prints_its_help() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "smartid setup [--plan] [--site PATH]" in done.stdout


def test_the_console_script_says_a_wrong_command_in_one_line() -> None:
    done = _run("frobnicate")
    assert done.returncode == 4
    assert done.stderr.startswith("smartid: unknown command 'frobnicate'")
    assert len(done.stderr.splitlines()) == 1


def test_lab_delegates_with_its_options_after_the_subcommand(tmp_path: Path) -> None:
    from tests.lab import new_state

    state = new_state(tmp_path / "lab")
    done = _run("-v", "lab", "status", "--state-dir", "lab", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("running: no\n")
    assert done.stderr.splitlines() == [
        f"smartid: cd {ROOT} && {SCRIPT_PY} -m smartid.lab status --state-dir={state.path}"
    ]


@pytest.mark.parametrize("args", [["--help"], ["lab", "faults"]])
def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path, args: list[str]) -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [SMARTID, *args, *(["--state-dir", str(tmp_path / "lab")] if args[0] == "lab" else [])],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr == ""
    assert done.returncode == 141
