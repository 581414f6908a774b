"""How one test of the suite ended, as data (docs/checks.md, "Outcomes").

Every check and setup step ends in one `Outcome`, made where the outcome arises: the check's
findings, the fact a check was blocked on, the waiver that applied, the instruction of a manual
step. The terminal's "Smart ID verify" block, the Allure labels, JUnit's properties and
`summary.json` all render from it; nothing reads an outcome back out of a message's words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from smartid.tls.judge import Finding

__all__ = [
    "CATEGORY_NAMES",
    "STATUSES",
    "Blocker",
    "Outcome",
    "Status",
    "category_of",
]

Status = Literal["passed", "failed", "error", "skipped", "blocked", "waived", "manual"]
STATUSES: tuple[Status, ...] = (
    "passed",
    "failed",
    "error",
    "skipped",
    "blocked",
    "waived",
    "manual",
)

# The failure categories of the report (Allure's "Categories"), in the order they are shown.
TRUST, CONNECTIVITY, AUTHENTICATION, DRIFT, SUITE = (
    "Trust / TLS",
    "Connectivity",
    "Authentication",
    "Configuration drift",
    "Suite error",
)
CATEGORY_NAMES = (TRUST, CONNECTIVITY, AUTHENTICATION, DRIFT, SUITE)

# Finding keys that name a connectivity problem whichever check saw them.
_CONNECTIVITY_KEYS = frozenset({"connect", "timeout", "protocol", "unreachable"})
_FAMILY = {"TLS": TRUST, "AUTH": AUTHENTICATION, "CONF": DRIFT, "DRIFT": DRIFT}
# What an expected error of the suite (its class name) says about the cause.
_ERROR_CATEGORY = {
    "TLSError": TRUST,
    "ConnectError": CONNECTIVITY,
    "TimeoutError": CONNECTIVITY,
    "AuthenticationError": AUTHENTICATION,
}


@dataclass(frozen=True)
class Blocker:
    """The check (one case of it) whose failure took away a fact another check needs, and its
    one line."""

    label: str  # "CONN-001[idm]"
    line: str

    def __str__(self) -> str:
        return f"blocked by {self.label}: {self.line}"


@dataclass(frozen=True)
class Outcome:
    """How one test ended. `line` is what a person reads first: the failure's headline, the
    skip's reason, the blocker's sentence, the waiver, the manual instruction."""

    status: Status
    check: str  # the check or step id, else the test's name
    case: str | None = None
    severity: str = "normal"
    component: str | None = None
    line: str = ""
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    blocked_by: Blocker | None = None
    waiver: str | None = None
    manual: str | None = None
    category: str | None = None
    details: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        return f"{self.check}[{self.case}]" if self.case else self.check

    @property
    def problem(self) -> bool:
        """Whether this outcome counts against the run (a failure or an error)."""
        return self.status in ("failed", "error")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "check": self.check,
            "case": self.case,
            "severity": self.severity,
            "component": self.component,
            "line": self.line,
            "findings": [vars(f) for f in self.findings],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "blocked_by": vars(self.blocked_by) if self.blocked_by else None,
            "waiver": self.waiver,
            "manual": self.manual,
            "category": self.category,
        }
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        status = str(data.get("status"))
        if status not in STATUSES:
            raise ValueError(f"outcome status '{status}' is not one of {', '.join(STATUSES)}")
        blocker = data.get("blocked_by")
        return cls(
            status=status,
            check=str(data.get("check", "")),
            case=data.get("case"),
            severity=str(data.get("severity", "normal")),
            component=data.get("component"),
            line=str(data.get("line", "")),
            findings=tuple(Finding(**f) for f in data.get("findings", ())),
            errors=tuple(data.get("errors", ())),
            warnings=tuple(data.get("warnings", ())),
            blocked_by=Blocker(**blocker) if isinstance(blocker, Mapping) else None,
            waiver=data.get("waiver"),
            manual=data.get("manual"),
            category=data.get("category"),
        )


def category_of(
    status: Status, check: str, findings: Sequence[Finding], error_types: Sequence[str] = ()
) -> str | None:
    """The failure category of a failed or broken test: from its findings' keys, the errors the
    suite raised and the check's family; None for any other outcome."""
    if status == "error":
        return SUITE
    if status != "failed":
        return None
    failing = [f for f in findings if f.severity != "warning"]
    if failing and all(f.key in _CONNECTIVITY_KEYS for f in failing):
        return CONNECTIVITY
    for name in error_types:
        if name in _ERROR_CATEGORY:
            return _ERROR_CATEGORY[name]
    family = check.split("-", 1)[0]
    if family == "CONN":
        return AUTHENTICATION if any(f.key == "refused" for f in failing) else CONNECTIVITY
    return _FAMILY.get(family, SUITE if not failing else DRIFT)
