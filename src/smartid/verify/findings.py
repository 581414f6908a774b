"""The findings of one check and the one failure they make, and waivers (docs/checks.md).

A check collects every finding it sees (`Findings`) and fails once, at its end, with one line per
finding naming the endpoint or object, what was observed and what is required. A finding of
severity "warning" does not fail the check. A waiver from the site file turns a failure of its
check, or of one case of it, into a skip until its date has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from smartid.site import Waiver
from smartid.tls.judge import Finding, Severity

__all__ = ["Findings", "WaiverStatus", "failure_text", "finding_line", "waiver_status"]


class Findings:
    """Every finding of one check, in the order seen; the check fails once, at its end."""

    def __init__(self, check: str, severity: Severity) -> None:
        self.check = check
        self.severity = severity
        self._found: list[Finding] = []
        self._details: list[str] = []

    def add(
        self,
        key: str,
        observed: str,
        required: str,
        target: str,
        *,
        severity: Severity | None = None,
    ) -> None:
        """One finding; its severity is the check's unless given ("warning" passes)."""
        self._found.append(Finding(key, severity or self.severity, observed, required, target))

    def extend(self, findings: Iterable[Finding], *, target: str | None = None) -> None:
        """Findings a judge made, under another target name if given."""
        for finding in findings:
            self._found.append(replace(finding, target=target) if target else finding)

    def detail(self, text: str) -> None:
        """Text shown below the findings when the check fails (a diff, say)."""
        self._details.append(text)

    @property
    def all(self) -> tuple[Finding, ...]:
        return tuple(self._found)

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self._found if f.severity != "warning")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self._found if f.severity == "warning")

    @property
    def details(self) -> tuple[str, ...]:
        return tuple(self._details)


def finding_line(finding: Finding) -> str:
    return (
        f"[{finding.severity}] {finding.target}: {finding.observed} (required: {finding.required})"
    )


def failure_text(
    check: str,
    failures: Sequence[Finding],
    *,
    errors: Sequence[str] = (),
    details: Sequence[str] = (),
    note: str | None = None,
) -> str:
    """The one failure of a check: a single finding as one line, several as a headline and one
    line each; then the note and the details."""
    shown = [finding_line(f) for f in failures] + list(errors)
    if len(shown) == 1:
        lines = [f"{check}: {shown[0]}"]
    else:
        lines = [f"{check}: {len(shown)} findings", *(f"- {line}" for line in shown)]
    if note:
        lines.append(note)
    lines += [text.rstrip("\n") for text in details]
    return "\n".join(lines)


# --- waivers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaiverStatus:
    """The waiver that applies to a case of a check today, and the one that no longer does."""

    active: Waiver | None
    expired: Waiver | None

    @property
    def skip_reason(self) -> str | None:
        w = self.active
        return None if w is None else f"waived: {w.reason} ({w.owner}, until {w.until})"

    @property
    def expired_note(self) -> str | None:
        w = self.expired
        if w is None or self.active is not None:
            return None
        return f"the waiver of {w.owner} ({w.reason}) expired after {w.until} and no longer applies"


def _precedence(waiver: Waiver) -> tuple[bool, date]:
    return waiver.case is not None, waiver.until


def waiver_status(
    waivers: Sequence[Waiver], check: str, case: str | None, today: date
) -> WaiverStatus:
    """The waivers of `check` that cover `case` (its test id, None for a check without cases):
    those of the whole check (`TLS-005`) and those of this case alone (`TLS-005[hermod]`).

    A waiver applies up to and including its `until` day. Where several apply, a waiver of this
    case wins over a waiver of the whole check, even one that runs longer: it was written about
    this very case, so its reason, owner and date are the ones to show; once it has expired, a
    waiver of the whole check that still runs applies. Between waivers of the same scope the
    latest `until` wins. The same order picks the expired waiver that a failure names."""
    mine = [w for w in waivers if w.check_id == check and w.case in (None, case)]
    active = [w for w in mine if today <= w.until]
    expired = [w for w in mine if today > w.until]
    return WaiverStatus(
        active=max(active, key=_precedence, default=None),
        expired=max(expired, key=_precedence, default=None),
    )
