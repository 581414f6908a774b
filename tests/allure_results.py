"""Synthetic Allure results folders, as allure-pytest and the suite's glue leave them, for report
tests that need no pytest run and no lab."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from smartid.report.context import RunContext, write_context
from smartid.report.results import write_environment


@dataclass(frozen=True, kw_only=True)
class Result:
    """One test result: a check id, its title, status and severity, and extra labels."""

    check: str
    title: str
    status: str
    severity: str = "normal"
    message: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def blocked_by(self, cause: str) -> Result:
        """The same check, skipped because `cause` failed first (as the check glue writes it)."""
        extra = (("smartid_outcome", "blocked"), ("blocked_by", cause))
        return Result(
            check=self.check,
            title=self.title,
            status="skipped",
            severity=self.severity,
            message=f"blocked by {cause}",
            labels=(*self.labels, *extra),
        )


def write_results(
    folder: Path,
    results: list[Result],
    *,
    site: str,
    target: str = "lab",
    context: RunContext | None = None,
    start: float | None = None,
) -> Path:
    """`folder` with one `*-result.json` per result, `environment.properties` and the run's
    context, as a suite run leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    millis = int((start if start is not None else time.time()) * 1000)
    for index, result in enumerate(results):
        labels = [
            ("severity", result.severity),
            ("check_id", result.check),
            ("epic", "Verify"),
            ("story", result.check.split("-")[0]),
            ("site", site),
            *result.labels,
        ]
        data = {
            "uuid": str(uuid.uuid4()),
            "name": result.title,
            "fullName": f"checks.test_synthetic#{result.title}",
            "status": result.status,
            "statusDetails": {"message": result.message} if result.message else {},
            "start": millis + index * 100,
            "stop": millis + index * 100 + 50,
            "labels": [{"name": name, "value": value} for name, value in labels],
            "parameters": [{"name": "site", "value": repr(site), "mode": "hidden"}],
        }
        (folder / f"{data['uuid']}-result.json").write_text(json.dumps(data), encoding="utf-8")
    write_environment(folder, {"site": site, "target": target})
    write_context(folder, context or RunContext())
    return folder
