"""The Allure results folder as data (docs/operations.md).

A run leaves, besides allure-pytest's `*-result.json` files, `environment.properties` (what ran
against what, never a secret), which the suite writes itself. The nightly reads the folder back
into one `TestRecord` per test, with the suite's own outcome from the labels fixtures/reporting.py
gives each test (`smartid_outcome`, `blocked_by`, `waived`, `smartid_category`).

The categories (how failures are grouped) match the `smartid_category` label, which the suite
sets from each test's typed outcome, never the message's words: rewording a message changes no
count. They go into the Allure 3 configuration (`smartid.report.html`), which the "awesome" report
reads them from. Allure 2's `categories.json` could only match message text, so none is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartid.masking import MASKER
from smartid.report.seam import (
    BLOCKED_LABEL,
    CATEGORY_LABEL,
    CHECK_ID_LABEL,
    OUTCOME_LABEL,
    WAIVED_LABEL,
    WARNING_LABEL,
)
from smartid.verify.outcome import CATEGORY_NAMES, SUITE

__all__ = [
    "CATEGORIES",
    "Category",
    "TestRecord",
    "categorize",
    "read_environment",
    "read_results",
    "write_environment",
]


@dataclass(frozen=True)
class Category:
    """A group of failures: by status, and by the category the suite gave the test's outcome
    (the `smartid_category` label, `smartid.verify.outcome.category_of`), never by its words."""

    name: str
    statuses: tuple[str, ...]

    def matches(self, status: str, category: str | None) -> bool:
        return status in self.statuses and category == self.name

    def as_allure(self) -> dict[str, Any]:
        """Allure 3's category rule: statuses and a label matcher."""
        return {
            "name": self.name,
            "matchers": {
                "statuses": list(self.statuses),
                "labels": {CATEGORY_LABEL: f"^{re.escape(self.name)}$"},
            },
        }


_PROBLEMS = ("failed", "broken")
CATEGORIES: tuple[Category, ...] = tuple(
    Category(name, ("broken",) if name == SUITE else _PROBLEMS) for name in CATEGORY_NAMES
)


def categorize(status: str, category: str | None) -> str | None:
    """The category of a failed or broken result; None for any other."""
    for known in CATEGORIES:
        if known.matches(status, category):
            return known.name
    return SUITE if status == "broken" else None


def _escape_property(text: str, *, key: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    escaped = escaped.replace("=", "\\=").replace(":", "\\:")
    return escaped.replace(" ", "\\ ") if key else escaped


def write_environment(results_dir: Path, values: Mapping[str, str]) -> Path:
    """`environment.properties`: each value masked, in case a secret found its way into one."""
    path = results_dir / "environment.properties"
    lines = [
        f"{_escape_property(k, key=True)}={_escape_property(MASKER.mask(v), key=False)}"
        for k, v in values.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_environment(results_dir: Path) -> dict[str, str]:
    """What `write_environment()` wrote (a minimal reader for that writer's escapes)."""
    path = results_dir / "environment.properties"
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("#", "!")):
            continue
        match = re.match(r"((?:\\.|[^=\\])*)=(.*)", line)
        if match is not None:
            values[_unescape(match.group(1))] = _unescape(match.group(2))
    return values


def _unescape(text: str) -> str:
    table = {"n": "\n", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), m.group(1)), text)


@dataclass(frozen=True)
class TestRecord:
    """One test as Allure recorded it."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    full_name: str
    status: str
    severity: str
    check_id: str | None
    message: str
    start: datetime | None
    stop: datetime | None
    waived: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    outcome: str | None = None  # the suite's own outcome (smartid.verify.outcome.Status)
    blocked_by: str | None = None  # "CONN-001[idm]: <its line>"
    category: str | None = None

    @property
    def state(self) -> str:
        """How the suite counts the test: its own outcome where the suite gave one that Allure
        has no status for (blocked, waived, manual), else Allure's status."""
        if self.outcome in ("blocked", "waived", "manual"):
            return self.outcome
        return self.status

    @property
    def ident(self) -> str:
        """The check id, or the test's name where the test has none."""
        return self.check_id or self.full_name or self.name

    @property
    def reason(self) -> str:
        """The failure's or skip's message in one line; a check's failure (pytest.fail) without
        pytest's "Failed: " in front, since the check's own line names the check."""
        for line in self.message.splitlines():
            if line.strip():
                return " ".join(line.split()).removeprefix("Failed: ")[:300]
        return ""


def _time(millis: Any) -> datetime | None:
    if not isinstance(millis, int | float):
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


# Written by the check glue on a check that could not run; Allure shows such a check as skipped.


def _record(data: Mapping[str, Any]) -> TestRecord:
    labels: dict[str, list[str]] = {}
    for label in data.get("labels", []):
        labels.setdefault(str(label.get("name")), []).append(str(label.get("value")))
    message = str((data.get("statusDetails") or {}).get("message") or "")
    waived = labels.get(WAIVED_LABEL, [None])[-1]
    return TestRecord(
        name=str(data.get("name", "")),
        full_name=str(data.get("fullName", "")),
        status=str(data.get("status", "unknown")),
        severity=labels.get("severity", ["normal"])[-1],
        check_id=labels.get(CHECK_ID_LABEL, [None])[-1],
        message=message,
        start=_time(data.get("start")),
        stop=_time(data.get("stop")),
        waived=waived,
        warnings=tuple(labels.get(WARNING_LABEL, [])),
        outcome=labels.get(OUTCOME_LABEL, [None])[-1],
        blocked_by=labels.get(BLOCKED_LABEL, [None])[-1],
        category=labels.get(CATEGORY_LABEL, [None])[-1],
    )


def read_results(results_dir: Path) -> list[TestRecord]:
    """Every test result in the folder, in a stable order."""
    records = []
    for path in sorted(results_dir.glob("*-result.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a result cut short by a killed run: the others still count
        if isinstance(data, dict):
            records.append(_record(data))
    return sorted(records, key=lambda r: (r.start or datetime.min.replace(tzinfo=UTC), r.name))
