"""One Node process that renders many Allure reports (`allure_worker.mjs`, docs/fleet.md).

`allure generate` spends about 1.2 s of a 2 s report starting Node and importing Allure. A fleet
renders every site's report, and then its own, through one worker instead: `Worker.start` runs
`node allure_worker.mjs` on a Unix socket, the fleet hands the socket's path to its sites in
`$SMARTID_ALLURE_WORKER`, and `render` (smartid.report.html) sends its job there when that is
set. The worker runs what `allure generate` runs (@allurereport/core's `readConfig` and
`AllureReport`, loaded from beside the `allure` package that `allure_binary` names), one job at a
time. Where it cannot start (no `node` on PATH, no @allurereport/core beside the binary) or
cannot be reached, each report is made by `allure generate` as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

__all__ = ["ENV", "Worker", "generate"]

ENV = "SMARTID_ALLURE_WORKER"
_SCRIPT = Path(__file__).with_name("allure_worker.mjs")
_START_TIMEOUT = 30.0
_ANSWER_LIMIT = 64 * 1024


class WorkerJobError(Exception):
    """The worker ran the job and Allure failed it."""


def generate(address: str, config: Path, results: Path, cwd: Path, timeout: float) -> bool:
    """The report of `config` and `results` made by the worker at `address`: True when made;
    False when the worker cannot be reached (the caller runs `allure generate` instead).
    WorkerJobError when Allure failed the job; TimeoutError past `timeout` seconds, one deadline
    for the whole exchange."""
    deadline = time.monotonic() + timeout
    job = {"id": os.getpid(), "cwd": str(cwd), "config": str(config), "results": str(results)}
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with connection:
        connection.settimeout(5.0)
        try:
            connection.connect(address)
        except OSError:
            return False
        connection.sendall(json.dumps(job).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the Allure worker did not answer within {timeout:g} s")
            connection.settimeout(left)
            try:
                chunk = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return False
            if not chunk:
                return False  # the worker went away: make the report without it
            answer += chunk
            if len(answer) > _ANSWER_LIMIT:
                raise WorkerJobError("the Allure worker's answer is too long")
    try:
        reply = json.loads(answer)
    except ValueError:
        raise WorkerJobError("the Allure worker's answer is not JSON") from None
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else None
        raise WorkerJobError(" ".join(str(error or "no reason given").split())[:500])
    return True


class Worker:
    """The fleet's worker: `start()` gives its address (None when it cannot start); `close()`
    stops it. Its own output goes to `log`."""

    def __init__(self, allure: Path, log: Path) -> None:
        self.allure = allure
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._folder: str | None = None
        self._log_file: IO[bytes] | None = None

    def _package(self) -> Path | None:
        """The `allure` package folder the binary belongs to (node_modules/.bin/allure is a
        link to its cli.js)."""
        folder = self.allure.resolve().parent
        return folder if (folder / "package.json").is_file() else None

    def start(self) -> str | None:
        node = shutil.which("node")
        package = self._package()
        if node is None or package is None or not _SCRIPT.is_file():
            return None
        self._folder = tempfile.mkdtemp(prefix="smartid-allure-")
        address = os.path.join(self._folder, "worker.sock")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [node, str(_SCRIPT), str(package), address],
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if _answers(address):
                return address
            time.sleep(0.02)
        self.close()
        return None

    def close(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                with contextlib.suppress(OSError):
                    self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _answers(address: str) -> bool:
    if not os.path.exists(address):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(address)
        except OSError:
            return False
    return True
