"""Fixtures of the project's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def suite_env(tmp_path: Path) -> dict[str, str]:
    """Environment that keeps a suite run's state out of the project folder."""
    return {
        "SMARTID_LAB_STATE": str(tmp_path / "lab"),
        "SMARTID_STATE": str(tmp_path / "state"),
        "SMARTID_REPORTS": str(tmp_path / "reports"),
    }
