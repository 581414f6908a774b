"""The reporting seam: the only module that imports allure.

Everything else calls `step()` and the `attach_*()` functions; each masks every secret the run knows
before anything reaches the report. Outside a pytest run with allure-pytest active the calls are
harmless no-ops, so the library works from a REPL.

The pytest glue (`fixtures/reporting.py`) also labels each test through `label_test()`, records
each test's outcome with `label_outcome()`, and has `install_result_masking()` mask every result
allure-pytest writes, including what it takes from pytest itself (exception messages, parameters,
names). A check that finds something worth a warning but not a failure calls `warn()`: the test
passes, and the warning shows in the report and in the terminal summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import allure  # noqa: TID251 - this module is the seam
import allure_commons
from allure_commons.logger import AllureFileLogger

from smartid.masking import MASKER, find_leaks

__all__ = [
    "BLOCKED_LABEL",
    "CATEGORY_LABEL",
    "CHECK_ID_LABEL",
    "COMPONENT_LABEL",
    "OUTCOME_LABEL",
    "SEVERITIES",
    "SITE_LABEL",
    "WAIVED_LABEL",
    "WARNING_LABEL",
    "Labels",
    "attach_json",
    "attach_pem",
    "attach_text",
    "find_leaks",
    "install_fewer_files",
    "install_log_masking",
    "install_result_masking",
    "label_outcome",
    "label_test",
    "labels_for",
    "step",
    "take_warnings",
    "uninstall_fewer_files",
    "uninstall_result_masking",
    "warn",
]

SEVERITIES = ("blocker", "critical", "normal", "minor")
CHECK_ID_LABEL = "check_id"
WARNING_LABEL = "warning"
WAIVED_LABEL = "waived"
OUTCOME_LABEL = "smartid_outcome"
BLOCKED_LABEL = "blocked_by"
CATEGORY_LABEL = "smartid_category"
COMPONENT_LABEL = "component"
SITE_LABEL = "site"
# The ids checks and setup steps start their docstring with (a waiver's check without its case).
_CHECK_ID = re.compile(r"^[A-Z]+-\d{3}$")
# allure's dynamic API is untyped; one Any-typed handle keeps mypy --strict quiet about each call.
_dynamic: Any = allure.dynamic


@contextmanager
def step(title: str) -> Iterator[None]:
    """An Allure step whose title is masked."""
    with allure.step(MASKER.mask(title)):
        yield


def attach_text(name: str, text: str) -> None:
    allure.attach(
        MASKER.mask(text), name=MASKER.mask(name), attachment_type=allure.attachment_type.TEXT
    )


def attach_json(name: str, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    allure.attach(
        MASKER.mask(text), name=MASKER.mask(name), attachment_type=allure.attachment_type.JSON
    )


def attach_pem(name: str, pem: str) -> None:
    """A certificate in PEM; private keys are refused, never attached."""
    if "PRIVATE KEY" in pem:
        raise ValueError(f"attachment '{name}' holds a private key and is not attached")
    allure.attach(
        MASKER.mask(pem),
        name=MASKER.mask(name),
        extension="pem",
        attachment_type=allure.attachment_type.TEXT,
    )


@dataclass(frozen=True)
class Labels:
    """What the report shows about one test besides its outcome."""

    title: str | None = None
    check_id: str | None = None
    epic: str | None = None
    story: str | None = None
    doc_url: str | None = None
    severity: str = "normal"
    site: str | None = None


def labels_for(
    doc: str | None,
    *,
    epic: str | None = None,
    story: str | None = None,
    doc_url: str | None = None,
    severity: str | None = None,
    case: str | None = None,
    site: str | None = None,
) -> Labels:
    """The labels of a test from its docstring, its module's EPIC/STORY/DOC_URL and its severity.

    The title is the docstring's first paragraph (`TLS-003 The leaf certificate is valid.`), with
    the parametrized case appended; its first word is the check id when it looks like `ABC-123`.
    """
    chosen = severity or "normal"
    if chosen not in SEVERITIES:
        raise ValueError(f"severity '{chosen}' is not one of {', '.join(SEVERITIES)}")
    paragraph = (doc or "").strip().split("\n\n", 1)[0]
    title = " ".join(paragraph.split()) or None
    first = title.split(" ", 1)[0] if title else ""
    check_id = first if _CHECK_ID.match(first) else None
    if title is not None and case:
        title = f"{title} [{case}]"
    return Labels(title, check_id, epic, story, doc_url, chosen, site)


def label_test(labels: Labels) -> None:
    """Label the running test; called while allure-pytest has the test open."""
    if labels.title is not None:
        _dynamic.title(MASKER.mask(labels.title))
    if labels.check_id is not None:
        _dynamic.label(CHECK_ID_LABEL, labels.check_id)
    if labels.epic:
        _dynamic.epic(labels.epic)
    if labels.story:
        _dynamic.story(labels.story)
    if labels.doc_url:
        _dynamic.link(labels.doc_url, name="Vendor documentation")
    # A plain string: allure-pytest would write an enum member as its repr.
    _dynamic.label("severity", labels.severity)
    if labels.site:
        _dynamic.label(SITE_LABEL, labels.site)
        # Allure 3 keys a test's history by its test case and its parameters, never by a label:
        # a hidden parameter keeps one test on two sites two trends also where their results
        # meet in one report (allure-pytest's own history id takes it in as well).
        _dynamic.parameter(SITE_LABEL, labels.site, mode=allure.parameter_mode.HIDDEN)


_warnings: list[str] = []
_warnings_lock = threading.Lock()


def warn(text: str) -> None:
    """A finding that does not fail the check: shown on the test in the report (tag, label and
    attachment) and, through the pytest glue, in the terminal summary under "Smart ID warnings"."""
    masked = MASKER.mask(" ".join(text.split()))
    with _warnings_lock:
        _warnings.append(masked)
    _dynamic.tag(WARNING_LABEL)
    _dynamic.label(WARNING_LABEL, masked)
    allure.attach(masked, name="Warning", attachment_type=allure.attachment_type.TEXT)


def take_warnings() -> list[str]:
    """The warnings recorded since the last call (the pytest glue files them under the test)."""
    with _warnings_lock:
        taken = list(_warnings)
        _warnings.clear()
    return taken


def label_outcome(
    status: str,
    *,
    blocked_by: str | None = None,
    waived: str | None = None,
    category: str | None = None,
    component: str | None = None,
) -> None:
    """Record on the running test how it ended, as the suite sees it (the summary reads these
    labels, and the report's categories match `smartid_category`)."""
    _dynamic.label(OUTCOME_LABEL, status)
    for name, value in (
        (BLOCKED_LABEL, blocked_by),
        (WAIVED_LABEL, waived),
        (CATEGORY_LABEL, category),
        (COMPONENT_LABEL, component),
    ):
        if value:
            _dynamic.label(name, MASKER.mask(" ".join(value.split())))


def _mask_tree(node: Any) -> Any:
    """Mask every string inside an allure-commons model object (attrs classes, lists, strings)."""
    if isinstance(node, str):
        return MASKER.mask(node)
    if isinstance(node, list):
        node[:] = [_mask_tree(item) for item in node]
        return node
    if isinstance(node, Enum) or not hasattr(node, "__attrs_attrs__"):
        return node
    for name, value in vars(node).items():
        # The history id is a digest that keeps a test's trend across runs; it shows no value.
        if name not in ("uuid", "historyId", "testCaseId"):
            setattr(node, name, _mask_tree(value))
    return node


class _ResultMasker:
    """Runs before allure-commons' file writer (tryfirst) and masks each result in place."""

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result: Any) -> None:
        _mask_tree(result)

    @allure_commons.hookimpl(tryfirst=True)
    def report_container(self, container: Any) -> None:
        _mask_tree(container)


