"""The README's quick start, as a new user types it, in a fresh clone of this checkout's HEAD:
`make demo`, then the commands on PATH (`smartid`, `pytest`), and (opt-in, minutes) `make test`.

The clone is of the last commit, not of the working tree. 40 to 80 s with uv's and npm's caches
warm (a new .venv and node_modules); marked `fresh_clone`, so `-m "not fresh_clone"` leaves it out.
`make test` in the clone takes minutes: SMARTID_FRESH_CLONE=full adds it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

WANTED = os.environ.get("SMARTID_FRESH_CLONE", "")
pytestmark = [pytest.mark.fresh_clone, pytest.mark.long]


def _new_user_env(clone: Path) -> dict[str, str]:
    """The environment of someone who has just cloned: none of the suite's variables, no venv,
    and after the quick start's hint the clone's .venv/bin first on PATH. Python writes no
    bytecode cache of its own there (PYTHONDONTWRITEBYTECODE, as container images often set it):
    what is compiled, `make install` compiled."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMARTID_", "PYTEST_", "MAKE")) and k not in ("VIRTUAL_ENV", "MFLAGS")
    }
    venv_bin = str(ROOT / ".venv" / "bin")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin]
    env["PATH"] = os.pathsep.join([str(clone / ".venv" / "bin"), *path])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _type(
    line: str, clone: Path, timeout: float = 900
) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=clone,
        env=_new_user_env(clone),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - began


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fresh") / "smartid-suite"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head], cwd=folder, check=True)
    return folder


def test_make_demo_then_smartid_and_pytest(clone: Path) -> None:
    demo, took = _type("make demo", clone)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    print(f"make demo in a fresh clone: {took:.0f} s")
    assert 'export PATH="' in demo.stdout
    assert (clone / "reports" / "html" / "index.html").is_file()
    # make install compiled what it installed and the suite's src/: no run compiles them again
    # where Python may not write its caches (PYTHONDONTWRITEBYTECODE).
    packages = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    for module in (packages / "pydantic" / "main.py", clone / "src" / "smartid" / "site.py"):
        assert list(module.parent.glob(f"__pycache__/{module.stem}.*.pyc")), module

    # The clone's own commands on PATH, each spelling of --site once (tests/test_site_option.py,
    # test_cli.py and test_selection.py cover every command and spelling in this checkout).
    for line, code in [
        ("smartid setup --plan", 0),
        ("smartid -v verify --site sites/lab.toml", 0),
        ("smartid lab status | head -1", 0),
        ("pytest -m verify --site=sites/lab.toml", 0),
        ("pytest", 4),
    ]:
        done, took = _type(line, clone, timeout=600)
        assert done.returncode == code, f"{line}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, line
        print(f"{line}: {took:.0f} s")
    status, _ = _type("smartid lab status | head -1", clone)
    assert status.stdout == "running: no\n"


@pytest.mark.skipif(WANTED != "full", reason="make test in a fresh clone: SMARTID_FRESH_CLONE=full")
def test_make_test(clone: Path) -> None:
    done, took = _type("make test", clone, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"make test in a fresh clone: {took:.0f} s")
