"""TLS posture of every endpoint (docs/checks.md): IDM, Hermod, CM and the site's [[endpoints]].

Each endpoint is observed once per run, all in parallel (`tls_observations`); every check judges
those facts against the site's [tls] policy with the TLS engine's pure judges. The verdict always
comes from the verifying handshake (site CA bundle, server name, and CM's officer certificate);
an observe-only handshake only describes a certificate that failed it. A property that cannot be
judged because no certificate was seen fails the check: it is not proven.

PYTEST_DONT_REWRITE: checks report through their findings, not through asserts; a warm fork
server preloads this module (smartid.forkrun).
"""

from __future__ import annotations

import pytest

from smartid.report import seam
from smartid.site import IdmSection, Site
from smartid.tls import (
    HandshakeFacts,
    cipher_notes,
    judge_ciphers,
    judge_client_auth,
    judge_expiry,
    judge_keys,
    judge_protocol,
    judge_signatures,
)
from smartid.tls.revocation import RevocationFacts, judge_revocation
from smartid.verify import Findings, TlsEndpoint
from smartid.verify.depends import handshake_findings, refused_for_want_of_certificate
from smartid.verify.hsts import BrowserUi, HstsFacts, judge_hsts

EPIC = "Acceptance checks"
STORY = "TLS"
DOC_URL = "https://doc.nexusgroup.com/pub/integrate-identity-manager-with-smart-id-messaging"

pytestmark = [pytest.mark.verify, pytest.mark.health]

_NO_TLS = ("connect", "timeout", "protocol")


def _facts(endpoint: TlsEndpoint, observations: dict[str, HandshakeFacts]) -> HandshakeFacts:
    facts = observations[endpoint.id]
    seam.attach_json(f"TLS facts of {endpoint.id}", facts.to_dict())
    return facts


def _no_certificate(
    endpoint: TlsEndpoint, facts: HandshakeFacts, findings: Findings, what: str
) -> bool:
    if facts.chain:
        return False
    findings.add(
        "unobserved",
        f"no certificate was observed ({facts.error or 'no handshake'})",
        f"a certificate presented in the handshake, to judge {what}",
        endpoint.named(facts.target),
    )
    return True