_RESULT_MASKER = _ResultMasker()


def install_result_masking() -> None:
    """Mask every test result and fixture container before allure-pytest writes it.

    allure-pytest fills results from pytest itself: the exception message (`exconly()`), the
    parameters of a parametrized test and step arguments are written as they are. Attachments are
    not covered here: `attach_*()` mask their own, and the pytest glue masks captured output.
    """
    if not allure_commons.plugin_manager.is_registered(_RESULT_MASKER):
        allure_commons.plugin_manager.register(_RESULT_MASKER)


def uninstall_result_masking() -> None:
    if allure_commons.plugin_manager.is_registered(_RESULT_MASKER):
        allure_commons.plugin_manager.unregister(_RESULT_MASKER)


class _FewerFiles:
    """allure-commons' file writer, minus the files that show nothing new in a report.

    allure-pytest writes a container file for every fixture of every test, and a new file for
    every attachment. A container is written only where it shows something in a report: it has
    tests (a parametrized test's argument is, to allure-pytest, a fixture without any), and one of
    its fixtures has a step, an attachment, a message or an outcome other than passed (the TLS
    observations with their facts; a fixture that broke). The rest would only list the suite's
    fixture names and times in each test's set-up and tear-down (about 3 kB of each result in
    the report). An attachment whose bytes the run already wrote (an endpoint's TLS facts,
    attached to each of its TLS checks) is not written again: the results that carry it name
    the first file, so the report holds it once too (Allure Report 3 keys an attachment by its
    file name). Creating a file is what costs here, more than writing it: on some disks a new
    inode costs 0.1-1 ms of CPU, and a verify wrote about 210 files.
    """

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._first: dict[bytes, str] = {}  # the file name each attachment's bytes went to
        self._same: dict[str, str] = {}  # an attachment's file name -> the file that holds it
        self._lock = threading.Lock()

    def _point_at_first(self, item: Any) -> None:
        """Each attachment of `item`, its steps, befores and afters names the file written."""
        for attachment in getattr(item, "attachments", None) or ():
            attachment.source = self._same.get(attachment.source, attachment.source)
        for field in ("steps", "befores", "afters"):
            for child in getattr(item, field, None) or ():
                self._point_at_first(child)

    @allure_commons.hookimpl
    def report_result(self, result: Any) -> None:
        with self._lock:
            self._point_at_first(result)
        self.writer.report_result(result)

    @allure_commons.hookimpl
    def report_container(self, container: Any) -> None:
        if not container.children or not any(
            _shows_something(fixture) for fixture in container.befores + container.afters
        ):
            return
        with self._lock:
            self._point_at_first(container)
        self.writer.report_container(container)

    @allure_commons.hookimpl
    def report_attached_file(self, source: Any, file_name: str) -> None:
        self.writer.report_attached_file(source, file_name)

    @allure_commons.hookimpl
    def report_attached_data(self, body: str | bytes, file_name: str) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        # The file name's extension is the attachment's type: the same bytes as text and as JSON
        # are two attachments.
        key = hashlib.sha256(data).digest() + Path(file_name).suffix.encode()
        with self._lock:
            first = self._first.get(key)
            if first is not None:
                self._same[file_name] = first
                return
            self._first[key] = file_name
        self.writer.report_attached_data(body, file_name)

    @allure_commons.hookimpl
    def report_globals(self, globals_item: Any) -> None:
        self.writer.report_globals(globals_item)


