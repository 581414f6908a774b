"""The Allure results folder as data (docs/operations.md).

A run leaves, besides allure-pytest's `*-result.json` files, two files the suite writes itself:
`environment.properties` (what ran against what, never a secret) and `categories.json` (how
failures are grouped). The nightly reads the folder back into one `TestRecord` per test.

The categories are written twice from the one table below: into `categories.json` in Allure 2's
format (read by Allure 2 and by Allure 3's classic plugin) and into the Allure 3 configuration
(`smartid.report.html`), whose default "awesome" report reads categories from its configuration
only. The expressions are written to mean the same in Java (Allure 2 matches the whole message),
JavaScript (Allure 3 searches it) and Python (the summary searches it): `[\\s\\S]*` instead of a
DOTALL flag, no inline flags, no look-behind.
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
from smartid.report.seam import CHECK_ID_LABEL, WAIVED_LABEL, WARNING_LABEL

__all__ = [
    "CATEGORIES",
    "Category",
    "TestRecord",
    "categorize",
    "read_environment",
    "read_results",
    "write_categories",
    "write_environment",
]

_ANY = r"[\s\S]*"


@dataclass(frozen=True)
class Category:
    """A group of failures: by status, and by a regular expression on the failure's message."""

    name: str
    statuses: tuple[str, ...]
    message: str | None = None

    def matches(self, status: str, message: str) -> bool:
        if status not in self.statuses:
            return False
        return self.message is None or re.search(self.message, message) is not None

    def as_allure(self) -> dict[str, Any]:
        """Allure 2's categories.json entry; Allure 3 accepts the same keys in its config."""
        entry: dict[str, Any] = {"name": self.name, "matchedStatuses": list(self.statuses)}
        if self.message is not None:
            entry["messageRegex"] = self.message
        return entry


def _words(*words: str) -> str:
    return _ANY + "(" + "|".join(words) + ")" + _ANY


_PROBLEMS = ("failed", "broken")
# First match wins, as in Allure: a TLS error is "Trust / TLS" before it is a connection problem.
CATEGORIES: tuple[Category, ...] = (
    Category(
        "Trust / TLS",
        _PROBLEMS,
        _words(
            "TLSError",
            "SSLError",
            "[Hh]andshake",
            "TLSv1",
            "TLS ",
            "SSL",
            "CA bundle",
            "[Cc]ertificate (verify|has expired|is not yet valid|chain)",
            "[Ss]elf-signed",
            "is signed by itself",
            "presented chain",
            "[Hh]ostname mismatch",
            "is valid for",
            "expired on",
            "expires on",
            "days of validity",
            "-bit [A-Za-z]+ key",
            "is signed with",
            "[Cc]lient certificate",
        ),
    ),
    Category(
        "Connectivity",
        _PROBLEMS,
        _words(
            "ConnectError",
            "TimeoutError",
            "ConnectionError",
            "[Rr]efused",
            "[Uu]nreachable",
            "[Tt]imed out",
            "[Nn]ot resolve",
            "[Nn]ame or service not known",
            "[Cc]onnection (reset|aborted|closed)",
            "[Nn]o route to host",
            "does not answer",
        ),
    ),
    Category(
        "Authentication",
        _PROBLEMS,
        _words(
            "AuthenticationError",
            "HTTP 401",
            "HTTP 403",
            "[Uu]nauthori[sz]ed",
            "[Ff]orbidden",
            "[Cc]redential",
            "[Pp]assword",
            "[Tt]oken",
            "[Ff]ingerprint",
            "[Aa]nonymous",
        ),
    ),
    Category(
        "Configuration drift",
        ("failed",),
        _words(
            "[Dd]rift",
            "[Dd]eclared",
            "[Dd]iffer",
            "[Mm]ismatch",
            "[Ee]xpected",
            "[Bb]inding",
            "[Dd]ata pool",
            "[Ss]ub-process",
            "not installed",
            "[Mm]issing",
        ),
    ),
    # Whatever else broke is the suite's own error (or the target's, in a way no check foresaw).
    Category("Suite error", ("broken",)),
)


def categorize(status: str, message: str) -> str | None:
    for category in CATEGORIES:
        if category.matches(status, message):
            return category.name
    return None


def write_categories(results_dir: Path) -> Path:
    path = results_dir / "categories.json"
    entries = [category.as_allure() for category in CATEGORIES]
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return path


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
    # "blocked": the check did not run because the check named in `blocked_by` failed first.
    outcome: str | None = None
    blocked_by: str | None = None

    @property
    def ident(self) -> str:
        """The check id, or the test's name where the test has none."""
        return self.check_id or self.full_name or self.name

    @property
    def reason(self) -> str:
        """The failure's or skip's message in one line."""
        for line in self.message.splitlines():
            if line.strip():
                return " ".join(line.split())[:300]
        return ""


def _time(millis: Any) -> datetime | None:
    if not isinstance(millis, int | float):
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


# Written by the check glue on a check that could not run; Allure shows such a check as skipped.
_OUTCOME_LABEL = "smartid_outcome"
_BLOCKED_BY_LABEL = "blocked_by"


def _record(data: Mapping[str, Any]) -> TestRecord:
    labels: dict[str, list[str]] = {}
    for label in data.get("labels", []):
        labels.setdefault(str(label.get("name")), []).append(str(label.get("value")))
    message = str((data.get("statusDetails") or {}).get("message") or "")
    waived = labels.get(WAIVED_LABEL, [None])[-1]
    skip_reason = message.removeprefix("Skipped: ")
    if waived is None and data.get("status") == "skipped" and skip_reason.startswith("waived:"):
        waived = " ".join(skip_reason.split())
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
        outcome=labels.get(_OUTCOME_LABEL, [None])[-1],
        blocked_by=labels.get(_BLOCKED_BY_LABEL, [None])[-1],
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
