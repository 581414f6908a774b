"""Site state: what setup creates for a site and must keep (docs/architecture.md).

Secrets that setup generates (the Hermod client key), and artifacts such as the CM connection zip
and the Hermod client section, live in `.smartid/<site name>/`: the folder mode 0700, each file
0600, written atomically. It is never under `reports/`.
"""

from __future__ import annotations

import stat
from pathlib import Path

from smartid.files import write_private

__all__ = ["DEFAULT_ROOT", "SiteState"]

DEFAULT_ROOT = Path(".smartid")


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)


class SiteState:
    """The private state folder of one site."""

    def __init__(self, site_name: str, root: Path) -> None:
        self.root = root
        self.path = root / site_name

    def ensure(self) -> Path:
        _private_dir(self.root)
        _private_dir(self.path)
        return self.path

    def file(self, name: str) -> Path:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"site state file name '{name}' must be a plain file name")
        return self.path / name

    def write(self, name: str, data: bytes) -> Path:
        """Write `name` atomically with mode 0600 and return its path."""
        self.ensure()
        target = self.file(name)
        write_private(target, data)
        return target

    def read(self, name: str) -> bytes | None:
        try:
            return self.file(name).read_bytes()
        except FileNotFoundError:
            return None
