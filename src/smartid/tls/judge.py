"""Pure judgement of TLS facts against the site's TLS policy (docs/checks.md): no I/O, no clock
unless asked (expiry is judged at the moment of observation by default).

Every function returns all findings it sees, each under a stable key with what was observed and what
the policy requires, so a check can report them at once. Thresholds come from `TlsPolicy`; what a
failure weighs is fixed here (`Severity`), per kind of finding.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from smartid.site import TlsPolicy
from smartid.tls.facts import CertificateFacts, HandshakeFacts

__all__ = [
    "Finding",
    "Severity",
    "cipher_notes",
    "judge_all",
    "judge_ciphers",
    "judge_client_auth",
    "judge_expiry",
    "judge_handshake",
    "judge_keys",
    "judge_protocol",
    "judge_signatures",
    "names_host",
]

Severity = Literal["blocker", "critical", "normal", "minor", "warning"]

_VERSION_RANK = {"SSLv2": 0, "SSLv3": 1, "TLSv1": 2, "TLSv1.1": 3, "TLSv1.2": 4, "TLSv1.3": 5}

# Keys derived from the reason of a failed verifying handshake, matched in order against OpenSSL's
# wording (both spellings of "self-signed": OpenSSL 3 hyphenates, 1.1 did not).
_UNKNOWN_ISSUER = "unknown-issuer"
_WEAK_DIGEST = "weak-digest"
_REASON_KEYS = (
    ("certificate has expired", "expired"),
    ("certificate is not yet valid", "not-yet-valid"),
    ("hostname mismatch", "hostname"),
    ("ip address mismatch", "hostname"),
    ("self-signed certificate in certificate chain", "untrusted"),
    ("self signed certificate in certificate chain", "untrusted"),
    ("self-signed certificate", "self-signed"),
    ("self signed certificate", "self-signed"),
    ("unable to get local issuer certificate", _UNKNOWN_ISSUER),
    ("unable to get issuer certificate", _UNKNOWN_ISSUER),
    ("unable to verify the first certificate", _UNKNOWN_ISSUER),
    ("key too weak", "key-size"),
    ("key too small", "key-size"),
    ("digest algorithm too weak", _WEAK_DIGEST),
    ("md too weak", _WEAK_DIGEST),
)

_TRUST = "a complete chain to a CA in the site's CA bundle"
_REQUIRED = {
    "connect": "an endpoint that accepts TCP connections",
    "timeout": "an answer within the site's timeout",
    "protocol": "TLS on this port",
    "expired": "certificates valid at the time of the handshake",
    "not-yet-valid": "certificates valid at the time of the handshake",
    "self-signed": _TRUST,
    "untrusted": _TRUST,
    "incomplete-chain": _TRUST,
    "key-size": "certificate keys the verifying client accepts",
    "client-certificate": "a client certificate the server accepts",
    "handshake": "a TLS handshake that succeeds with the site's CA bundle and server name",
}


@dataclass(frozen=True)
class Finding:
    """One problem: a stable key, what it weighs, what was observed, what is required, where."""

    key: str
    severity: Severity
    observed: str
    required: str
    target: str

    def __str__(self) -> str:
        return f"{self.target}: {self.observed} (required: {self.required})"


def judge_handshake(f: HandshakeFacts, policy: TlsPolicy) -> list[Finding]:
    """A failed verifying handshake is one blocker, keyed by its reason, told from the chain. A
    handshake OpenSSL let through is judged once more for the name: OpenSSL (and so Python's ssl)
    falls back to the subject's CN when a certificate has no subjectAltName, RFC 9525 does not."""
    if f.ok:
        return _name_findings(f)
    key = _handshake_key(f, policy)
    detail = _handshake_detail(key, f, policy)
    observed = f.error or "the TLS handshake failed"
    if detail:
        observed = f"{observed.rstrip('.')}; {detail}"
    if key == "hostname":
        required = f"a certificate valid for '{f.server_name}'"
    elif key.startswith("signature:"):
        required = "certificates signed with a hash the verifying client accepts"
    else:
        required = _REQUIRED.get(key, _REQUIRED["handshake"])
    return [Finding(key, "blocker", observed, required, f.target)]


def judge_protocol(f: HandshakeFacts, policy: TlsPolicy) -> list[Finding]:
    """The negotiated version meets the policy minimum; no version below it is accepted."""
    minimum = _VERSION_RANK[policy.min_version]
    findings = []
    if f.protocol is not None and _VERSION_RANK.get(f.protocol, -1) < minimum:
        findings.append(
            Finding(
                "protocol",
                "critical",
                f"negotiated {f.protocol}, the newest version the server accepts",
                f"{policy.min_version} or newer",
                f.target,
            )
        )
    for version in sorted(f.legacy, key=lambda v: _VERSION_RANK.get(v, -1)):
        if f.legacy[version] and _VERSION_RANK.get(version, -1) < minimum:
            findings.append(
                Finding(
                    f"legacy:{version}",
                    "critical",
                    f"accepts a handshake offering only {version}",
                    f"{version} refused, as every version below {policy.min_version}",
                    f.target,
                )
            )
    return findings


def judge_expiry(
    f: HandshakeFacts, policy: TlsPolicy, now: datetime | None = None
) -> list[Finding]:
    """The leaf and the intermediates are valid and not about to expire; `now` defaults to the
    moment of observation. Below `expiry_fail_days` is critical; below `expiry_warn_days` a warning
    (which passes)."""
    moment = now or f.observed_at
    findings = []
    for cert in _leaf_and_intermediates(f.chain):
        name = _name(cert)
        if moment < cert.not_before:
            findings.append(
                Finding(
                    "not-yet-valid",
                    "critical",
                    f"{name} is valid only from {cert.not_before:%Y-%m-%d %H:%M} UTC",
                    _REQUIRED["not-yet-valid"],
                    f.target,
                )
            )
            continue
        days = (cert.not_after - moment).total_seconds() / 86400
        until = f"{cert.not_after:%Y-%m-%d}"
        fail = f"at least {policy.expiry_fail_days} days of validity left"
        if days < 0:
            observed = f"{name} expired on {until}, {_days(-days)} ago"
            findings.append(Finding("expired", "critical", observed, fail, f.target))
        elif days < policy.expiry_fail_days:
            observed = f"{name} expires on {until}, in {_days(days)}"
            findings.append(Finding("expiring", "critical", observed, fail, f.target))
        elif days < policy.expiry_warn_days:
            observed = f"{name} expires on {until}, in {_days(days)}"
            required = f"at least {policy.expiry_warn_days} days of validity left"
            findings.append(Finding("expiring", "warning", observed, required, f.target))
    return findings


def judge_keys(f: HandshakeFacts, policy: TlsPolicy) -> list[Finding]:
    """Keys of the leaf and the intermediates meet the policy's minimum sizes (a self-signed root
    the server sends along is not judged: the CA bundle's copy is the one trusted)."""
    return [
        Finding(
            "key-size",
            "critical",
            f"{_name(cert)} has a {cert.key_bits}-bit {cert.key_type} key",
            f"{cert.key_type} keys of at least {_minimum_bits(cert.key_type, policy)} bits",
            f.target,
        )
        for cert in _weak_keys(f.chain, policy)
    ]


def judge_signatures(f: HandshakeFacts, policy: TlsPolicy) -> list[Finding]:
    """No certificate of the chain is signed with a forbidden hash (self-signed roots excepted:
    nothing relies on a root's signature over itself)."""
    forbidden = sorted({_hash_name(h) for h in policy.forbidden_signature_hashes})
    return [
        Finding(
            f"signature:{_hash_name(cert.signature_hash)}",
            "critical",
            f"{_name(cert)} is signed with {cert.signature_hash}",
            f"no signature made with {' or '.join(forbidden)}",
            f.target,
        )
        for cert in _forbidden_signatures(f.chain, forbidden)
        if cert.signature_hash is not None
    ]


def judge_ciphers(f: HandshakeFacts, policy: TlsPolicy) -> list[Finding]:
    """In TLS 1.2 the server accepts no suite of a family the policy forbids (critical) and none
    it warns of (a warning, which passes). What the probe could not tell is in `cipher_notes`."""
    forbidden = set(policy.forbidden_ciphers)
    probes = {probe.family: probe for probe in f.ciphers}
    findings = []
    for family in policy.cipher_families:
        probe = probes.get(family)
        if probe is None or not probe.accepted:
            continue
        suite = probe.suite or f"a suite of {family}"
        observed = f"accepts {suite} in a TLS 1.2 handshake offering only {family}"
        if family in forbidden:
            required = f"no suite of {family} accepted ([tls] forbidden_ciphers)"
            findings.append(Finding(f"cipher:{family}", "critical", observed, required, f.target))
        else:
            required = (
                f"no suite of {family} accepted ([tls] warn_ciphers: CBC suites; move the "
                "family to forbidden_ciphers to fail on it)"
            )
            findings.append(Finding(f"cipher:{family}", "warning", observed, required, f.target))
    return findings


def cipher_notes(f: HandshakeFacts, policy: TlsPolicy) -> list[str]:
    """What the cipher probes could not judge, or judged without probing, one sentence each:
    a family this OpenSSL cannot offer is "not probed", never a pass."""
    if f.tls12 is None:
        return ["not probed: no cipher family was probed"]
    if not f.tls12:
        return [
            "negotiates only TLS 1.3 (a TLS 1.2 handshake offering every suite was refused): "
            "TLS 1.3 has only AEAD suites with forward secrecy, so no family was probed"
        ]
    probes = {probe.family: probe for probe in f.ciphers}
    notes = []
    for family in policy.cipher_families:
        probe = probes.get(family)
        if probe is None:
            notes.append(f"not probed: {family} (the observation did not ask for it)")
        elif not probe.offered:
            notes.append(f"not probed: this OpenSSL cannot offer {family}")
    return notes


def judge_client_auth(f: HandshakeFacts, required: bool) -> list[Finding]:
    """The server demands a client certificate exactly when the site says it must."""
    demanded = f.client_cert_demanded
    if required and demanded is not True:
        if demanded is None:
            observed = "whether the server demands a client certificate is unknown"
            observed += f" ({f.error})" if f.error else " (not probed)"
        else:
            observed = "accepts a client without a certificate"
        return [
            Finding("client-auth", "critical", observed, "a client certificate demanded", f.target)
        ]
    if not required and demanded is True:
        return [
            Finding(
                "client-auth",
                "normal",
                "demands a client certificate",
                "no client certificate demanded (the site declares none)",
                f.target,
            )
        ]
    return []


def judge_all(
    f: HandshakeFacts,
    policy: TlsPolicy,
    *,
    client_auth_required: bool | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Every finding of every judge above; a certificate property that already failed the
    handshake (expired, weak key, ...) is reported once, as the handshake's finding."""
    handshake = judge_handshake(f, policy)
    rest = [
        *judge_protocol(f, policy),
        *judge_expiry(f, policy, now),
        *judge_keys(f, policy),
        *judge_signatures(f, policy),
    ]
    if client_auth_required is not None:
        rest += judge_client_auth(f, client_auth_required)
    seen = {finding.key for finding in handshake}
    return handshake + [finding for finding in rest if finding.key not in seen]


def _handshake_key(f: HandshakeFacts, policy: TlsPolicy) -> str:
    if f.error_kind in ("connect", "timeout", "protocol"):
        return f.error_kind
    if _client_certificate_refused(f):
        return "client-certificate"
    reason = (f.error or "").lower()
    for needle, key in _REASON_KEYS:
        if needle not in reason:
            continue
        if key == _UNKNOWN_ISSUER:
            # OpenSSL says the same for a leaf sent without its intermediate and for a chain from
            # a CA the bundle lacks; what the server sent tells them apart as far as it can: a lone
            # leaf is most often a missing intermediate, a longer chain a foreign CA.
            return "incomplete-chain" if len(f.chain) <= 1 else "untrusted"
        if key == _WEAK_DIGEST:
            weak = _forbidden_signatures(f.chain, policy.forbidden_signature_hashes)
            hash_name = weak[0].signature_hash if weak else None
            return f"signature:{_hash_name(hash_name)}" if hash_name else "handshake"
        return key
    return "handshake"


def _client_certificate_refused(f: HandshakeFacts) -> bool:
    # An alert comes from the server, and the only certificate a server judges is the client's: an
    # alert naming a certificate (or any alert, from a server known to demand one) refused ours.
    reason = (f.error or "").upper()
    if "_ALERT_" not in reason:
        return False
    named = any(word in reason for word in ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED"))
    return named or f.client_cert_demanded is True


def _handshake_detail(key: str, f: HandshakeFacts, policy: TlsPolicy) -> str | None:
    """The failed certificate described from the chain facts, in a few words."""
    leaf = f.leaf
    if leaf is None:
        return None
    reason = (f.error or "").lower()
    if key == "expired":
        expired = [c for c in f.chain if c.not_after < f.observed_at]
        return (
            f"{_name(expired[0])} expired on {expired[0].not_after:%Y-%m-%d}" if expired else None
        )
    if key == "not-yet-valid":
        early = [c for c in f.chain if c.not_before > f.observed_at]
        return (
            f"{_name(early[0])} is valid only from {early[0].not_before:%Y-%m-%d}"
            if early
            else None
        )
    if key == "hostname":
        if not (leaf.dns_names or leaf.ip_addresses):
            return _no_san(leaf)
        return f"{_name(leaf)} is valid for {', '.join((*leaf.dns_names, *leaf.ip_addresses))}"
    if key == "self-signed":
        return f"{_name(leaf)} is signed by itself"
    if key == "untrusted":
        top = f.chain[-1]
        if top.self_signed:
            return f"the presented chain ends at the root {_name(top)}, which the bundle lacks"
        return f"the presented chain ends at {_name(top)}, issued by '{top.issuer}'"
    if key == "incomplete-chain":
        return (
            f"the server presented only {_name(leaf)}; its issuer '{leaf.issuer}' is neither "
            "presented nor in the CA bundle (a missing intermediate, or an untrusted CA)"
        )
    if key == "key-size":
        # OpenSSL names the end-entity ("EE") or a CA; the policy tells which key is too small.
        weak = _weak_keys(f.chain, policy) or ([leaf] if "ee certificate" in reason else [])
        return (
            f"{_name(weak[0])} has a {weak[0].key_bits}-bit {weak[0].key_type} key"
            if weak
            else None
        )
    if key.startswith("signature:"):
        weak = _forbidden_signatures(f.chain, policy.forbidden_signature_hashes)
        return f"{_name(weak[0])} is signed with {weak[0].signature_hash}" if weak else None
    return None


# --- host names (RFC 9525) ----------------------------------------------------------------------


def _name_findings(f: HandshakeFacts) -> list[Finding]:
    leaf = f.leaf
    if leaf is None or names_host(leaf, f.server_name):
        return []
    if leaf.dns_names or leaf.ip_addresses:
        names = ", ".join((*leaf.dns_names, *leaf.ip_addresses))
        observed = (
            f"{_name(leaf)} is valid for {names}, not '{f.server_name}' in its subjectAltName "
            "(RFC 9525: a DNS name matches dNSName entries only, an IP address iPAddress ones)"
        )
    else:
        observed = _no_san(leaf)
    required = f"a certificate whose subjectAltName names '{f.server_name}'"
    return [Finding("hostname", "blocker", observed, required, f.target)]


def _no_san(leaf: CertificateFacts) -> str:
    what = (
        "has a subjectAltName without dNSName or iPAddress entries"
        if leaf.has_subject_alt_name
        else "has no subjectAltName"
    )
    if not leaf.common_names:
        return f"{_name(leaf)} {what} and names no host"
    cn = ", ".join(f"'CN={name}'" for name in leaf.common_names)
    return (
        f"{_name(leaf)} {what}; {cn} names the host only in the CN, which clients ignore (RFC 9525)"
    )


def names_host(leaf: CertificateFacts, server_name: str) -> bool:
    """RFC 9525 §6.3: an IP address matches an iPAddress entry only, a DNS name a dNSName entry
    only (case-insensitively; a wildcard only as the whole leftmost label, over one label); the
    subject's CN never counts."""
    try:
        address = ipaddress.ip_address(server_name.strip("[]"))
    except ValueError:
        pass
    else:
        return any(_same_ip(address, entry) for entry in leaf.ip_addresses)
    host = server_name.rstrip(".").lower()
    return any(_dns_matches(entry.rstrip(".").lower(), host) for entry in leaf.dns_names)


def _same_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool:
    try:
        return ipaddress.ip_address(entry) == address
    except ValueError:
        return False


def _dns_matches(pattern: str, host: str) -> bool:
    if pattern == host:
        return True
    first, dot, rest = pattern.partition(".")
    if first != "*" or not dot or "*" in rest or rest.count(".") < 1:
        return False  # no partial wildcards, none below a public suffix of one label
    label, dot, host_rest = host.partition(".")
    return bool(label) and bool(dot) and host_rest == rest


def _leaf_and_intermediates(chain: tuple[CertificateFacts, ...]) -> list[CertificateFacts]:
    # The leaf always counts, even self-signed: it is the server's own certificate and key.
    return [cert for index, cert in enumerate(chain) if index == 0 or not cert.self_signed]


def _weak_keys(chain: tuple[CertificateFacts, ...], policy: TlsPolicy) -> list[CertificateFacts]:
    weak = []
    for cert in _leaf_and_intermediates(chain):
        minimum = _minimum_bits(cert.key_type, policy)
        if minimum is not None and cert.key_bits < minimum:
            weak.append(cert)
    return weak


def _forbidden_signatures(
    chain: tuple[CertificateFacts, ...], forbidden: Iterable[str]
) -> list[CertificateFacts]:
    names = {_hash_name(h) for h in forbidden}
    return [
        cert
        for cert in chain
        if not cert.self_signed
        and cert.signature_hash is not None
        and _hash_name(cert.signature_hash) in names
    ]


def _hash_name(name: str | None) -> str:
    # The policy may say "SHA-1" or "sha1"; facts say "sha1".
    return (name or "").lower().replace("-", "").replace("_", "")


def _minimum_bits(key_type: str, policy: TlsPolicy) -> int | None:
    if key_type in ("RSA", "DSA"):
        return policy.min_rsa_bits
    if key_type == "EC":
        return policy.min_ec_bits
    return None  # Ed25519/Ed448 have one fixed strength


def _name(cert: CertificateFacts) -> str:
    return (
        f"'{cert.subject}'" if cert.subject else f"the certificate {cert.sha256_fingerprint[:16]}"
    )


def _days(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = math.floor(days)
    return "1 day" if whole == 1 else f"{whole} days"
