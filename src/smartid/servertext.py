"""A server's own words, made fit to appear in one of the suite's sentences.

What a server writes into an error page is untrusted: it may be long, span lines, carry control
characters (a terminal escape), repeat a secret the suite sent, or be a stack trace that holds a
database password. `server_line` keeps one short line with the known secrets masked, and of a
stack trace only the exception's class: the status and the endpoint say the rest.
"""

from __future__ import annotations

import re

from smartid.masking import MASKER

__all__ = ["MAX_SHOWN", "server_line"]

MAX_SHOWN = 120
# How much of a body is looked at: the line shown comes from its start.
_WINDOW = 8 * 1024
_TRACE = re.compile(
    r"Traceback \(most recent call last\)|\bat java\.|^\s*at [\w$.<>]+\(|Caused by:|Exception\b",
    re.MULTILINE,
)
_EXCEPTION_CLASS = re.compile(r"\b((?:[A-Za-z_][\w$]*\.)*[A-Za-z_][\w$]*(?:Exception|Error))\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def server_line(text: str, limit: int = MAX_SHOWN) -> str:
    """One line of at most `limit` characters from a server's text; "" when nothing is left."""
    window = MASKER.mask(text[:_WINDOW])
    if _TRACE.search(window):
        found = _EXCEPTION_CLASS.search(window)
        name = _cut(found.group(1), 80) if found else ""
        return f"a stack trace ({name}), not repeated" if name else "a stack trace, not repeated"
    title = _TITLE.search(window)
    if title is not None:
        window = title.group(1)
    elif window.lstrip().startswith("<"):
        window = _TAG.sub(" ", window)
    for line in window.splitlines():
        shown = " ".join(_CONTROL.sub(" ", line).split())
        if shown:
            return _cut(MASKER.mask(shown), limit)
    return ""
