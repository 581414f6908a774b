"""What the mutual-TLS proof of the officer certificate saw (`smartid.cm.mtls` observes it), and
its judgement (pure): CM refuses a client without a certificate and accepts the officer's.

CM's REST API is not public, so the proof asks for nothing CM-specific: any HTTP status line on
the first read counts as "the TLS layer let this client in"; a TLS alert, or the connection closed
in the handshake or on the first read, counts as "refused". An attempt that could not verify CM's
own certificate, or not reach it, proves nothing about the client certificate and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from smartid.tls.judge import Finding

__all__ = ["Attempt", "OfficerProof", "Outcome", "Stage", "judge_officer_proof"]

# answered: an HTTP status line came back; refused: the peer broke off (alert, close, reset);
# untrusted: CM's certificate did not verify; unreachable: no TCP connection; timeout: the
# deadline passed; protocol: the peer spoke neither TLS nor HTTP as expected.
Outcome = Literal["answered", "refused", "untrusted", "unreachable", "timeout", "protocol"]
Stage = Literal["connect", "handshake", "read"]


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One connection to CM, with or without the officer certificate, and how it ended."""

    with_certificate: bool
    outcome: Outcome
    stage: Stage  # where it ended; "read" for an answer
    protocol: str | None = None  # negotiated TLS version, once the handshake completed
    alert: str | None = None  # the TLS alert the peer sent, e.g. "certificate_unknown"
    status_line: str | None = None  # e.g. "HTTP/1.1 404 Not Found", one line, shortened
    error: str | None = None  # what happened instead of an answer, one phrase

    def __post_init__(self) -> None:
        answered = self.outcome == "answered"
        if answered != (self.status_line is not None) or answered == (self.error is not None):
            raise ValueError("Attempt: an answer has a status line and no error, and vice versa")
        if self.alert is not None and self.outcome != "refused":
            raise ValueError("Attempt: only a refusal carries a TLS alert")
        if answered and self.stage != "read":
            raise ValueError("Attempt: an answer comes on the read")


@dataclass(frozen=True, kw_only=True)
class OfficerProof:
    """Both attempts at CM's `url`: without a client certificate, then with the officer's."""

    url: str
    target: str  # host:port
    server_name: str
    anonymous: Attempt
    officer: Attempt

    def __post_init__(self) -> None:
        if self.anonymous.with_certificate or not self.officer.with_certificate:
            raise ValueError("OfficerProof: the anonymous attempt is without a certificate")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, for evidence attached to a report (no key, no password)."""
        return asdict(self)


_DEMANDED = "a client certificate demanded: a client without one refused"
_ACCEPTED = "the site's officer certificate accepted: an HTTP answer to the first request"
_WHERE = {"handshake": "in the TLS handshake", "read": "on the first read after the handshake"}
_REQUIRED = {
    "untrusted": "CM's certificate verified with the site's CA bundle and server name",
    "unreachable": "CM accepting TCP connections",
    "timeout": "CM answering within the site's timeouts",
    "protocol": "CM answering HTTPS",
}


def judge_officer_proof(proof: OfficerProof) -> list[Finding]:
    """Every finding of the proof: CM answered a client without a certificate, refused the
    officer's (naming the alert), or could not be asked (said once when both attempts failed
    alike)."""
    where = f"CM {proof.target}"
    findings: list[Finding] = []
    anonymous, officer = proof.anonymous, proof.officer
    if anonymous.outcome == "answered":
        observed = f"answers '{anonymous.status_line}' to a client without a certificate"
        findings.append(Finding("client-auth", "critical", observed, _DEMANDED, where))
    if officer.outcome == "refused":
        how = f"with the TLS alert '{officer.alert}'" if officer.alert else f"({officer.error})"
        observed = f"refuses the officer certificate {_WHERE.get(officer.stage, '')} {how}"
        findings.append(
            Finding("officer", "critical", " ".join(observed.split()), _ACCEPTED, where)
        )
    unasked = [a for a in (anonymous, officer) if a.outcome not in ("answered", "refused")]
    alike = len(unasked) == 2 and (anonymous.outcome, anonymous.error) == (
        officer.outcome,
        officer.error,
    )
    for attempt in unasked[:1] if alike else unasked:
        observed = attempt.error or attempt.outcome
        if not alike:
            who = "with the officer" if attempt.with_certificate else "without a client"
            observed += f" (connecting {who} certificate)"
        findings.append(
            Finding(attempt.outcome, "critical", observed, _REQUIRED[attempt.outcome], where)
        )
    return findings
