"""`make test` does its own set-up (tools/test-prerequisites): with Chromium missing it installs
Debian's chromium and chromium-driver with apt-get as root, and elsewhere stops before any test
with one sentence saying what to install. apt-get and `id` are stand-ins on PATH here: the
machine's own browser is never removed or installed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "tools" / "test-prerequisites"
BASH = "/bin/bash"


def _fake_bin(folder: Path, *, uid: int, apt_get: bool) -> Path:
    """A folder for PATH with `id` printing `uid` and, if asked, an `apt-get` that logs its
    arguments and, on install, creates the browser at $CHROMIUM."""
    folder.mkdir()
    (folder / "id").write_text(f"#!{BASH}\necho {uid}\n")
    if apt_get:
        (folder / "apt-get").write_text(
            f"#!{BASH}\n"
            'echo "$DEBIAN_FRONTEND $*" >> "$APT_LOG"\n'
            'if [ "$1" = install ]; then printf "#!/bin/sh\\n" > "$CHROMIUM"; '
            '/bin/chmod +x "$CHROMIUM"; fi\n'
        )
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return folder


def _run(
    tmp_path: Path, *, uid: int, apt_get: bool, extra: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    fake = _fake_bin(tmp_path / "bin", uid=uid, apt_get=apt_get)
    log = tmp_path / "apt.log"
    env = {
        "PATH": str(fake),  # nothing else: a machine without apt-get when the stand-in is absent
        "CHROMIUM": str(tmp_path / "chromium"),
        "APT_LOG": str(log),
        **(extra or {}),
    }
    done = subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done, log


def test_a_browser_that_is_there_needs_nothing(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    done, log = _run(tmp_path, uid=0, apt_get=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not log.exists()


def test_as_root_with_apt_get_the_browser_is_installed(tmp_path: Path) -> None:
    done, log = _run(tmp_path, uid=0, apt_get=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        " update -qq",
        "noninteractive install -y -qq chromium chromium-driver",
    ]
    assert "installing Debian's chromium chromium-driver" in done.stdout


def test_without_root_it_says_what_to_install_in_one_sentence(tmp_path: Path) -> None:
    done, log = _run(tmp_path, uid=1000, apt_get=True)
    assert done.returncode == 1
    assert not log.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("make test: the browser test needs ")
    assert "(sudo apt-get install chromium chromium-driver)" in lines[0]
    assert lines[0].endswith("or set SMARTID_NO_BROWSER=1 to skip that test.")


def test_without_apt_get_it_says_what_to_install_in_one_sentence(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, uid=0, apt_get=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"install Chromium so that it is {tmp_path / 'chromium'} first" in lines[0]


def test_no_browser_wanted_needs_nothing(tmp_path: Path) -> None:
    done, log = _run(tmp_path, uid=1000, apt_get=False, extra={"SMARTID_NO_BROWSER": "1"})
    assert (done.returncode, done.stderr) == (0, "")
    assert not log.exists()


def test_make_test_stops_before_lint_and_tests_when_it_cannot_install(tmp_path: Path) -> None:
    fake = _fake_bin(tmp_path / "bin", uid=1000, apt_get=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTID_", "PYTEST_"))}
    env.update(PATH=f"{fake}:{os.environ['PATH']}", CHROMIUM=str(tmp_path / "chromium"))
    env.pop("MAKEFLAGS", None)
    done = subprocess.run(
        ["make", "--no-print-directory", "test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "make test: the browser test needs " in done.stderr
    assert "ruff" not in done.stdout
    assert "pytest" not in done.stdout


def test_ci_only_calls_make_test() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in text
    assert text.rstrip().endswith("make test")
