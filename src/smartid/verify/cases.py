"""The cases each verify check has for a site, and the waivers that name a check or a case that is
not there (docs/site-file.md).

A check is one test, or one test per case where its function takes an argument that the pytest
glue parametrizes from the site: `tls_endpoint` by every TLS endpoint (`tls_endpoints`),
`mtls_endpoint` by those that must demand a client certificate, `binding` by the site's task
bindings, `browser_ui` by IDM Admin and IDM Operator (TLS-008). A case is named by its test
id: `hermod`, `endpoint-selfservice`, `Lock user/Load related credentials`. The parametrization
itself is the glue's (fixtures/checks.py, fixtures/clients.py); tests/test_waivers.py keeps the
two in agreement by comparing these cases with the ones pytest collects.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Mapping, Sequence

from smartid.errors import SiteError
from smartid.site import Site, Waiver
from smartid.verify.catalogue import CheckEntry
from smartid.verify.endpoints import tls_endpoints
from smartid.verify.hsts import browser_uis

__all__ = ["check_cases", "waiver_problems"]

# Each parametrized argument, and the test ids it gives a site's checks.
_PARAMETRIZED: Mapping[str, Callable[[Site], list[str]]] = {
    "tls_endpoint": lambda site: [e.id for e in tls_endpoints(site)],
    "mtls_endpoint": lambda site: [e.id for e in tls_endpoints(site) if e.client_auth_required],
    "binding": lambda site: [b.id for b in site.bindings],
    "browser_ui": lambda site: [ui.id for ui in browser_uis(site)],
}


def check_cases(site: Site, catalogue: Sequence[CheckEntry]) -> dict[str, tuple[str, ...] | None]:
    """Every check's cases for `site`, by check id: None for a check without cases, an empty
    tuple for one whose cases the site gives none of (a site without an endpoint that must
    demand a client certificate, say). A site without an endpoint makes its TLS checks one
    skipped test: nothing there can fail, so nothing there is a case to waive."""
    found: dict[str, tuple[str, ...] | None] = {}
    for entry in catalogue:
        lists = [_PARAMETRIZED[a](site) for a in entry.arguments if a in _PARAMETRIZED]
        # pytest joins the ids of several parametrized arguments with '-'.
        product = itertools.product(*lists)
        found[entry.id] = tuple("-".join(ids) for ids in product) if lists else None
    return found


def waiver_problems(site: Site, catalogue: Sequence[CheckEntry]) -> list[SiteError]:
    """A site error for each waiver that names a check that does not exist, or a case that its
    check does not have for this site, in file order."""
    cases = check_cases(site, catalogue)
    shown = str(site.path)  # as the site file's other messages show it
    problems = []
    for number, waiver in enumerate(site.waivers, start=1):
        problem = _problem(waiver, cases)
        if problem is not None:
            problems.append(SiteError(shown, None, f"waiver {number} {problem}"))
    return problems


def _problem(waiver: Waiver, cases: Mapping[str, tuple[str, ...] | None]) -> str | None:
    check, case = waiver.check_id, waiver.case
    if check not in cases:
        return f"names check '{check}', which does not exist (checks: {', '.join(sorted(cases))})"
    known = cases[check]
    if case is None or (known is not None and case in known):
        return None
    if known is None:
        return (
            f"names case '{case}' of {check}, a check without cases; check = \"{check}\" waives it"
        )
    if not known:
        return f"names case '{case}' of {check}, which the site does not have ({check} has none)"
    sentence = (
        f"names case '{case}' of {check}, which the site does not have (cases: {', '.join(known)})"
    )
    close = difflib.get_close_matches(case, known, n=1)
    return f"{sentence}; did you mean '{close[0]}'?" if close else sentence
