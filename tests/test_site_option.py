"""`--site PATH` with a space or with `=`, from the project folder and from others: the option is
registered by the installed plugin (smartid_pytest.plugin) before pytest reads conftest.py; where
pytest has already chosen its root folder from the PATH, the run stops with one sentence asking for
`--site=PATH`. `smartid` accepts both spellings from any folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from smartid_pytest.plugin import misread_site
from tests.helpers import ROOT, Run, run_suite

BROKEN = "this is = not [ TOML\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A site file outside the project that the suite can only refuse: its error names it."""
    site = tmp_path / "elsewhere" / "other.toml"
    site.parent.mkdir()
    site.write_text(BROKEN)
    return site


def _smartid(*args: str, cwd: Path, env: dict[str, str]) -> Run:
    import subprocess

    done = subprocess.run(
        [str(Path(sys.executable).parent / "smartid"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _named_as_the_broken_site(run: Run, site: Path) -> bool:
    return run.returncode == 4 and str(site) in run.output and "unrecognized" not in run.output


def test_site_with_equals_outside_the_project_is_read(
    outside: Path, suite_env: dict[str, str]
) -> None:
    run = run_suite("-m", "verify", f"--site={outside}", env=suite_env)
    assert _named_as_the_broken_site(run, outside), run.output


def test_site_with_a_space_outside_the_project_asks_for_equals(
    outside: Path, suite_env: dict[str, str]
) -> None:
    run = run_suite("-m", "verify", "--site", str(outside), env=suite_env)
    assert run.returncode == 4, run.output
    assert "unrecognized arguments" not in run.output
    lines = run.stderr.strip().splitlines()
    assert lines == [
        f"ERROR: pytest took the site file of '--site {outside}' for a test path and chose its "
        f"root folder from it, so write '--site={outside}' with '=' "
        f"(or run 'smartid verify --site {outside}', which does)"
    ]


def test_site_with_a_space_inside_the_project_is_read(suite_env: dict[str, str]) -> None:
    """sites/example.toml shows `--site sites/mysite.toml`: a space works inside the project."""
    run = run_suite("-m", "verify", "--co", "-q", "--site", "sites/example.toml", env=suite_env)
    assert "unrecognized arguments" not in run.output
    assert "sites/example.toml" in run.output, run.output  # its secret is unset: a site error


@pytest.mark.parametrize("spelling", ["space", "equals"])
def test_site_from_a_subfolder_of_the_project(suite_env: dict[str, str], spelling: str) -> None:
    """From a subfolder pytest collects only what it is given (here ../checks), and takes the
    site file's path from the folder it is started in."""
    inside = ROOT / "sites" / "example.toml"
    args = ["--site", "example.toml"] if spelling == "space" else ["--site=example.toml"]
    run = run_suite(
        "-m", "verify", "--co", "-q", "../checks", *args, cwd=ROOT / "sites", env=suite_env
    )
    assert "unrecognized arguments" not in run.output
    assert str(inside) in run.output, run.output


@pytest.mark.parametrize("spelling", ["space", "equals"])
def test_smartid_takes_either_spelling_from_another_folder(
    outside: Path, suite_env: dict[str, str], spelling: str
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    env.update(suite_env)
    args = ["--site", "other.toml"] if spelling == "space" else ["--site=other.toml"]
    run = _smartid("-v", "verify", *args, cwd=outside.parent, env=env)
    assert _named_as_the_broken_site(run, outside), run.output
    script = Path(sys.executable).parent / "smartid"
    python = script.read_text(encoding="utf-8").splitlines()[0].removeprefix("#!")
    shown = f"smartid: cd {ROOT} && {python} -m pytest -m verify --site={outside} -v"
    assert run.stderr.splitlines()[0] == shown


def test_misread_site_only_where_pytest_took_the_path_for_its_root(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sites").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "sites" / "a.toml").write_text("")
    (tmp_path / "b.toml").write_text("")
    ini = project / "pytest.ini"
    assert (
        misread_site(["-m", "verify", "--site", "sites/a.toml"], here=project, inipath=ini) is None
    )
    assert misread_site(["--site=../b.toml"], here=project, inipath=ini) is None
    assert misread_site(["--site", "../missing.toml"], here=project, inipath=ini) is None
    assert misread_site(["--", "--site", "../b.toml"], here=project, inipath=ini) is None
    told = misread_site(["-m", "setup", "--site", "../b.toml"], here=project, inipath=None)
    assert told is not None
    assert told.endswith("(or run 'smartid setup --site ../b.toml', which does)")
