"""The lab's state directory: where everything the lab knows lives, so that stopping or killing
the lab loses nothing (DESIGN §2, §4)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

__all__ = ["DEFAULT_STATE_DIR", "LabState", "resolve_state_dir"]

DEFAULT_STATE_DIR = Path(".lab")
SECRET_NAMES = ("admin_password", "hermod_password", "officer_keystore_password")


def resolve_state_dir(explicit: str | Path | None = None) -> Path:
    """`explicit` > `SMARTID_LAB_STATE` > `.lab/`, as an absolute path."""
    chosen = explicit or os.environ.get("SMARTID_LAB_STATE") or DEFAULT_STATE_DIR
    return Path(chosen).expanduser().resolve()


class LabState:
    """Paths and small files of one lab state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def secrets_file(self) -> Path:
        return self.path / "secrets.json"

    def ensure(self) -> None:
        """Create the directory and the secrets file on first use; never overwrite them."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.secrets_file.exists():
            values = {name: secrets.token_urlsafe(18) for name in SECRET_NAMES}
            fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(values, handle, indent=2)

    def secrets(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.secrets_file.read_text(encoding="utf-8"))
        return data
