"""The report's first page: what a QA owner signs off from (docs/operations.md, "Reading the
HTML report").

One static HTML page, `reports/html/index.html`, beside the Allure report (`allure/index.html`)
that it links to: the verdict in words, the counts, the lab faults switched on, the endpoints as
tested, the waivers in force, the failed checks and the blocked checks under their root cause.

Why a page of our own: Allure Report 3's first page can show key/value pairs (the configuration's
`variables` and `environment.properties` as "Metadata"), but it shows the first 8 of each and
hides the rest behind "Show more", cuts keys after about 15 characters and values after about 25
(an endpoint URL, a waiver's reason, a root cause), and has no place for a list under a heading.
A sign-off that cannot be read whole on the first page is not one.

The page is built from data and nothing else: every value is masked (`MASKER`) and then
HTML-escaped; it has no script, loads nothing (a Content-Security-Policy of `default-src 'none'`
says so to the browser as well) and links only to the Allure report beside it.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from smartid.masking import MASKER
from smartid.report.context import RunContext
from smartid.report.results import TestRecord

__all__ = [
    "BLOCKED",
    "FirstPage",
    "FleetLine",
    "SignOff",
    "blocked_groups",
    "entry_page",
    "first_page",
    "fleet_page",
]

BLOCKED = "blocked"
_NO_CAUSE = "root cause not recorded"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class SignOff:
    """The suite's verdict for a QA owner: signed off or not, in one sentence."""

    signed_off: bool
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True)
class FirstPage:
    """What the first page shows."""

    title: str
    signoff: SignOff
    exit: int
    verdict: str  # the exit code's reason
    site: str | None
    target: str | None
    start: datetime | None
    duration: float | None
    context: RunContext
    records: tuple[TestRecord, ...]
    allure_href: str


def _t(value: object) -> str:
    """A value as page text: masked first (a secret's escape would not match), then escaped."""
    return html.escape(MASKER.mask(str(value)), quote=True)


def blocked_groups(records: Iterable[TestRecord]) -> list[tuple[str, list[TestRecord]]]:
    """The blocked checks under their root cause, causes in the order they first blocked one."""
    groups: dict[str, list[TestRecord]] = {}
    for record in records:
        if record.outcome == BLOCKED:
            groups.setdefault(record.blocked_by or _NO_CAUSE, []).append(record)
    return list(groups.items())


def _when(start: datetime | None) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if start else "unknown"


