"""The HTML report: `reports/html/index.html`, the suite's sign-off page (`smartid.report.signoff`),
and beside it `reports/html/allure/index.html`, the Allure Report 3 report it links to. Allure
(npm `allure`, pinned in package.json, installed by `npm ci`) renders the results folder into one
self-contained page that opens from file://.

Why the first page is the suite's own: Allure 3's awesome report can put key/value pairs on its
first page (the configuration's `variables`, `environment.properties` as "Metadata"), but shows 8
of each, hides the rest behind "Show more" and cuts long keys and values (URLs, a waiver's
reason, a root cause) short. The verdict and the lab faults still go into its `variables`, so the
Allure report says them too when opened on its own.

- The binary is the local `node_modules/.bin/allure`; nothing is fetched when a report is made.
- The output folder is emptied first: Allure does not clean it, and a second report would land in a
  subfolder.
- History (the trend charts) is a JSONL file per site, `reports/history/<site>.jsonl`, one line per
  run, capped at `HISTORY_LIMIT` runs: one site's runs never enter another site's trend.
- The generated HTML embeds a Google Tag Manager loader that would call out whenever someone opens
  the report. It is removed, and the result is scanned: a report that would still load anything from
  another host is deleted and reported as an error rather than handed out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from smartid.masking import MASKER
from smartid.report import allure_worker
from smartid.report.results import CATEGORIES
from smartid.report.seam import SITE_LABEL
from smartid.report.signoff import entry_page

__all__ = [
    "ALLURE_FOLDER",
    "HISTORY_LIMIT",
    "ReportError",
    "ReportPaths",
    "allure_binary",
    "find_external_urls",
    "history_name",
    "render",
    "strip_tracking",
]

HISTORY_LIMIT = 60
ALLURE_FOLDER = "allure"
_SITE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
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
    def under(cls, reports: Path, *, site: str | None = None) -> ReportPaths:
        """The nightly's paths; the history is the site's own (`history/<site>.jsonl`)."""
        reports = reports.resolve()
        return cls(
            results=reports / "allure-results",
            html=reports / "html",
            history=reports / "history" / f"{history_name(site)}.jsonl",
            config=reports / "allurerc.json",
        )

    @property
    def allure_html(self) -> Path:
        """The folder of the Allure report, beside the first page."""
        return self.html / ALLURE_FOLDER

    @property
    def allure_href(self) -> str:
        """The first page's link to the Allure report."""
        return f"{ALLURE_FOLDER}/index.html"


def history_name(site: str | None) -> str:
    """The history file's name for a site: its name; a name that would not make a plain file name
    (`..`, a leading dot) gets a digest of itself, a run without a site `unknown-site`."""
    if not site or site == "none":
        return "unknown-site"
    if _SITE_FILE_NAME.match(site):
        return site
    return "site-" + hashlib.sha256(site.encode()).hexdigest()[:16]


def allure_binary(explicit: str | Path | None = None) -> Path:
    """`explicit`, else `node_modules/.bin/allure` in the working directory."""
    chosen = Path(explicit or "node_modules/.bin/allure")
    if not chosen.is_file():
        raise ReportError(
            f"Allure Report is not installed ({chosen} is missing): run `make node_modules/"
            ".installed` (npm ci) in the project folder"
        )
    return chosen.resolve()


