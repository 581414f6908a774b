"""converge(): the read / compare / plan / apply / read-back sequence of every setup step and its
manual branch, from a table, without a lab."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import pytest

from smartid.errors import NotFoundError, ReadBackError
from smartid.masking import MASKER, Secret
from smartid.plan import Changes, ManualStep, converge


@dataclass
class Target:
    """One value behind a read and a write; `sticky` makes writes not stick."""

    value: str | None
    sticky: bool = False
    writes: list[str | None] = field(default_factory=list)

    def read(self) -> str:
        if self.value is None:
            raise NotFoundError("https://idm.example/x", 404, "no such object")
        return self.value

    def write(self, current: str | None) -> None:
        self.writes.append(current)
        if not self.sticky:
            self.value = "wanted"


def _run(
    target: Target,
    *,
    apply: bool = True,
    writable: bool = True,
    observe: Callable[[], str | None] | None = None,
) -> tuple[str, Changes]:
    changes = Changes(step="SETUP-999", apply=apply)
    result = converge(
        changes,
        "object 'o'",
        "field",
        "update",
        want="wanted",
        value=lambda v: v,
        read=target.read if writable else None,
        write=target.write if writable else None,
        manual="In the UI set field to 'wanted'",
        where="https://idm.example/x",
        observe=observe,
        seen_in="the download",
    )
    return result.outcome, changes


@pytest.mark.parametrize(
    ("current", "apply", "outcome", "writes", "recorded"),
    [
        ("wanted", True, "unchanged", [], 0),
        ("wanted", False, "unchanged", [], 0),
        ("other", True, "changed", ["other"], 1),
        ("other", False, "planned", [], 1),
        (None, False, "planned", [], 1),  # absent: an earlier pending change brings it
    ],
)
def test_through_a_writable_interface(
    current: str | None, apply: bool, outcome: str, writes: list[str], recorded: int
) -> None:
    target = Target(current)
    got, changes = _run(target, apply=apply)
    assert (got, target.writes, len(changes.recorded)) == (outcome, writes, recorded)
    assert not changes.proofs


def test_a_change_shows_old_and_new() -> None:
    _, changes = _run(Target("other"), apply=False)
    assert str(changes.recorded[0]) == "update object 'o' field: other -> wanted"
    _, absent = _run(Target(None), apply=False)
    assert str(absent.recorded[0]) == "update object 'o' field: absent -> wanted"


def test_an_absent_object_is_an_error_when_applying() -> None:
    target = Target(None)
    with pytest.raises(NotFoundError):
        _run(target)
    assert target.writes == []


def test_a_write_that_does_not_read_back_names_the_target() -> None:
    with pytest.raises(ReadBackError) as caught:
        _run(Target("other", sticky=True))
    assert str(caught.value) == (
        "https://idm.example/x: object 'o' field reads other after the update, not wanted"
    )


@pytest.mark.parametrize(
    ("seen", "outcome", "instruction"),
    [
        ("wanted", "proven", None),
        ("other", "manual", "In the UI set field to 'wanted' (now: other)"),
        (None, "manual", "In the UI set field to 'wanted'"),
    ],
)
def test_without_a_writable_interface(seen: str | None, outcome: str, instruction: str) -> None:
    target = Target("other")
    if outcome == "manual":
        with pytest.raises(ManualStep) as caught:
            _run(target, writable=False, observe=lambda: seen)
        assert str(caught.value) == instruction
        return
    got, changes = _run(target, writable=False, observe=lambda: seen)
    assert got == "proven"
    assert changes.proofs == ["object 'o' field: wanted, seen in the download"]
    assert target.writes == []


def test_without_an_observation_the_step_is_manual_even_under_plan() -> None:
    with pytest.raises(ManualStep):
        _run(Target("wanted"), apply=False, writable=False)


def test_the_manual_hook_replaces_the_exception_and_the_instruction_is_masked() -> None:
    secret = Secret("s3cret-value-42", "test")
    MASKER.register(secret)
    left: list[str] = []

    def hook(text: str) -> NoReturn:
        left.append(text)
        raise SystemExit

    changes = Changes(step="SETUP-999", apply=True, on_manual=hook)
    with pytest.raises(SystemExit):
        changes.manual("set the password to s3cret-value-42")
    assert len(left) == 1
    assert "s3cret-value-42" not in left[0]
    assert left[0].startswith("set the password to ")
