"""Frozen facts of one TLS observation: what a server presented and what its handshakes did.

The probe (`smartid.tls.probe`) is the only code that makes them from the network; the judge
(`smartid.tls.judge`) is the only code that turns them into findings. Tests build them directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

__all__ = ["CertificateFacts", "CipherProbe", "ErrorKind", "HandshakeFacts"]

ErrorKind = Literal["tls", "connect", "timeout", "protocol"]


@dataclass(frozen=True)
class CertificateFacts:
    """One certificate as the server presented it."""

    subject: str
    issuer: str
    serial: str  # lowercase hex
    not_before: datetime  # UTC
    not_after: datetime  # UTC
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: str  # "RSA", "EC", "DSA", "Ed25519", "Ed448" or "unknown"
    key_bits: int
    signature_hash: str | None  # lowercase ("sha256", "sha1"); None for Ed25519/Ed448
    self_signed: bool
    sha256_fingerprint: str  # lowercase hex, no separators
    # Whether the certificate has a subjectAltName extension at all (RFC 9525: clients match host
    # names against its dNSName and iPAddress entries only, never the subject's CN).
    has_subject_alt_name: bool = False
    common_names: tuple[str, ...] = ()  # the subject's CN values, to describe a SAN-less one
    # The certificate itself, for judges that need more than these facts (revocation); never
    # shown in a report.
    der: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"CertificateFacts.{name} must be timezone-aware (UTC)")

    @classmethod
    def from_der(cls, der: bytes) -> CertificateFacts:
        """The facts of a DER certificate; ValueError if it cannot be parsed."""
        cert = x509.load_der_x509_certificate(der)
        key_type, key_bits = _key_facts(cert)
        dns_names: tuple[str, ...] = ()
        ip_addresses: tuple[str, ...] = ()
        has_san = False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            has_san = True
            dns_names = tuple(san.get_values_for_type(x509.DNSName))
            ip_addresses = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            key_type=key_type,
            key_bits=key_bits,
            signature_hash=_signature_hash(cert),
            self_signed=_self_signed(cert),
            sha256_fingerprint=hashlib.sha256(der).hexdigest(),
            has_subject_alt_name=has_san,
            common_names=tuple(
                str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            ),
            der=der,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, for evidence attached to a report."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "key": f"{self.key_type} {self.key_bits}",
            "signature_hash": self.signature_hash,
            "self_signed": self.self_signed,
            "sha256_fingerprint": self.sha256_fingerprint,
            "has_subject_alt_name": self.has_subject_alt_name,
            "common_names": list(self.common_names),
        }


@dataclass(frozen=True)
class CipherProbe:
    """What TLS 1.2 handshakes offering the suites of one family (an OpenSSL cipher string), with
    other families' or alone, showed: whether this OpenSSL could offer any, and whether the server
    accepted one (`suite`, the one it agreed to)."""

    family: str
    offered: bool  # False: the local OpenSSL has no TLS 1.2 suite of the family to offer
    accepted: bool = False
    suite: str | None = None  # the suite agreed, when the handshake got that far

    def __post_init__(self) -> None:
        if self.accepted and not self.offered:
            raise ValueError(f"CipherProbe {self.family}: accepted but never offered")

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "offered": self.offered,
            "accepted": self.accepted,
            "suite": self.suite,
        }


@dataclass(frozen=True)
class HandshakeFacts:
    """Everything one `observe()` of an endpoint learned; see `smartid.tls.probe.observe`."""

    target: str  # "host:port"
    server_name: str
    observed_at: datetime  # UTC
    # The verifying handshake (site CA bundle, hostname check) succeeded, and the server did not
    # refuse the client certificate (or its absence) right after it, as TLS 1.3 servers do.
    ok: bool
    error: str | None  # why it failed, one phrase
    error_kind: ErrorKind | None
    protocol: str | None  # negotiated by the verifying handshake, e.g. "TLSv1.3"
    cipher: str | None
    # As presented, leaf first: from the verifying handshake, else from an observe-only one.
    chain: tuple[CertificateFacts, ...]
    client_cert_demanded: bool | None  # None: not probed, or the probe could not tell
    legacy: Mapping[str, bool] = field(default_factory=dict)  # "TLSv1" -> accepted; {}: not probed
    duration_ms: float = 0.0
    # A TLS 1.2-only handshake offering every suite was accepted (False: TLS 1.3 only); None:
    # the cipher families were not probed.
    tls12: bool | None = None
    ciphers: tuple[CipherProbe, ...] = ()  # one per family probed, in the order asked

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("HandshakeFacts.observed_at must be timezone-aware (UTC)")
        if self.ok != (self.error is None) or (self.error is None) != (self.error_kind is None):
            raise ValueError("HandshakeFacts: ok, error and error_kind disagree")
        # A copy, so that the caller's dict cannot change the facts afterwards.
        object.__setattr__(self, "legacy", dict(self.legacy))

    @property
    def leaf(self) -> CertificateFacts | None:
        return self.chain[0] if self.chain else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values, for evidence attached to a report."""
        return {
            "target": self.target,
            "server_name": self.server_name,
            "observed_at": self.observed_at.astimezone(UTC).isoformat(),
            "ok": self.ok,
            "error": self.error,
            "error_kind": self.error_kind,
            "protocol": self.protocol,
            "cipher": self.cipher,
            "chain": [cert.to_dict() for cert in self.chain],
            "client_cert_demanded": self.client_cert_demanded,
            "legacy": dict(self.legacy),
            "tls12": self.tls12,
            "ciphers": [probe.to_dict() for probe in self.ciphers],
            "duration_ms": round(self.duration_ms, 3),
        }


def _key_facts(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return "unknown", 0


def _signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        # An algorithm cryptography does not know (md2, say) keeps its OID, so a policy can list it.
        return cert.signature_algorithm_oid.dotted_string
    return algorithm.name.lower() if algorithm is not None else None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography no longer verifies SHA-1 (or exotic) signatures; matching key identifiers,
        # or failing those the names alone, still tell a self-issued certificate.
        return _key_ids_match(cert)
    return True


def _key_ids_match(cert: x509.Certificate) -> bool:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return True
    return aki.key_identifier is None or aki.key_identifier == ski.digest
