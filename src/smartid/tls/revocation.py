"""Revocation of a presented chain (TLS-009): the facts fetched for it and their pure judgement.

Every certificate of the chain but a self-signed root is judged from the CRL at each of its CRL
Distribution Points and from the OCSP responder at each of its Authority Information Access
"OCSP" URLs (RFC 5280 4.2.1.13 and 4.2.2.1, RFC 6960). The fetching is `smartid.tls.fetch`'s;
this module does no I/O and reads no clock unless asked.

What a finding weighs: a revoked certificate, a CRL or an OCSP answer that is stale, signed by a
key other than the issuer's (or, for OCSP, a responder the issuer delegated to), not what it claims
to be, or an OCSP "unknown" is critical whatever the policy. What only says that the status could
not be learnt (a responder that does not answer, a certificate with no revocation URL, an issuer
the suite cannot find) follows `[tls] revocation`: "require" critical, "prefer" a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
)

from smartid.site import TlsPolicy
from smartid.tls.judge import Finding, Severity

__all__ = [
    "ChainCertificate",
    "Fetched",
    "RevocationFacts",
    "judge_revocation",
    "revocation_urls",
]

# What a clock that runs a little ahead of the CA's may see as "not yet" without calling it wrong.
_SKEW = timedelta(minutes=5)
_SOURCES = {"CRL": "CRL", "OCSP": "OCSP responder"}
_REQUIRED = "no certificate of the chain revoked, proven by its CRL and OCSP responder"


@dataclass(frozen=True)
class Fetched:
    """One answer of a CRL distribution point or an OCSP responder: its body, or why none."""

    url: str
    body: bytes | None
    error: str | None  # one phrase: "connection refused", "HTTP 404"
    fetched_at: datetime  # UTC

    def __post_init__(self) -> None:
        if (self.body is None) == (self.error is None):
            raise ValueError("Fetched: exactly one of body and error")
        if self.fetched_at.tzinfo is None:
            raise ValueError("Fetched.fetched_at must be timezone-aware (UTC)")


@dataclass(frozen=True)
class ChainCertificate:
    """One certificate of the chain with its issuer and what its revocation URLs answered."""

    subject: str
    der: bytes
    issuer_der: bytes | None  # None: neither presented nor in the CA bundle
    crls: tuple[Fetched, ...]  # one per CRL distribution point, in the certificate's order
    ocsp: tuple[Fetched, ...]  # one per OCSP URL

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer_found": self.issuer_der is not None,
            "crls": [_fetched_dict(f) for f in self.crls],
            "ocsp": [_fetched_dict(f) for f in self.ocsp],
        }


@dataclass(frozen=True)
class RevocationFacts:
    """What was learnt about the revocation of one endpoint's presented chain."""

    target: str  # host:port
    observed_at: datetime  # UTC
    certificates: tuple[ChainCertificate, ...]

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("RevocationFacts.observed_at must be timezone-aware (UTC)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "observed_at": self.observed_at.astimezone(UTC).isoformat(),
            "certificates": [c.to_dict() for c in self.certificates],
        }


def revocation_urls(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The certificate's CRL distribution point URLs and OCSP URLs (http or https only)."""
    crls: list[str] = []
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        points = x509.CRLDistributionPoints([])
    for point in points:
        crls += [
            n.value for n in point.full_name or () if isinstance(n, x509.UniformResourceIdentifier)
        ]
    ocsp_urls: list[str] = []
    try:
        access = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    except x509.ExtensionNotFound:
        access = None
    if access is not None and isinstance(access.value, x509.AuthorityInformationAccess):
        for description in access.value:
            location = description.access_location
            if description.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                location, x509.UniformResourceIdentifier
            ):
                ocsp_urls.append(location.value)
    web = ("http://", "https://")
    return (
        tuple(u for u in crls if u.lower().startswith(web)),
        tuple(u for u in ocsp_urls if u.lower().startswith(web)),
    )


def judge_revocation(
    f: RevocationFacts, policy: TlsPolicy, now: datetime | None = None
) -> list[Finding]:
    """Every finding about the revocation of `f`'s chain; `now` defaults to the observation."""
    moment = now or f.observed_at
    unproven: Severity = "critical" if policy.revocation == "require" else "warning"
    max_age = timedelta(hours=policy.ocsp_max_age_hours)
    found: list[Finding] = []
    # One finding per source that did not answer, naming every certificate it left unproven: a
    # responder that is down says so once per endpoint, not once per certificate.
    unanswered: dict[tuple[str, str, str], list[str]] = {}
    for c in f.certificates:
        judge = _Judge(c, f.target, moment, unproven, max_age)
        for finding in judge.all():
            if isinstance(finding, _Unanswered):
                unanswered.setdefault((finding.what, finding.url, finding.error), []).append(
                    judge.name
                )
            else:
                found.append(finding)
    for (what, url, error), names in unanswered.items():
        key = f"{what.lower()}-unavailable"
        observed = f"the {_SOURCES[what]} at {url} could not be fetched: {error}"
        observed += f" (so {' and '.join(names)} {'is' if len(names) == 1 else 'are'} unproven)"
        found.append(Finding(key, unproven, observed, _REQUIRED, f.target))
    return found


