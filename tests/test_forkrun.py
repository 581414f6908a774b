"""smartid.forkrun: a child forked from the warm server behaves as `python -m` in a new process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smartid import forkrun
from smartid.forkrun import ForkRunner

pytestmark = pytest.mark.skipif(not forkrun.available(), reason="no fork server here")

RUNNER = ForkRunner()
_TOUCHED: list[str] = []


def where_and_what(name: str) -> int:
    print(json.dumps({"cwd": os.getcwd(), "env": dict(os.environ), "touched": list(_TOUCHED)}))
    print("to stderr", file=sys.stderr)
    _TOUCHED.append(name)
    return 7


def start_a_grandchild_and_wait() -> int:
    child = subprocess.Popen(["sleep", "60"])
    print(child.pid, flush=True)
    time.sleep(60)
    return 0


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie waiting for whoever inherited it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def raises() -> int:
    raise RuntimeError("boom")


def test_a_function_runs_in_the_folder_with_exactly_the_environment_given(tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    env = {"ONLY": "this", "PATH": os.environ["PATH"]}
    first = RUNNER.start(where_and_what, ["a"], env=env, cwd=tmp_path, out=out, err=err)
    assert first.wait(timeout=60) == 7
    seen = json.loads(out.read_text())
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"] == env
    assert err.read_text() == "to stderr\n"
    # A second run does not see what the first one did.
    second = RUNNER.start(where_and_what, ["b"], env=env, cwd=tmp_path, out=out)
    assert second.wait(timeout=60) == 7
    (line,) = (text for text in out.read_text().splitlines() if text.startswith("{"))
    assert json.loads(line)["touched"] == []
    assert "to stderr" in out.read_text()  # one file for both streams


def test_a_module_runs_as_python_m_does_with_its_exit_status(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"a": 1}')
    bad.write_text("{")
    env = dict(os.environ)
    ran = RUNNER.start("json.tool", [str(good)], env=env, cwd=tmp_path, out=tmp_path / "o")
    assert ran.wait(timeout=60) == 0
    assert json.loads((tmp_path / "o").read_text()) == {"a": 1}
    failed = RUNNER.start("json.tool", [str(bad)], env=env, cwd=tmp_path, out=tmp_path / "o")
    assert failed.wait(timeout=60) == 1
    assert "Expecting property name" in (tmp_path / "o").read_text()


def test_pytest_runs_as_a_command_in_the_child(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_ok():\n    assert 1 == 1\n")
    (tmp_path / "test_two.py").write_text("def test_not_ok():\n    assert 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SMARTID_"))}
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(tmp_path)]
    one = RUNNER.start("pytest", [*args, "test_one.py"], env=env, cwd=tmp_path, out=tmp_path / "1")
    two = RUNNER.start("pytest", [*args, "test_two.py"], env=env, cwd=tmp_path, out=tmp_path / "2")
    assert one.wait(timeout=120) == 0, (tmp_path / "1").read_text()
    assert two.wait(timeout=120) == 1, (tmp_path / "2").read_text()
    assert "1 passed" in (tmp_path / "1").read_text()
    assert "1 failed" in (tmp_path / "2").read_text()


def test_an_exception_is_exit_status_one_with_its_traceback(tmp_path: Path) -> None:
    ran = RUNNER.start(raises, [], env={}, cwd=tmp_path, out=tmp_path / "o")
    assert ran.wait(timeout=60) == 1
    assert "RuntimeError: boom" in (tmp_path / "o").read_text()


def test_a_new_session_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    out = tmp_path / "o"
    env = dict(os.environ)
    ran = RUNNER.start(
        start_a_grandchild_and_wait, [], env=env, cwd=tmp_path, out=out, new_session=True
    )
    deadline = time.monotonic() + 30
    while not (out.is_file() and out.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(out.read_text())
    assert os.getpgid(ran.pid) == ran.pid
    with pytest.raises(subprocess.TimeoutExpired):
        ran.wait(timeout=0.2)
    os.killpg(ran.pid, signal.SIGKILL)
    assert ran.wait(timeout=30) == -signal.SIGKILL
    while time.monotonic() < deadline:
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the grandchild {grandchild} outlived its process group")


def preloaded_fixtures() -> int:
    names = ("fixtures", "fixtures.site", "fixtures.checks", "checks", "checks.test_tls")
    print(json.dumps({name: getattr(sys.modules.get(name), "__file__", None) for name in names}))
    return 0


def test_the_suites_plugins_and_checks_are_preloaded_for_its_own_folder_only(
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    here = RUNNER.start(preloaded_fixtures, [], env={}, cwd=root, out=tmp_path / "here")
    assert here.wait(timeout=60) == 0
    seen = json.loads((tmp_path / "here").read_text())
    assert seen["fixtures.site"] == str(root / "fixtures" / "site.py")
    assert seen["fixtures.checks"] == str(root / "fixtures" / "checks.py")
    assert seen["checks.test_tls"] == str(root / "checks" / "test_tls.py")
    # Another folder with a `fixtures` package of its own: its pytest imports that one.
    other = tmp_path / "other"
    (other / "fixtures").mkdir(parents=True)
    (other / "fixtures" / "__init__.py").write_text("")
    (other / "fixtures" / "mine.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef answer() -> int:\n    return 42\n"
    )
    (other / "conftest.py").write_text('pytest_plugins = ["fixtures.mine"]\n')
    (other / "test_it.py").write_text("def test_answer(answer):\n    assert answer == 42\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SMARTID_"))}
    args = ["-q", "-p", "no:cacheprovider", "--rootdir", str(other)]
    ran = RUNNER.start("pytest", args, env=env, cwd=other, out=tmp_path / "other.log")
    assert ran.wait(timeout=120) == 0, (tmp_path / "other.log").read_text()
    there = RUNNER.start(preloaded_fixtures, [], env={}, cwd=other, out=tmp_path / "there")
    assert there.wait(timeout=60) == 0
    elsewhere = json.loads((tmp_path / "there").read_text())
    assert elsewhere["fixtures.site"] is None
    assert elsewhere["checks.test_tls"] is None


def test_every_module_of_the_checks_is_preloaded() -> None:
    root = Path(__file__).resolve().parent.parent
    modules = {f"checks.{path.stem}" for path in (root / "checks").glob("test_*.py")}
    assert set(forkrun.SUITE_CHECKS) == {"checks"} | modules
