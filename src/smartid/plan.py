"""Desired versus actual: the changes a setup step makes, or would make under `--plan`.

A step describes each difference it finds as a `Change` and hands the write to `Changes.apply()`.
In plan mode the write is not called; either way the change is recorded, so the same code yields
the plan, the report of what was done, and "unchanged" when nothing differs. Values shown are
display strings: a secret is shown by `Secret.__str__` (masked), never by its value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from smartid.masking import MASKER

__all__ = ["Change", "Changes", "write_plan"]

Action = Literal["create", "update", "upload", "set", "add", "remove", "run", "write"]
T = TypeVar("T")


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

    @property
    def unchanged(self) -> bool:
        return not self.recorded


def write_plan(path: Path, changes: list[Change]) -> None:
    """`reports/plan.json`: one entry per change (step, object, field, action, old, new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"changes": [asdict(change) for change in changes], "pending": len(changes)}
    path.write_text(MASKER.mask(json.dumps(document, indent=2)) + "\n", encoding="utf-8")
