"""Atomic writes of private files: a reader sees the old content or the new, never half of it,
and a key or password written here is never readable by others, not even for a moment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically, leaving its permission bits exactly `mode`.

    The bytes go to a temporary file in the same folder, created with `mode` from the start and
    synced to disk, which then replaces `path` in one rename. On any error the temporary file is
    removed and `path` keeps what it held. The folder must exist; its mode is the caller's.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it; make it exact
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