def _took(duration: float | None) -> str:
    if duration is None:
        return "unknown"
    minutes, seconds = divmod(round(duration), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{duration:.1f} s"


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    header = "".join(f"<th>{_t(cell)}</th>" for cell in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{_t(cell)}</td>" for cell in row) + "</tr>\n" for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead>\n<tbody>\n{body}</tbody></table>"


def _section(testid: str, title: str, body: str, *, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<section data-testid="{testid}"{klass}>\n<h2>{_t(title)}</h2>\n{body}\n</section>\n'


def _counts(records: Sequence[TestRecord]) -> str:
    # As summary.json counts them: the suite's own outcomes (blocked, waived) beside Allure's.
    statuses = Counter(r.state for r in records)
    told = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    return f"{len(records)} checks: {told or 'none ran'}"


def _verdict(page: FirstPage) -> str:
    css = "verdict signed" if page.signoff.signed_off else "verdict unsigned"
    return (
        f'<section data-testid="signoff-verdict" class="{css}">\n'
        f'<p class="sentence">{_t(page.signoff.text)}</p>\n'
        f"<p>Nightly exit {_t(page.exit)}: {_t(page.verdict)}</p>\n"
        f'<p data-testid="signoff-counts">{_t(_counts(page.records))}</p>\n'
        f'<p><a href="{_t(page.allure_href)}">Open the full Allure report</a>: every check '
        "with its evidence, the categories and the trend.</p>\n</section>\n"
    )


def _faults(page: FirstPage) -> str:
    faults = page.context.lab_faults
    if faults:
        items = "".join(f"<li><code>{_t(name)}</code></li>" for name in faults)
        body = (
            "<p>The results describe a deliberately broken lab, not a deployment.</p>\n"
            f"<ul>{items}</ul>"
        )
        return _section("signoff-faults", "Lab faults switched on", body, css="faults")
    none = "none" if page.target == "lab" else "none: the target is not the embedded lab"
    return _section("signoff-faults", "Lab faults switched on", f"<p>{_t(none)}</p>")


def _failed(records: Sequence[TestRecord]) -> str:
    failed = [r for r in records if r.status in ("failed", "broken")]
    if not failed:
        return _section("signoff-failed", "Failed checks", "<p>No check failed.</p>")
    rows = [(r.ident, r.severity, r.status, r.reason) for r in failed]
    body = _table(("check", "severity", "status", "reason"), rows)
    return _section("signoff-failed", "Failed checks", body)


def _blocked(records: Sequence[TestRecord]) -> str:
    groups = blocked_groups(records)
    if not groups:
        return ""
    parts = []
    for cause, blocked in groups:
        rows = [(r.ident, r.severity, r.name) for r in blocked]
        parts.append(
            f'<div class="cause" data-testid="signoff-blocked-group">'
            f"<h3>Blocked by {_t(cause)}</h3>\n"
            f"{_table(('check', 'severity', 'test'), rows)}</div>"
        )
    intro = "<p>These checks did not run because the check named above them failed first.</p>"
    return _section("signoff-blocked", "Blocked checks, by root cause", intro + "\n".join(parts))


def _endpoints(context: RunContext) -> str:
    if not context.endpoints:
        return _section("signoff-endpoints", "Endpoints as tested", "<p>none recorded</p>")
    body = _table(("endpoint", "URL"), context.endpoints.items())
    return _section("signoff-endpoints", "Endpoints as tested", body)


def _waivers(context: RunContext) -> str:
    if not context.waivers_in_force:
        return _section("signoff-waivers", "Waivers in force", "<p>none</p>")
    rows = [(w.check, w.reason, w.owner, w.until.isoformat()) for w in context.waivers_in_force]
    body = _table(("check", "reason", "owner", "until"), rows)
    return _section("signoff-waivers", "Waivers in force", body)


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
main { max-width: 1000px; margin: 24px auto; padding: 24px 32px; background: #fff;
       border-radius: 10px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 14px 0 6px; } .meta { color: #5b6475; margin: 0; }
.verdict { margin-top: 20px; padding: 14px 18px; border-radius: 8px; border-left: 6px solid; }
.verdict .sentence { font-size: 20px; font-weight: 600; margin: 0 0 6px; }
.signed { background: #e8f6ec; border-color: #1f9d4c; }
.unsigned { background: #fdecec; border-color: #d33; }
.faults { background: #fff5e0; padding: 2px 16px 8px; border-radius: 8px; margin-top: 16px; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 5px 8px;
        border-bottom: 1px solid #e3e6eb; vertical-align: top; }
td:first-child { white-space: nowrap; } td:last-child { overflow-wrap: anywhere; }
th { color: #5b6475; font-weight: 600; } code { font-size: 14px; }
footer { color: #5b6475; font-size: 13px; margin-top: 28px; }
"""


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_t(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def first_page(page: FirstPage) -> str:
    """The sign-off page as HTML."""
    where = f"site {page.site or 'unknown'}, target {page.target or 'unknown'}"
    header = (
        f'<h1 data-testid="signoff-title">{_t(page.title)}</h1>\n'
        f'<p class="meta">{_t(where)}; started {_t(_when(page.start))}, took '
        f"{_t(_took(page.duration))}</p>\n"
    )
    body = "".join(
        (
            header,
            _verdict(page),
            _faults(page),
            _endpoints(page.context),
            _waivers(page.context),
            _failed(page.records),
            _blocked(page.records),
            "<footer>Made by the Smart ID suite from the run's Allure results. This page runs no "
            "script and loads nothing.</footer>\n",
        )
    )
    return _document(page.title, body)


def entry_page(title: str, allure_href: str) -> str:
    """A first page for a report without a verdict (a setup run): the link to the report."""
    body = f'<h1>{_t(title)}</h1>\n<p><a href="{_t(allure_href)}">Open the Allure report</a></p>\n'
    return _document(title, body)


@dataclass(frozen=True)
class FleetLine:
    """One site on the fleet's first page."""

    name: str
    exit: int
    verdict: str
    counts: str
    href: str | None  # the site's own first page, relative to the fleet's


def fleet_page(title: str, code: int, lines: Sequence[FleetLine], allure_href: str) -> str:
    """The fleet's first page: the fleet's exit code, one row per site (linking to the site's
    own sign-off page where it has one), and the link to the Allure report of every site."""
    css = "verdict signed" if code == 0 else "verdict unsigned"
    head = (
        f'<section data-testid="fleet-verdict" class="{css}">\n'
        f'<p class="sentence">{_t(f"{len(lines)} site(s), exit {code}")}</p>\n'
        f'<p><a href="{_t(allure_href)}">Open the Allure report of the fleet</a>: every '
        "site's checks, the sites as environments.</p>\n</section>\n"
    )
    rows = []
    for line in lines:
        name = f'<a href="{_t(line.href)}">{_t(line.name)}</a>' if line.href else _t(line.name)
        cells = (_t(line.exit), _t(line.verdict), _t(line.counts))
        rows.append(f"<tr><td>{name}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = (
        "<table><thead><tr><th>site</th><th>exit</th><th>verdict</th><th>counts</th></tr>"
        "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
    )
    body = f"<h1>{_t(title)}</h1>\n{head}" + _section("fleet-sites", "Sites", table)
    return _document(title, body)
