"""Having Hermod apply its application.yml ("refresh configuration", docs/vendor.md), by the
command the site names, run without a shell, or by a POST to the URL the site names.

Observe, then judge: `run_refresh()` never raises for what the refresh itself does; it returns a
frozen `RefreshResult` with the output (masked, bounded) and, when the refresh failed, the suite's
error saying so in one sentence, which the setup step raises after attaching the output.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from smartid import errors
from smartid.http import Timeouts, session
from smartid.masking import MASKER
from smartid.servertext import server_line

__all__ = ["MAX_OUTPUT", "Refresh", "RefreshResult", "run_refresh"]

# What is kept of a command's output or a URL's answer: enough to see why, never a flood.
MAX_OUTPUT = 16 * 1024
_SHOWN_LINE = 200
# A failure is one line: a long command is named by its start (the program and first arguments).
_SHOWN_COMMAND = 100


@dataclass(frozen=True, kw_only=True)
class Refresh:
    """One way to refresh Hermod: a command (argument list) or a URL, bounded by `timeout`."""

    command: tuple[str, ...] | None = None
    url: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 5.0
    ca_bundle: Path | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError("a refresh is a command or a URL")
        if self.command is not None and not self.command:
            raise ValueError("a refresh command names a program")
        if self.timeout <= 0:
            raise ValueError("a refresh timeout is positive")

    @property
    def how(self) -> str:
        """What the refresh does, in a few words (a command's arguments masked)."""
        if self.command is not None:
            shown = MASKER.mask(shlex.join(self.command))
            if len(shown) > _SHOWN_COMMAND:
                shown = shown[: _SHOWN_COMMAND - 3] + "..."
            return f"command '{shown}'"
        return f"POST {self.url}"

    @property
    def target(self) -> str:
        """How the refresh is named in a failure."""
        if self.command is not None:
            return f"Hermod refresh {self.how}"
        return f"Hermod refresh URL {self.url}"


@dataclass(frozen=True, kw_only=True)
class RefreshResult:
    target: str
    seconds: float
    output: str = ""  # masked and bounded
    error: errors.TargetError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_refresh(refresh: Refresh) -> RefreshResult:
    """Run the refresh once; what happened, failures included."""
    if refresh.command is not None:
        return _run_command(refresh, refresh.command)
    assert refresh.url is not None
    return _post(refresh, refresh.url)


# --- a command --------------------------------------------------------------------------------


def _run_command(refresh: Refresh, argv: tuple[str, ...]) -> RefreshResult:
    started = time.monotonic()
    # A file, not a pipe: a command that prints without end fills no buffer and blocks nothing,
    # and a child it leaves behind holds no pipe open.
    with tempfile.TemporaryFile() as out:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            problem = f"cannot be started ({exc.strerror or type(exc).__name__})"
            return RefreshResult(
                target=refresh.target,
                seconds=time.monotonic() - started,
                error=errors.TargetError(refresh.target, problem),
            )
        error = _wait(refresh, process)
        output = _read_output(out)
    if error is None and process.returncode != 0:
        error = errors.TargetError(refresh.target, _exit_problem(process.returncode, output))
    return RefreshResult(
        target=refresh.target, seconds=time.monotonic() - started, output=output, error=error
    )


def _wait(refresh: Refresh, process: subprocess.Popen[bytes]) -> errors.TargetError | None:
    try:
        process.wait(timeout=refresh.timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        return errors.TimeoutError(
            refresh.target, f"did not finish within {refresh.timeout:g} s and was stopped"
        )
    return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and what it started (its own session), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


def _read_output(out: IO[bytes]) -> str:
    out.seek(0)
    data = out.read(MAX_OUTPUT + 1)
    return _bounded_text(data)


def _bounded_text(data: bytes) -> str:
    """The text, masked; past MAX_OUTPUT cut at a line end, so that no part of a secret cut in
    two escapes the mask."""
    if len(data) <= MAX_OUTPUT:
        return MASKER.mask(data.decode("utf-8", errors="replace"))
    kept = data[:MAX_OUTPUT]
    kept = kept[: kept.rfind(b"\n") + 1]
    text = MASKER.mask(kept.decode("utf-8", errors="replace"))
    return text + f"[output cut after {MAX_OUTPUT // 1024} KiB]\n"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:_SHOWN_LINE] if lines else ""


def _exit_problem(code: int, output: str) -> str:
    said = _last_line(output)
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return f"{how} ({said})" if said else how


# --- a URL ------------------------------------------------------------------------------------


def _post(refresh: Refresh, url: str) -> RefreshResult:
    started = time.monotonic()
    timeouts = Timeouts(connect=refresh.connect_timeout, read=refresh.timeout)
    try:
        with session(refresh.ca_bundle, timeouts=timeouts) as http:
            response = http.request("POST", url, max_bytes=MAX_OUTPUT, cut=True)
    except errors.TargetError as exc:
        return RefreshResult(
            target=refresh.target, seconds=time.monotonic() - started, error=_named(refresh, exc)
        )
    output = _bounded_text(response.content)
    error = None
    if not 200 <= response.status_code < 300:
        error = errors.HTTPStatusError(
            f"POST {url}", response.status_code, _answer_problem(response, output)
        )
    return RefreshResult(
        target=refresh.target, seconds=time.monotonic() - started, output=output, error=error
    )


def _named(refresh: Refresh, exc: errors.TargetError) -> errors.TargetError:
    """The same error, its target saying that this URL was Hermod's refresh."""
    if isinstance(exc, errors.RedirectError):
        return errors.RedirectError(refresh.target, exc.status, exc.location)
    if isinstance(exc, errors.HTTPStatusError):
        return errors.HTTPStatusError(refresh.target, exc.status, exc.observed)
    return type(exc)(refresh.target, exc.observed)


def _answer_problem(response: requests.Response, output: str) -> str:
    if response.status_code in (401, 403):
        return "the URL asks for credentials, and the suite sends none to it"
    try:
        document = json.loads(output)
    except (ValueError, RecursionError):
        return server_line(output)
    detail = document.get("detail") if isinstance(document, dict) else None
    return server_line(detail if isinstance(detail, str) else output)