@dataclass(frozen=True)
class _Unanswered:
    what: str  # "CRL" or "OCSP"
    url: str
    error: str


class _Judge:
    """The findings of one certificate."""

    def __init__(
        self,
        c: ChainCertificate,
        target: str,
        moment: datetime,
        unproven: Severity,
        max_age: timedelta,
    ) -> None:
        self.c, self.target, self.moment = c, target, moment
        self.unproven, self.max_age = unproven, max_age
        self.cert = x509.load_der_x509_certificate(c.der)
        self.issuer = x509.load_der_x509_certificate(c.issuer_der) if c.issuer_der else None
        self.name = f"'{c.subject}'"

    def finding(self, key: str, observed: str, severity: Severity = "critical") -> Finding:
        return Finding(key, severity, observed, _REQUIRED, self.target)

    def all(self) -> Sequence[Finding | _Unanswered]:
        if not self.c.crls and not self.c.ocsp:
            return [
                self.finding(
                    "no-revocation-url",
                    f"{self.name} names no CRL distribution point and no OCSP responder",
                    self.unproven,
                )
            ]
        if self.issuer is None:
            return [
                self.finding(
                    "issuer-unknown",
                    f"{self.name}: its issuer '{self.cert.issuer.rfc4514_string()}' is neither "
                    "presented nor in the CA bundle, so no CRL or OCSP answer can be verified",
                    self.unproven,
                )
            ]
        found: list[Finding | _Unanswered] = []
        for fetched in self.c.crls:
            found += self._crl(fetched, self.issuer)
        for fetched in self.c.ocsp:
            found += self._ocsp(fetched, self.issuer)
        return found

    def _unavailable(self, what: str, fetched: Fetched) -> _Unanswered:
        return _Unanswered(what, fetched.url, fetched.error or "no answer")

    def _crl(self, fetched: Fetched, issuer: x509.Certificate) -> Sequence[Finding | _Unanswered]:
        if fetched.body is None:
            return [self._unavailable("CRL", fetched)]
        crl = _load_crl(fetched.body)
        if crl is None:
            return [self.finding("crl-invalid", f"{self.name}: {fetched.url} is not a CRL")]
        where = f"the CRL at {fetched.url}"
        if crl.issuer != issuer.subject or not _crl_signed_by(crl, issuer):
            return [
                self.finding(
                    "crl-signature",
                    f"{self.name}: {where} is not signed by its issuer "
                    f"'{issuer.subject.rfc4514_string()}' (issued by "
                    f"'{crl.issuer.rfc4514_string()}')",
                )
            ]
        found: list[Finding] = []
        next_update = crl.next_update_utc
        if next_update is None or next_update < self.moment:
            when = f"on {next_update:%Y-%m-%d %H:%M} UTC" if next_update else "(no nextUpdate)"
            found.append(
                self.finding("crl-stale", f"{self.name}: {where} is stale: next update due {when}")
            )
        entry = crl.get_revoked_certificate_by_serial_number(self.cert.serial_number)
        if entry is not None:
            found.append(
                self.finding(
                    "revoked",
                    f"{self.name} is revoked: {where} lists serial {self.cert.serial_number:x} "
                    f"since {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC",
                )
            )
        return found

    def _ocsp(self, fetched: Fetched, issuer: x509.Certificate) -> Sequence[Finding | _Unanswered]:
        if fetched.body is None:
            return [self._unavailable("OCSP", fetched)]
        where = f"the OCSP responder at {fetched.url}"
        try:
            response = ocsp.load_der_ocsp_response(fetched.body)
        except ValueError:
            return [self.finding("ocsp-invalid", f"{self.name}: {where} sent no OCSP response")]
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            status = response.response_status.name
            error = f"answered {status}"
            return [
                self._unavailable("OCSP", Fetched(fetched.url, None, error, fetched.fetched_at))
            ]
        signer = _ocsp_signer(response, issuer)
        if signer is None:
            return [
                self.finding(
                    "ocsp-signature",
                    f"{self.name}: {where} is signed by neither its issuer "
                    f"'{issuer.subject.rfc4514_string()}' nor a responder it delegated to",
                )
            ]
        single = _single_for(response, self.cert, issuer)
        if single is None:
            return [
                self.finding(
                    "ocsp-mismatch", f"{self.name}: {where} answered for another certificate"
                )
            ]
        return self._single(single, where)

    def _single(self, single: ocsp.OCSPSingleResponse, where: str) -> list[Finding]:
        found: list[Finding] = []
        this_update, next_update = single.this_update_utc, single.next_update_utc
        if next_update is not None and next_update < self.moment:
            found.append(
                self.finding(
                    "ocsp-stale",
                    f"{self.name}: {where} gave an answer whose next update was due on "
                    f"{next_update:%Y-%m-%d %H:%M} UTC",
                )
            )
        elif this_update < self.moment - self.max_age:
            age = (self.moment - this_update).total_seconds() / 3600
            found.append(
                self.finding(
                    "ocsp-stale",
                    f"{self.name}: {where} gave an answer produced {age:.0f} hours ago "
                    f"(at most {self.max_age.total_seconds() / 3600:.0f} hours)",
                )
            )
        elif this_update > self.moment + _SKEW:
            found.append(
                self.finding(
                    "ocsp-stale",
                    f"{self.name}: {where} gave an answer dated in the future "
                    f"({this_update:%Y-%m-%d %H:%M} UTC)",
                )
            )
        status = single.certificate_status
        if status == ocsp.OCSPCertStatus.REVOKED:
            since = single.revocation_time_utc
            when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
            found.append(
                self.finding("revoked", f"{self.name} is revoked: {where} says revoked{when}")
            )
        elif status == ocsp.OCSPCertStatus.UNKNOWN:
            found.append(
                self.finding("ocsp-unknown", f"{self.name}: {where} does not know the certificate")
            )
        return found


