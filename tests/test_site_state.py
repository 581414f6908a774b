"""The site state folder keeps what setup creates private: folder 0700, files 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from smartid.state import SiteState


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_folder_and_files_are_private(tmp_path: Path) -> None:
    state = SiteState("lab", root=tmp_path / ".smartid")
    written = state.write("hermod-key", b"0123")
    assert _mode(tmp_path / ".smartid") == 0o700
    assert _mode(state.path) == 0o700
    assert _mode(written) == 0o600
    assert state.read("hermod-key") == b"0123"
    assert state.read("absent") is None


def test_loose_folder_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "s" / "lab").mkdir(parents=True, mode=0o755)
    state = SiteState("lab", root=tmp_path / "s")
    state.ensure()
    assert _mode(state.path) == 0o700


def test_rewrite_replaces_content_atomically(tmp_path: Path) -> None:
    state = SiteState("lab", root=tmp_path)
    state.write("a", b"one")
    state.write("a", b"two")
    assert state.read("a") == b"two"
    assert sorted(p.name for p in state.path.iterdir()) == ["a"]


@pytest.mark.parametrize("name", ["../x", "", "a/b", ".."])
def test_names_cannot_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        SiteState("lab", root=tmp_path).file(name)
