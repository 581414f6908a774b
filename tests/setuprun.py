"""Setup runs of the suite against a running lab, as a user starts them, and their summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

from smartid.lab.state import LabState
from smartid.lab.store import Store
from tests.helpers import ROOT, Run, run_suite

LAB_SITE = (ROOT / "sites" / "lab.toml").read_text()


class Lab:
    """A running factory lab and a way to run the suite against it."""

    def __init__(self, state: LabState, tmp: Path) -> None:
        self.state = state
        self.tmp = tmp
        self.env = {
            "SMARTID_LAB_STATE": str(state.path),
            "SMARTID_STATE": str(tmp / "site-state"),
            "SMARTID_REPORTS": str(tmp / "reports"),
        }

    def writes(self) -> int:
        return Store(self.state.database).audit_count()

    def site(self, text: str, name: str = "variant") -> Path:
        path = self.tmp / f"{name}.toml"
        path.write_text(text)
        return path

    def run(self, *args: str, site: Path | None = None, marker: str = "setup") -> Run:
        extra = (f"--site={site}",) if site else ()
        done = run_suite("-m", marker, *extra, *args, env=self.env)
        secrets = self.state.secrets().values()
        leaked = [s for s in secrets if s in done.output]
        assert not leaked, "a secret of the lab site was printed"
        return done

    def plan(self) -> dict[str, object]:
        document: dict[str, object] = json.loads((self.tmp / "reports" / "plan.json").read_text())
        return document


def summary(run: Run) -> dict[str, str]:
    """Step id -> outcome, from the suite's "Smart ID setup" section (`<id> <title>: outcome`;
    a step's own outcome comes first, a manual part it listed after it)."""
    steps: dict[str, str] = {}
    lines = run.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if " Smart ID setup" in line), len(lines))
    for line in lines[start:]:
        match = re.match(r"^(SETUP-\d{3}(?:\[[^\]]*\])?)(?: [^:]+)?: (\S.*)$", line)
        if match:
            steps.setdefault(match.group(1), match.group(2))
    return steps