def _shows_something(fixture: Any) -> bool:
    """A fixture's set-up or tear-down shows more than its name and time in a report."""
    status = getattr(fixture.status, "value", fixture.status)
    return bool(
        fixture.steps
        or fixture.attachments
        or fixture.parameters
        or fixture.statusDetails
        or status not in (None, "passed", "unknown")
    )


# The file writers replaced by install_fewer_files(), each with the name it was registered under.
_replaced: list[tuple[Any, str | None, _FewerFiles]] = []


def install_fewer_files() -> None:
    """Put `_FewerFiles` in place of allure-pytest's file writer.

    uninstall_fewer_files() puts the writer back, under its name, before allure-pytest's own
    clean-up unregisters it."""
    manager = allure_commons.plugin_manager
    for plugin in list(manager.get_plugins()):
        if type(plugin) is AllureFileLogger:
            name = manager.get_name(plugin)
            manager.unregister(plugin)
            stand_in = _FewerFiles(plugin)
            manager.register(stand_in)
            _replaced.append((plugin, name, stand_in))


def uninstall_fewer_files() -> None:
    manager = allure_commons.plugin_manager
    while _replaced:
        writer, name, stand_in = _replaced.pop()
        if manager.is_registered(stand_in):
            manager.unregister(stand_in)
        if not manager.is_registered(writer):
            manager.register(writer, name)


def _mask_record(record: logging.LogRecord) -> None:
    message = record.getMessage()
    record.msg = MASKER.mask(message)
    record.args = None


_installed = False


def install_log_masking() -> None:
    """Mask every log record as it is created, whichever logger or handler it then reaches."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