def _config(paths: ReportPaths, name: str, variables: Mapping[str, str]) -> dict[str, object]:
    return {
        "name": name,
        "output": str(paths.allure_html),
        "historyPath": str(paths.history),
        "historyLimit": HISTORY_LIMIT,
        "categories": {"rules": [category.as_allure() for category in CATEGORIES]},
        "variables": {MASKER.mask(k): MASKER.mask(v) for k, v in variables.items()},
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


def _environments_config(config: Mapping[str, object], sites: Sequence[str]) -> str:
    """`allurerc.mjs`: the JSON config, and one environment per site whose matcher takes the
    results labelled with that site. Every value is JSON, which JavaScript reads as it is."""
    return (
        f"const config = {json.dumps(config, indent=2)};\n"
        f"const sites = {json.dumps(list(sites))};\n"
        "config.environments = Object.fromEntries(sites.map((site) => [site, {\n"
        "  matcher: ({ labels }) =>\n"
        f"    labels.some((label) => label.name === {json.dumps(SITE_LABEL)} && "
        "label.value === site),\n"
        "}]));\n"
        "export default config;\n"
    )


def render(
    paths: ReportPaths,
    *,
    name: str,
    allure: Path,
    first_page: str | None = None,
    variables: Mapping[str, str] | None = None,
    environments: Sequence[str] = (),
    worker: str | None = None,
) -> Path:
    """Render the results into `paths.allure_html` (`paths.html` is emptied first), append the run
    to the history, write `first_page` (else a page that links to the report) as
    `paths.html/index.html` and return that page. `variables` head Allure's own first page.
    `environments` (site names) make one Allure environment per site, matched by the results'
    `site` label: the fleet's report. `worker` (else `$SMARTID_ALLURE_WORKER`) is the address of
    an Allure worker (smartid.report.allure_worker) to render with instead of `allure generate`."""
    shutil.rmtree(paths.html, ignore_errors=True)
    paths.config.parent.mkdir(parents=True, exist_ok=True)
    paths.history.parent.mkdir(parents=True, exist_ok=True)
    paths.results.mkdir(parents=True, exist_ok=True)
    config = _config(paths, name, variables or {})
    config_file = paths.config
    if environments:
        # Allure 3 matches a result to an environment with a function: a JavaScript config.
        config_file = paths.config.with_suffix(".mjs")
        config_file.write_text(_environments_config(config, environments), encoding="utf-8")
    else:
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    address = worker if worker is not None else os.environ.get(allure_worker.ENV)
    made = False
    if address:
        try:
            made = allure_worker.generate(
                address, config_file, paths.results, paths.config.parent, GENERATE_TIMEOUT
            )
        except (allure_worker.WorkerJobError, TimeoutError) as exc:
            raise ReportError(
                f"the Allure worker could not render {paths.results}: {exc}"
            ) from None
        if made and not (paths.allure_html / "index.html").is_file():
            raise ReportError(f"the Allure worker left no {paths.allure_html / 'index.html'}")
    if not made:
        _generate(allure, config_file, paths)
    index = paths.html / "index.html"
    entry = first_page if first_page is not None else entry_page(name, paths.allure_href)
    index.write_text(entry, encoding="utf-8")
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


def _generate(allure: Path, config_file: Path, paths: ReportPaths) -> None:
    command = [str(allure), "generate", "--config", str(config_file), str(paths.results)]
    # Allure asks git for the branch and remote of the folder it renders in; a site's report
    # describes the site, not the suite's checkout (the Allure worker answers the same).
    env = {**os.environ, "GIT_DIR": str(paths.config.parent / "no-git-here")}
    try:
        done = subprocess.run(
            command,
            cwd=paths.config.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError(f"{allure} generate could not run: {exc}") from None
    if done.returncode != 0 or not (paths.allure_html / "index.html").is_file():
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise ReportError(f"{allure} generate exited {done.returncode}: {tail or 'no output'}")


_SCRIPT_OPEN = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(r"</script>\s*", re.IGNORECASE)


_TRACKING_CODE = re.compile(r"\bdataLayer\b|\bgtag\(")


def _sets_up_tracking(page: str, start: int, end: int) -> bool:
    """Whether the script body `page[start:end]` sets up the tag manager (`window.dataLayer`,
    `gtag(`). The plain substring searches come first: they take milliseconds where the
    pattern's alternation takes most of a second over a fleet report's data script."""
    if page.find("dataLayer", start, end) < 0 and page.find("gtag(", start, end) < 0:
        return False
    return _TRACKING_CODE.search(page, start, end) is not None


def strip_tracking(page: str) -> str:
    """The page without the tag manager's loader script and its `window.dataLayer` setup.

    Each script element runs from its opening tag to the first `</script>` after it. The two
    tags are searched for separately: one pattern with a lazy body from the opening tag to the
    closing one costs 1.3-1.6 s on a 30 MB page (a fleet's report embeds every site's results),
    two searches about 0.1 s."""
    kept: list[str] = []
    position = 0
    while (opening := _SCRIPT_OPEN.search(page, position)) is not None:
        closing = _SCRIPT_CLOSE.search(page, opening.end())
        if closing is None:
            break
        attributes = opening.group(1)
        tracking = _TRACKING_SRC in attributes or (
            "src=" not in attributes and _sets_up_tracking(page, opening.end(), closing.start())
        )
        kept.append(page[position : opening.start() if tracking else closing.end()])
        position = closing.end()
    kept.append(page[position:])
    return "".join(kept)


# Loads that happen without a click: fetch(), import(), import ... from, importScripts(), CSS url().
_LOADS = re.compile(
    r"""(?:\bfetch|\bimport|\bimportScripts|\burl)\s*\(\s*["'`]?(https?://[^"'`)\s]+)"""
    r"""|\bimport\s[^;]{0,200}?\bfrom\s*["'`](https?://[^"'`]+)"""
    r"""|@import\s+["'](https?://[^"']+)"""
)
# Every match of _LOADS holds "http://" or "https://" at most this far after where it starts
# (`@import`, `import ... from` with its 200 characters, `url (`, with room for spaces), and
# its URL ends before the next quote (each alternative's URL stops at `"` and `'`), at most
# _URL_LENGTH on: _LOADS needs running only from that far before each "http(s)://" to that
# quote, which is what keeps a scan of Allure's few megabytes of script fast.
_URL = re.compile(r"https?://")
_QUOTE = re.compile(r"[\"']")
_BEFORE_URL = 1024
_URL_LENGTH = 8192


def _near_urls(text: str) -> list[tuple[int, int]]:
    """The stretches of `text` around its "http(s)://" occurrences, overlapping ones joined."""
    spans: list[tuple[int, int]] = []
    for found in _URL.finditer(text):
        start = max(0, found.start() - _BEFORE_URL)
        limit = min(len(text), found.end() + _URL_LENGTH)
        quote = _QUOTE.search(text, found.end(), limit)
        end = quote.start() if quote is not None else limit
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


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
        for start, end in _near_urls(text):
            for match in _LOADS.finditer(text, start, end):
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
            decoded = _decode_data_url(value)
            # A data: URL loads from no host: only what it holds might, and that is scanned (not
            # split and parsed as a URL: Allure's app script is one of 3.5 MB). A srcset lists
            # several candidates, each checked.
            if name == "srcset":
                candidates = value.split(",")
            else:
                candidates = [] if decoded is not None else [value]
            for candidate in candidates:
                url = candidate.strip().split(" ")[0]
                if _external(url):
                    self.found.append(url)
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
