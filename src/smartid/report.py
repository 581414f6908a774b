"""The reporting seam: the only module that imports allure.

Everything else calls `step()` and the `attach_*()` functions; each masks every secret the run knows
before anything reaches the report. Outside a pytest run with allure-pytest active the calls are
harmless no-ops, so the library works from a REPL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import allure  # noqa: TID251 - this module is the seam

from smartid.masking import MASKER, find_leaks

__all__ = [
    "attach_json",
    "attach_pem",
    "attach_text",
    "find_leaks",
    "install_log_masking",
    "step",
]


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
