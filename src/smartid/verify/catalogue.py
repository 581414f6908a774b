"""The catalogue of verify checks, read from their source without importing it (id, severity,
health, requirement), and how each check ended in a run's pytest JUnit report."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from defusedxml import ElementTree

__all__ = [
    "CHECK_ID",
    "CheckEntry",
    "CheckOutcome",
    "Status",
    "check_catalogue",
    "check_id",
    "read_junit",
]

CHECK_ID = re.compile(r"^([A-Z]+-\d{3})\b")


def check_id(doc: str | None) -> str | None:
    """The id a check's docstring starts with (`TLS-003 The leaf ...`), or None."""
    match = CHECK_ID.match((doc or "").strip())
    return match.group(1) if match else None


@dataclass(frozen=True)
class CheckEntry:
    """One check as its module declares it."""

    id: str
    module: str  # "test_tls"
    function: str  # "test_handshake_verifies"
    severity: str
    health: bool
    requirement: str  # the docstring's first sentence, after the id
    # The test function's arguments, in order: those the glue parametrizes give the check cases.
    arguments: tuple[str, ...] = ()


def _is_mark(node: ast.expr, name: str) -> bool:
    """`pytest.mark.<name>` or `pytest.mark.<name>(...)`, as written in the source."""
    target = node.func if isinstance(node, ast.Call) else node
    return (
        isinstance(target, ast.Attribute)
        and target.attr == name
        and isinstance(target.value, ast.Attribute)
        and target.value.attr == "mark"
    )


def _severity_mark(node: ast.FunctionDef) -> str:
    for decorator in node.decorator_list:
        if _is_mark(decorator, "severity") and isinstance(decorator, ast.Call):
            arguments = decorator.args
            if arguments and isinstance(arguments[0], ast.Constant):
                return str(arguments[0].value)
    return ""


def _module_marks(tree: ast.Module) -> list[ast.expr]:
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in statement.targets
        ):
            value = statement.value
            return list(value.elts) if isinstance(value, ast.List | ast.Tuple) else [value]
    return []


def check_catalogue(folder: Path) -> list[CheckEntry]:
    """Every check of the `test_*.py` modules in `folder`, read from the source without importing
    it: id and requirement from the docstring, severity and health from the markers, and the
    function's arguments."""
    entries: list[CheckEntry] = []
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        health = any(_is_mark(mark, "health") for mark in _module_marks(tree))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            doc = " ".join((ast.get_docstring(node) or "").split())
            found = check_id(doc)
            if found is None:
                continue
            requirement = doc.removeprefix(found).strip()
            severity = _severity_mark(node)
            arguments = tuple(a.arg for a in [*node.args.args, *node.args.kwonlyargs])
            entries.append(
                CheckEntry(found, path.stem, node.name, severity, health, requirement, arguments)
            )
    return entries


Status = Literal["passed", "failed", "skipped", "error", "blocked", "waived", "manual"]
# The suite's own outcomes of a skipped test, as the `smartid_outcome` property records them.
_SKIP_OUTCOMES: tuple[Status, ...] = ("blocked", "waived", "manual")


@dataclass(frozen=True)
class CheckOutcome:
    """How one check (one parametrized case of it) ended in a run, with its message."""

    check: str
    case: str | None
    status: Status
    message: str

    @property
    def label(self) -> str:
        return f"{self.check}[{self.case}]" if self.case else self.check


def read_junit(path: Path, catalogue: Sequence[CheckEntry]) -> list[CheckOutcome]:
    """The outcome of every check case a pytest JUnit XML report holds: pytest's status, or the
    suite's own outcome of a skip (blocked, waived, manual) from its `smartid_outcome`
    property."""
    by_function = {(e.module, e.function): e.id for e in catalogue}
    outcomes: list[CheckOutcome] = []
    for case in ElementTree.parse(path).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "")
        function, _, rest = name.partition("[")
        found = by_function.get((module, function))
        if found is None:
            continue
        status: Status = "passed"
        message = ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = "skipped" if child.tag == "skipped" else "failed"
                if child.tag == "error":
                    status = "error"
                # A failure's text is the whole report, its message attribute only the first
                # part; a skip's message attribute is its whole reason.
                message = child.text or child.get("message") or ""
                if child.tag == "skipped":
                    message = child.get("message") or message
        for prop in case.iter("property"):
            value = prop.get("value")
            if prop.get("name") == "smartid_outcome" and status == "skipped":
                status = next((known for known in _SKIP_OUTCOMES if known == value), status)
        outcomes.append(CheckOutcome(found, rest[:-1] if rest else None, status, message))
    return outcomes
