"""What a check needs before it can judge anything, and which check's failure takes it away
(docs/checks.md, "Blocked checks").

A check names the facts it needs with `@pytest.mark.needs(...)`:

- `reachable:<endpoint>`: the endpoint accepts a TCP connection and answers in TLS (CONN-001);
- `verified:<endpoint>`: ... and a verifying handshake with the site's CA bundle and server name
  succeeds (TLS-001);
- `login`: IDM Admin accepts the site's administrator with the site's password (CONN-002); it
  needs `verified:idm` first.

`<endpoint>` is an endpoint id (`idm`, `idm-operator`, `hermod`, `cm`, `endpoint-<name>`) or
`{case}`, the check's own case. When a fact is missing the check is not run: it is "blocked by"
the root check's case with that check's one line, which the root check reports itself as its
failure. The root's line is made by the same judges the root check uses (`reach_findings`,
`handshake_findings`, `login_findings`), so the two always read the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from smartid.site import IdmSection, TlsPolicy
from smartid.tls import HandshakeFacts, judge_handshake
from smartid.tls.judge import Finding
from smartid.verify.endpoints import TlsEndpoint
from smartid.verify.findings import finding_line
from smartid.verify.outcome import Blocker

__all__ = [
    "NEED_KINDS",
    "Need",
    "Prerequisites",
    "Sources",
    "handshake_findings",
    "login_findings",
    "parse_need",
    "reach_findings",
    "refused_for_want_of_certificate",
]

NEED_KINDS = ("reachable", "verified", "login")
# The error kinds of an observation that mean the endpoint did not answer in TLS at all.
NO_TLS = ("connect", "timeout", "protocol")


@dataclass(frozen=True)
class Need:
    kind: str
    endpoint: str | None = None


def parse_need(text: str, case: str | None = None) -> Need:
    """`verified:{case}` for the case `hermod` is Need("verified", "hermod"); ValueError for a
    need the suite does not know (a check's marker is wrong)."""
    kind, _, endpoint = text.partition(":")
    if kind not in NEED_KINDS:
        raise ValueError(f"need '{text}' is not one of {', '.join(NEED_KINDS)}")
    if kind == "login":
        if endpoint:
            raise ValueError(f"need '{text}': login takes no endpoint")
        return Need(kind)
    if not endpoint:
        raise ValueError(f"need '{text}' names no endpoint (write {kind}:<endpoint>)")
    if endpoint == "{case}":
        if case is None:
            raise ValueError(f"need '{text}' is for a check with cases; this one has none")
        endpoint = case
    return Need(kind, endpoint)


# --- the root checks' judges, shared with the checks themselves ---------------------------------


def reach_findings(
    endpoint: TlsEndpoint, facts: HandshakeFacts, policy: TlsPolicy
) -> list[Finding]:
    """CONN-001: the endpoint accepts a TCP connection and answers in TLS within the timeouts."""
    required = {
        "connect": f"a TCP connection within {policy.connect_timeout:g} s",
        "timeout": f"a TLS answer within {policy.read_timeout:g} s",
        "protocol": "TLS on this port",
    }
    if facts.error_kind not in required:
        return []
    kind = str(facts.error_kind)
    return [
        Finding(
            kind,
            "blocker",
            facts.error or "no answer",
            required[kind],
            endpoint.named(facts.target),
        )
    ]


def refused_for_want_of_certificate(endpoint: TlsEndpoint, facts: HandshakeFacts) -> bool:
    """The server was verified, then asked for a client certificate the site gives none of: what
    an endpoint declared with client_auth = "required" and no client_cert does (TLS-006 judges
    the demand)."""
    no_certificate = endpoint.client_cert is None and not endpoint.officer
    return endpoint.client_auth_required and no_certificate and facts.client_cert_demanded is True


def handshake_findings(
    endpoint: TlsEndpoint, facts: HandshakeFacts, policy: TlsPolicy
) -> list[Finding]:
    """TLS-001: a verifying handshake with the site's CA bundle and server name succeeds."""
    if refused_for_want_of_certificate(endpoint, facts):
        return []
    target = endpoint.named(facts.target)
    return [
        Finding(f.key, f.severity, f.observed, f.required, target)
        for f in judge_handshake(facts, policy)
    ]


def login_findings(login_works: bool, idm: IdmSection, admin_url: str) -> list[Finding]:
    """CONN-002: IDM Admin accepts the site's administrator with the site's password."""
    if login_works:
        return []
    return [
        Finding(
            "refused",
            "blocker",
            f"refuses user '{idm.admin_user}' with the site's password (HTTP 401)",
            "the site's administrator password accepted",
            f"IDM Admin {admin_url}",
        )
    ]


# --- resolving the facts of a run ---------------------------------------------------------------


def _root(label: str, findings: Sequence[Finding]) -> Blocker | None:
    failing = [f for f in findings if f.severity != "warning"]
    if not failing:
        return None
    more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
    return Blocker(label, finding_line(failing[0]) + more)


@dataclass(frozen=True)
class Sources:
    """Where the facts come from, asked the first time a check needs them: a run of checks that
    need neither observes nothing for them."""

    observations: Callable[[], Mapping[str, HandshakeFacts]]
    login: Callable[[], list[Finding]]


class Prerequisites:
    """The facts of one run, each resolved once, from the TLS observations every check shares
    and IDM Admin's answer to the site's administrator."""

    def __init__(self, endpoints: Sequence[TlsEndpoint], policy: TlsPolicy) -> None:
        self._endpoints = {e.id: e for e in endpoints}
        self._policy = policy
        self._resolved: dict[Need, Blocker | None] = {}

    def _endpoint(self, name: str) -> TlsEndpoint | None:
        if name == "idm-operator" and name not in self._endpoints:
            # One listener serves IDM Admin and IDM Operator: observed once, as "idm".
            name = "idm"
        return self._endpoints.get(name)

    def blocker(self, need: Need, sources: Sources) -> Blocker | None:
        """The root check that took the fact away, or None when the fact holds (or concerns an
        endpoint the site does not declare: the check then skips itself)."""
        if need not in self._resolved:
            self._resolved[need] = self._resolve(need, sources)
        return self._resolved[need]

    def first_blocker(self, needs: Sequence[Need], sources: Sources) -> Blocker | None:
        for need in needs:
            found = self.blocker(need, sources)
            if found is not None:
                return found
        return None

    def _resolve(self, need: Need, sources: Sources) -> Blocker | None:
        if need.kind == "login":
            if self._endpoint("idm") is None:
                return None  # no IDM in the site: the check skips itself
            verified = self.blocker(Need("verified", "idm"), sources)
            return verified or _root("CONN-002", sources.login())
        endpoint = self._endpoint(need.endpoint or "")
        if endpoint is None:
            return None
        facts = sources.observations().get(endpoint.id)
        if facts is None:
            return None
        reach = _root(f"CONN-001[{endpoint.id}]", reach_findings(endpoint, facts, self._policy))
        if reach is not None or need.kind == "reachable":
            return reach
        return _root(f"TLS-001[{endpoint.id}]", handshake_findings(endpoint, facts, self._policy))
