"""docs/setup.md lists every setup step, with the title the summary prints."""

from __future__ import annotations

import ast
import re

from tests.helpers import ROOT

STEP = re.compile(r"^(SETUP-\d{3}) (.*)$", re.S)


def _steps() -> dict[str, str]:
    """Step id -> title (the docstring's first sentence), read from setup_steps/."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "setup_steps").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                match = STEP.match(" ".join((ast.get_docstring(node) or "").split()))
                if match:
                    found[match.group(1)] = match.group(2).split(". ", 1)[0].rstrip(".")
    return found


def test_every_step_is_documented_with_its_title() -> None:
    rows = {
        cells[1]: cells[2]
        for line in (ROOT / "docs" / "setup.md").read_text(encoding="utf-8").splitlines()
        if (cells := [c.strip() for c in line.split("|")])[1:2] and cells[1].startswith("SETUP-")
    }
    steps = _steps()
    assert len(steps) == 17
    assert sorted(rows) == sorted(steps)
    for step, title in steps.items():
        assert rows[step].startswith(title.split(" (")[0]), (step, rows[step], title)
