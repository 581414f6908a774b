"""The HTML report: Allure Report 3 (npm `allure`, pinned in package.json, installed by `npm ci`)
renders an Allure results folder into one self-contained `index.html` that opens from file://.

- The binary is the local `node_modules/.bin/allure`; nothing is fetched when a report is made.
- The output folder is emptied first: Allure does not clean it, and a second report would land in a
  subfolder.
- History (the trend charts) is a JSONL file, one line per run, capped at `HISTORY_LIMIT` runs.
- The generated HTML embeds a Google Tag Manager loader that would call out whenever someone opens
  the report. It is removed, and the result is scanned: a report that would still load anything from
  another host is deleted and reported as an error rather than handed out.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from smartid.report.results import CATEGORIES

__all__ = [
    "HISTORY_LIMIT",
    "ReportError",
    "ReportPaths",
    "allure_binary",
    "find_external_urls",
    "render",
    "strip_tracking",
]

HISTORY_LIMIT = 60
GENERATE_TIMEOUT = 600.0
_TRACKING_SRC = "googletagmanager.com"


class ReportError(Exception):
    """The HTML report could not be made, or would not be safe to hand out."""


@dataclass(frozen=True)
class ReportPaths:
    """Where one report's inputs and outputs live (all under `reports/` for the nightly)."""

    results: Path
    html: Path
    history: Path
    config: Path

    @classmethod
    def under(cls, reports: Path) -> ReportPaths:
        reports = reports.resolve()
        return cls(
            results=reports / "allure-results",
            html=reports / "html",
            history=reports / "history.jsonl",
            config=reports / "allurerc.json",
        )


def allure_binary(explicit: str | Path | None = None) -> Path:
    """`explicit`, else `node_modules/.bin/allure` in the working directory."""
    chosen = Path(explicit or "node_modules/.bin/allure")
    if not chosen.is_file():
        raise ReportError(
            f"Allure Report is not installed ({chosen} is missing): run `make node_modules/"
            ".installed` (npm ci) in the project folder"
        )
    return chosen.resolve()


def _config(paths: ReportPaths, name: str) -> dict[str, object]:
    return {
        "name": name,
        "output": str(paths.html),
        "historyPath": str(paths.history),
        "historyLimit": HISTORY_LIMIT,
        "categories": {"rules": [category.as_allure() for category in CATEGORIES]},
        "plugins": {
            "awesome": {
                "options": {
                    "singleFile": True,
                    "reportLanguage": "en",
                    # The tree reads as the guide: section, then step or requirement family.
                    "groupBy": ["epic", "story"],
                }
            }
        },
    }


def render(paths: ReportPaths, *, name: str, allure: Path) -> Path:
    """Render the results into `paths.html` (emptied first), append the run to the history, and
    return the report's index.html."""
    shutil.rmtree(paths.html, ignore_errors=True)
    paths.config.parent.mkdir(parents=True, exist_ok=True)
    paths.history.parent.mkdir(parents=True, exist_ok=True)
    paths.results.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(json.dumps(_config(paths, name), indent=2) + "\n", encoding="utf-8")
    command = [str(allure), "generate", "--config", str(paths.config), str(paths.results)]
    try:
        done = subprocess.run(
            command,
            cwd=paths.config.parent,
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError(f"{allure} generate could not run: {exc}") from None
    index = paths.html / "index.html"
    if done.returncode != 0 or not index.is_file():
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise ReportError(f"{allure} generate exited {done.returncode}: {tail or 'no output'}")
    for page in sorted(paths.html.rglob("*.htm*")):
        page.write_text(strip_tracking(page.read_text(encoding="utf-8")), encoding="utf-8")
    leftovers = find_external_urls(paths.html)
    if leftovers:
        shutil.rmtree(paths.html, ignore_errors=True)
        raise ReportError(
            "the generated report would load from other hosts and was deleted: "
            + ", ".join(leftovers[:5])
        )
    return index


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>\s*", re.DOTALL | re.IGNORECASE)


def strip_tracking(page: str) -> str:
    """The page without the tag manager's loader script and its `window.dataLayer` setup."""

    def keep(match: re.Match[str]) -> str:
        attributes, body = match.group(1), match.group(2)
        if _TRACKING_SRC in attributes:
            return ""
        if "src=" not in attributes and re.search(r"\bdataLayer\b|\bgtag\(", body):
            return ""
        return match.group(0)

    return _SCRIPT.sub(keep, page)


# Loads that happen without a click: fetch(), import(), import ... from, importScripts(), CSS url().
_LOADS = re.compile(
    r"""(?:\bfetch|\bimport|\bimportScripts|\burl)\s*\(\s*["'`]?(https?://[^"'`)\s]+)"""
    r"""|\bimport\s[^;]{0,200}?\bfrom\s*["'`](https?://[^"'`]+)"""
    r"""|@import\s+["'](https?://[^"']+)"""
)
_LOADING_TAGS = {"script", "link", "img", "iframe", "frame", "source", "embed", "object", "audio"}
_LOADING_TAGS |= {"video", "track", "input"}
_LOADING_ATTRIBUTES = {"src", "href", "data", "poster", "srcset"}


def _external(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return True  # unparsable: counted, not waved through
    if parts.scheme not in ("http", "https") or host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _decode_data_url(url: str) -> str | None:
    head, _, payload = url.partition(",")
    if not head.startswith("data:"):
        return None
    try:
        raw = base64.b64decode(payload) if head.endswith(";base64") else unquote(payload).encode()
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", errors="replace")


class _LoadScanner(HTMLParser):
    """Collects the external URLs an HTML page loads by itself (not the links a reader clicks)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script_or_style = False

    def scan_code(self, text: str) -> None:
        for match in _LOADS.finditer(text):
            url = next(group for group in match.groups() if group)
            if _external(url):
                self.found.append(url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script_or_style = tag in ("script", "style")
        for name, value in attrs:
            if value is None:
                continue
            if name == "style":
                self.scan_code(value)
            if tag not in _LOADING_TAGS or name not in _LOADING_ATTRIBUTES:
                continue
            candidates = value.split(",") if name == "srcset" else [value]
            for candidate in candidates:
                url = candidate.strip().split(" ")[0]
                if _external(url):
                    self.found.append(url)
            decoded = _decode_data_url(value)
            if decoded is not None:
                self.scan_code(decoded)

    def handle_endtag(self, tag: str) -> None:
        self._in_script_or_style = False

    def handle_data(self, data: str) -> None:
        if self._in_script_or_style:
            self.scan_code(data)


def find_external_urls(folder: Path) -> list[str]:
    """Every URL to a host other than this machine that a page, script or style sheet under
    `folder` would load when the report is opened."""
    found: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix not in (".html", ".htm", ".js", ".mjs", ".css"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        scanner = _LoadScanner()
        if suffix in (".html", ".htm"):
            scanner.feed(text)
            scanner.close()
        else:
            scanner.scan_code(text)
        found.extend(f"{path.name}: {url}" for url in scanner.found)
    return found
