"""HTTP Strict Transport Security of the browser UIs (TLS-008): observe the header once, judge it
purely against `[tls] hsts_min_age`.

RFC 6797 §6.1: `Strict-Transport-Security: max-age=<seconds> [; includeSubDomains] [; preload]`;
directive names are case-insensitive, a value may be quoted, and §8.1: a user agent processes only
the first such header field of an answer. A browser honours the header on any HTTPS answer, a
redirect to the login page included, so the answer of the application's root is enough: it needs
no credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from smartid import errors
from smartid.http import Timeouts, session
from smartid.site import Site
from smartid.tls.judge import Finding

__all__ = ["BrowserUi", "HstsFacts", "browser_uis", "judge_hsts", "observe_hsts"]

_HEADER = "Strict-Transport-Security"
_MAX_AGE = re.compile(r'^\s*max-age\s*=\s*"?(\d+)"?\s*$', re.IGNORECASE)


@dataclass(frozen=True)
class BrowserUi:
    """A UI people open in a browser (Hermod and CM serve programs, which HSTS does not
    concern); `id` is its TLS-008 case."""

    id: str
    label: str
    url: str  # its root, with a trailing slash


def browser_uis(site: Site) -> list[BrowserUi]:
    """IDM Admin, and IDM Operator where the site gives `operator_url`."""
    idm = site.idm
    if idm is None or not idm.admin_url:
        return []
    found = [BrowserUi("idm", "IDM Admin", idm.admin_url.rstrip("/") + "/")]
    if idm.operator_url:
        found.append(BrowserUi("idm-operator", "IDM Operator", idm.operator_url.rstrip("/") + "/"))
    return found


@dataclass(frozen=True)
class HstsFacts:
    """What one GET of a UI's root answered: the status and the first HSTS header, or why there
    was no answer."""

    url: str
    status: int | None
    header: str | None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.status is None) == (self.error is None):
            raise ValueError("HstsFacts: an answer has a status, a failure an error, not both")


def observe_hsts(url: str, ca_bundle: Path | None, timeouts: Timeouts) -> HstsFacts:
    """GET `url` without credentials and without following a redirect; never raises for what the
    server does."""
    try:
        with session(ca_bundle, timeouts=timeouts) as http:
            response = http.request("GET", url, keep_redirect=True)
    except errors.SmartIDError as exc:
        return HstsFacts(url, None, None, str(exc))
    # requests joins repeated header fields with ", "; max-age never contains a comma.
    value = response.headers.get(_HEADER)
    first = value.split(",", 1)[0] if value is not None else None
    return HstsFacts(url, response.status_code, first)


def max_age(header: str) -> int | None:
    """The max-age of one header field, or None where it has none or more than one (§6.1.1)."""
    found = [m.group(1) for part in header.split(";") if (m := _MAX_AGE.match(part))]
    return int(found[0]) if len(found) == 1 else None


def judge_hsts(facts: HstsFacts, min_age: int, target: str) -> list[Finding]:
    """The answer carries Strict-Transport-Security with a max-age of at least `min_age`."""
    required = f"{_HEADER} with max-age of at least {min_age} s ([tls] hsts_min_age)"
    if facts.error is not None:
        return [Finding("unobserved", "minor", facts.error, required, target)]
    if facts.header is None:
        observed = f"the answer (HTTP {facts.status}) carries no {_HEADER} header"
        return [Finding("hsts-missing", "minor", observed, required, target)]
    age = max_age(facts.header)
    if age is None:
        observed = f"{_HEADER}: '{facts.header[:80]}' has no single valid max-age"
        return [Finding("hsts-invalid", "minor", observed, required, target)]
    if age < min_age:
        observed = f"{_HEADER} max-age is {age} s"
        return [Finding("hsts-max-age", "minor", observed, required, target)]
    return []
