"""A server's own words reach a message as one short line: control characters removed, known
secrets masked, a stack trace named by its exception's class and not repeated."""

from __future__ import annotations

import pytest

from smartid.masking import MASKER, Secret
from smartid.servertext import MAX_SHOWN, server_line

SECRET = "Db-Secret-Pass-77"


@pytest.fixture(autouse=True)
def _known_secret() -> None:
    MASKER.register(Secret(SECRET, "test"))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("still starting", "still starting", id="plain"),
        pytest.param("\n\n  first line  \nsecond", "first line", id="first-line"),
        pytest.param("bad\x1b[2J\x07 input\r", "bad [2J input", id="control-characters"),
        pytest.param("a\u202eb", "a b", id="bidi-override"),
        pytest.param(f"login failed for {SECRET}", "login failed for ****", id="known-secret"),
        pytest.param("x" * 500, "x" * (MAX_SHOWN - 3) + "...", id="long"),
        pytest.param(
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "502 Bad Gateway",
            id="html-title",
        ),
        pytest.param("<html><body><h1>Down</h1></body></html>", "Down", id="html-no-title"),
        pytest.param(
            "java.lang.IllegalStateException: password=hunter22\n\tat com.x.Y.z(Y.java:1)",
            "a stack trace (java.lang.IllegalStateException), not repeated",
            id="java-trace",
        ),
        pytest.param(
            'Traceback (most recent call last):\n  File "x.py"\nKeyError: "pw hunter22"',
            "a stack trace (KeyError), not repeated",
            id="python-trace",
        ),
        pytest.param("Caused by: something", "a stack trace, not repeated", id="caused-by"),
        pytest.param("", "", id="empty"),
        pytest.param("\x00\x01\n\x02", "", id="only-control-characters"),
    ],
)
def test_server_text_becomes_one_short_line(text: str, shown: str) -> None:
    assert server_line(text) == shown
