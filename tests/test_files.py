"""write_private writes a file atomically with exact permission bits, and leaves nothing behind
when it fails."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from smartid.files import write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_has_the_content_and_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    write_private(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert _mode(target) == 0o600


def test_rewrite_replaces_the_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "secrets.json"
    write_private(target, b"one")
    before = target.stat().st_ino
    write_private(target, b"two")
    assert target.read_bytes() == b"two"
    assert target.stat().st_ino != before, "the file was rewritten in place, not replaced"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]


def test_rewrite_makes_a_loose_file_private(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert _mode(target) == 0o600


def test_failed_replace_keeps_the_old_file_and_removes_the_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ports.json"
    write_private(target, b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_private(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ports.json"]


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", refuse)
    with pytest.raises(OSError, match="I/O error"):
        write_private(tmp_path / "new.pem", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o400])
def test_the_mode_given_is_applied(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "cert.pem"
    write_private(target, b"certificate", mode)
    assert target.read_bytes() == b"certificate"
    assert _mode(target) == mode


def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    """In a child process, since the umask is shared by every thread of this one."""
    script = (
        "import os, stat, sys\n"
        "from pathlib import Path\n"
        "from smartid.files import write_private\n"
        "os.umask(0o277)\n"
        "folder = Path(sys.argv[1])\n"
        "write_private(folder / 'key.pem', b'k')\n"
        "write_private(folder / 'cert.pem', b'c', 0o644)\n"
        "for name in ('key.pem', 'cert.pem'):\n"
        "    print(oct(stat.S_IMODE((folder / name).stat().st_mode)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0o600", "0o644"]