def _fetched_dict(f: Fetched) -> dict[str, Any]:
    return {
        "url": f.url,
        "bytes": len(f.body) if f.body is not None else None,
        "error": f.error,
        "fetched_at": f.fetched_at.astimezone(UTC).isoformat(),
    }


def _load_crl(body: bytes) -> x509.CertificateRevocationList | None:
    try:
        if body.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(body)
        return x509.load_der_x509_crl(body)
    except ValueError:
        return None


# Signature checks are pure functions of the bytes they check; the endpoints of one run share
# their CA's chain, CRLs and responder, so each check is made once per process. Bounded: a
# hostile server cannot grow these without limit.
_MEMO_LIMIT = 512
_MEMO: dict[tuple[object, ...], bool] = {}


def _memo(key: tuple[object, ...], check: Callable[[], bool]) -> bool:
    known = _MEMO.get(key)
    if known is None:
        known = check()
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = known
    return known


def check_signature(body: bytes, issuer_der: bytes, *, crl: bool) -> None:
    """Check now the signature the judge will check on this CRL or OCSP answer from the CA of
    `issuer_der` (remembered, see `_memo`); the fetcher calls it as each answer arrives. Bytes
    that do not parse are left to the judge, which says so."""
    issuer = x509.load_der_x509_certificate(issuer_der)
    if crl:
        parsed = _load_crl(body)
        if parsed is not None and parsed.issuer == issuer.subject:
            _crl_signed_by(parsed, issuer)
        return
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return
    if response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL:
        _ocsp_signer(response, issuer)


def forget_signature_checks() -> None:
    """Forget every remembered signature check (for benchmarks that time a fresh run)."""
    _MEMO.clear()


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer`'s name and key issued `cert`."""
    if cert.issuer != issuer.subject:
        return False
    return _memo(("issued", cert, issuer), lambda: _directly_issued(cert, issuer))


def _directly_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = ("crl", crl.fingerprint(hashes.SHA256()), issuer)
    return _memo(key, lambda: _crl_signature_valid(crl, issuer))


def _crl_signature_valid(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    supported = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if not isinstance(key, supported | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return False
    try:
        return crl.is_signature_valid(key)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return False


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """The issuer, or a delegated responder certificate (issued by it, EKU OCSPSigning), whose key
    signed `response`; None if neither did (RFC 6960 4.2.2.2)."""
    if _signed_with(response, issuer):
        return issuer
    for candidate in _responder_candidates(response):
        if not _directly_issued(candidate, issuer):
            continue
        try:
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in usage and _signed_with(response, candidate):
            return candidate
    return None


def _responder_candidates(response: ocsp.OCSPResponse) -> Iterator[x509.Certificate]:
    yield from response.certificates


def _signed_with(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    memo = ("ocsp", response.tbs_response_bytes, response.signature, cert)
    return _memo(memo, lambda: _ocsp_signature_valid(response, cert))


def _ocsp_signature_valid(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    key = cert.public_key()
    signature, data = response.signature, response.tbs_response_bytes
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _single_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse | None:
    """The single answer about `cert`, matched by serial and issuer hashes as OCSP defines them."""
    for single in response.responses:
        algorithm = single.hash_algorithm
        if not isinstance(algorithm, hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
            continue
        expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
        if (
            single.serial_number == cert.serial_number
            and single.issuer_key_hash == expected.issuer_key_hash
            and single.issuer_name_hash == expected.issuer_name_hash
        ):
            return single
    return None