@pytest.mark.severity("blocker")
@pytest.mark.needs("reachable:{case}")
def test_handshake_verifies(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-001 A verifying handshake with the site's CA bundle and server name succeeds: the chain
    leads to a trusted CA and the certificate is valid for the server name."""
    facts = _facts(tls_endpoint, tls_observations)
    findings.extend(handshake_findings(tls_endpoint, facts, site.tls))


@pytest.mark.severity("critical")
@pytest.mark.needs("verified:{case}")
def test_protocol_meets_minimum(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-002 The endpoint negotiates at least the site's minimum TLS version and refuses
    handshakes that offer only TLS 1.0 or TLS 1.1."""
    facts = _facts(tls_endpoint, tls_observations)
    where = tls_endpoint.named(facts.target)
    required = f"{site.tls.min_version} or newer, agreed in a verifying handshake"
    if facts.error_kind in _NO_TLS:
        findings.add("unobserved", facts.error or "no TLS handshake", required, where)
        return
    if facts.protocol is None and not refused_for_want_of_certificate(tls_endpoint, facts):
        findings.add(
            "unobserved",
            f"no version was agreed: the verifying handshake failed ({facts.error})",
            required,
            where,
        )
    findings.extend(judge_protocol(facts, site.tls), target=where)


@pytest.mark.severity("critical")
@pytest.mark.needs("reachable:{case}")
def test_certificates_not_expiring(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-003 The leaf and intermediate certificates are valid and have at least the site's
    expiry_fail_days left; inside expiry_warn_days the check passes with a warning."""
    facts = _facts(tls_endpoint, tls_observations)
    if _no_certificate(tls_endpoint, facts, findings, "its validity"):
        return
    findings.extend(judge_expiry(facts, site.tls), target=tls_endpoint.named(facts.target))


@pytest.mark.severity("critical")
@pytest.mark.needs("reachable:{case}")
def test_key_sizes_meet_policy(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-004 The keys of the leaf and intermediate certificates are at least the site's
    minimum RSA and EC sizes."""
    facts = _facts(tls_endpoint, tls_observations)
    if _no_certificate(tls_endpoint, facts, findings, "its key"):
        return
    findings.extend(judge_keys(facts, site.tls), target=tls_endpoint.named(facts.target))


@pytest.mark.severity("critical")
@pytest.mark.needs("reachable:{case}")
def test_no_forbidden_signature_hash(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-005 No certificate of the presented chain is signed with a hash the site forbids
    (SHA-1, MD5 by default)."""
    facts = _facts(tls_endpoint, tls_observations)
    if _no_certificate(tls_endpoint, facts, findings, "its signature"):
        return
    findings.extend(judge_signatures(facts, site.tls), target=tls_endpoint.named(facts.target))


@pytest.mark.severity("critical")
@pytest.mark.needs("reachable:{case}")
def test_client_certificate_demanded(
    mtls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    findings: Findings,
) -> None:
    """TLS-006 An endpoint that must demand a client certificate (CM, and [[endpoints]] with
    client_auth = "required") refuses a client that has none."""
    facts = _facts(mtls_endpoint, tls_observations)
    findings.extend(judge_client_auth(facts, True), target=mtls_endpoint.named(facts.target))


@pytest.mark.severity("critical")
@pytest.mark.needs("reachable:{case}")
def test_forbidden_cipher_suites_refused(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-007 In TLS 1.2 the endpoint refuses handshakes that offer only suites the site forbids
    (static RSA, 3DES, RC4, NULL, EXPORT, anonymous by default); accepting CBC suites with forward
    secrecy passes with a warning unless the site forbids them."""
    facts = _facts(tls_endpoint, tls_observations)
    where = tls_endpoint.named(facts.target)
    if facts.error_kind in _NO_TLS:
        findings.add(
            "unobserved",
            facts.error or "no TLS handshake",
            "a TLS endpoint to offer each cipher family to",
            where,
        )
        return
    notes = cipher_notes(facts, site.tls)
    if facts.tls12 is None:
        findings.add("unobserved", notes[0], "each cipher family offered on its own", where)
        return
    findings.extend(judge_ciphers(facts, site.tls), target=where)
    if notes:
        seam.attach_text(f"cipher families of {tls_endpoint.id}", "\n".join(notes))
        for note in notes:
            findings.detail(note)


@pytest.mark.severity("minor")
@pytest.mark.needs("verified:{case}")
def test_browser_uis_send_hsts(
    browser_ui: BrowserUi,
    declared_idm: IdmSection,
    hsts_observations: dict[str, HstsFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-008 IDM Admin and IDM Operator, the browser UIs, answer with Strict-Transport-Security
    whose max-age is at least the site's hsts_min_age."""
    facts = hsts_observations[browser_ui.id]
    seam.attach_json(f"HSTS answer of {browser_ui.label}", vars(facts))
    target = f"{browser_ui.label} {facts.url}"
    findings.extend(judge_hsts(facts, site.tls.hsts_min_age, target))


@pytest.mark.severity("critical")
@pytest.mark.needs("reachable:{case}")
def test_no_certificate_revoked(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    revocation_observations: dict[str, RevocationFacts],
    site: Site,
    findings: Findings,
) -> None:
    """TLS-009 No certificate of the presented chain is revoked, as its CRL distribution points
    and OCSP responders say; a stale or foreign-signed answer fails, and a status that cannot
    be learnt follows the site's [tls] revocation ("prefer": a warning, "require": a failure)."""
    if site.tls.revocation == "off":
        pytest.skip('[tls] revocation = "off": revocation is not checked')
    facts = _facts(tls_endpoint, tls_observations)
    if _no_certificate(tls_endpoint, facts, findings, "its revocation"):
        return
    revocation = revocation_observations[tls_endpoint.id]
    seam.attach_json(f"revocation facts of {tls_endpoint.id}", revocation.to_dict())
    findings.extend(judge_revocation(revocation, site.tls), target=tls_endpoint.named(facts.target))
