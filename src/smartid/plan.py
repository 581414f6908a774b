"""Desired versus actual: the changes a setup step makes, or would make under `--plan`.

A step hands each value it makes true to `converge()`: read, compare, record the difference as a
`Change`, write (not under `--plan`), read back. Where no interface can write the value, a
read-only observation may prove it right, else the step is manual with its instruction. Either way
the change is recorded, so the same code yields the plan, the report of what was done, "unchanged"
when nothing differs and the administrator's to-do list. Values shown are
display strings: a secret is shown by `Secret.__str__` (masked), never by its value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, NoReturn, TypeVar

from smartid.errors import NotFoundError, ReadBackError
from smartid.masking import MASKER

__all__ = ["Change", "Changes", "Converged", "ManualStep", "converge", "write_plan"]

Action = Literal["create", "update", "upload", "set", "add", "remove", "run", "write"]
T = TypeVar("T")
H = TypeVar("H")


@dataclass(frozen=True)
class Change:
    step: str
    object: str
    field: str
    action: Action
    old: str | None = None
    new: str | None = None

    def __str__(self) -> str:
        shown_old = self.old if self.old is not None else "none"
        arrow = f": {shown_old} -> {self.new}" if self.old is not None or self.new else ""
        return MASKER.mask(f"{self.action} {self.object} {self.field}{arrow}")


@dataclass
class Changes:
    """The changes of one step; `apply` is False under `--plan`."""

    step: str
    apply: bool
    recorded: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    proofs: list[str] = field(default_factory=list)
    # How a manual step leaves the step: the test runner's skip; by default ManualStep is raised.
    on_manual: Callable[[str], NoReturn] | None = None

    def note(self, text: str) -> None:
        """Something the user must know or do, shown with the step in the run's summary."""
        self.notes.append(MASKER.mask(text))

    def change(
        self,
        obj: str,
        field_name: str,
        action: Action,
        write: Callable[[], T],
        *,
        old: object = None,
        new: object = None,
    ) -> T | None:
        """Record a change and, unless planning, make it; the write's result is returned."""
        self.recorded.append(
            Change(
                self.step,
                obj,
                field_name,
                action,
                None if old is None else MASKER.mask(str(old)),
                None if new is None else MASKER.mask(str(new)),
            )
        )
        return write() if self.apply else None

    def manual(self, instruction: str) -> NoReturn:
        """Leave the step to the administrator: `instruction` says what to do by hand."""
        __tracebackhide__ = True
        text = MASKER.mask(instruction)
        if self.on_manual is not None:
            self.on_manual(text)
        raise ManualStep(text)

    @property
    def unchanged(self) -> bool:
        return not self.recorded


Outcome = Literal["unchanged", "changed", "planned", "proven"]


class ManualStep(Exception):
    """A step that only the administrator can do; the message is the instruction."""


@dataclass(frozen=True)
class Converged:
    """How one value came to be as the site wants it."""

    outcome: Outcome
    seen: str | None = None  # proven: what the read-only observation showed


def _equal(have: object, want: object) -> bool:
    return have == want


def converge(
    changes: Changes,
    obj: str,
    field_name: str,
    action: Action,
    *,
    want: T,
    value: Callable[[H], T],
    read: Callable[[], H] | None,
    write: Callable[[H | None], object] | None,
    manual: str,
    where: str,
    observe: Callable[[], H | None] | None = None,
    seen_in: str = "a read-only observation",
    same: Callable[[T, T], bool] = _equal,
    show: Callable[[T], str] = str,
) -> Converged:
    """Make one value of a target what the site wants: the read / compare / plan / apply /
    read-back sequence every setup step shares, with its manual branch.

    `read` gives the object through an interface that can also `write` it, `value` the part of
    it this step makes equal to `want`. `read` raises NotFoundError when the object is absent,
    which under `--plan` means that an earlier pending change brings it; `write` gets the object
    (None when absent). Where no interface can write the value, `read` and `write` are None: a
    read-only `observe` (None when `seen_in` does not show the object) may still prove the value
    right, else the step is left to the administrator (`Changes.manual`) with the instruction
    and the value now seen. A write that reads back as anything but `want` raises ReadBackError
    naming `where`."""
    if read is None or write is None:
        seen = observe() if observe is not None else None
        if seen is not None and same(value(seen), want):
            shown = show(value(seen))
            changes.proofs.append(MASKER.mask(f"{obj} {field_name}: {shown}, seen in {seen_in}"))
            return Converged("proven", seen=shown)
        now = f" (now: {show(value(seen))})" if seen is not None else ""
        __tracebackhide__ = True  # a test runner reports the manual step at the step's line
        changes.manual(manual + now)
    try:
        current: H | None = read()
    except NotFoundError:
        if changes.apply:
            raise
        current = None
    if current is not None and same(value(current), want):
        return Converged("unchanged")
    changes.change(
        obj,
        field_name,
        action,
        lambda: write(current),
        old="absent" if current is None else show(value(current)),
        new=show(want),
    )
    if not changes.apply:
        return Converged("planned")
    after = value(read())
    if not same(after, want):
        raise ReadBackError(
            where,
            f"{obj} {field_name} reads {show(after)} after the {action}, not {show(want)}",
        )
    return Converged("changed")


def write_plan(path: Path, changes: list[Change], manual: Sequence[tuple[str, str]] = ()) -> None:
    """`reports/plan.json`: one entry per change (step, object, field, action, old, new), and
    the steps left to the administrator (step, instruction)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "changes": [asdict(change) for change in changes],
        "pending": len(changes),
        "manual": [{"step": step, "instruction": text} for step, text in manual],
    }
    path.write_text(MASKER.mask(json.dumps(document, indent=2)) + "\n", encoding="utf-8")
