"""Certificates made in tests: self-signed roots, issuing CAs under them, and server or client
leaves with every fault the TLS checks must see (expired, not yet valid, wrong host, self-signed,
foreign root, weak key, SHA-1), as certificate objects (to build facts from DER) and as files (to
serve them, with the chain or without it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "REASONS",
    "Cert",
    "Pki",
    "make_ca",
    "make_leaf",
    "sha1_leaf",
    "sha1_self_signed",
    "write_chain",
]

_NOW = dt.datetime.now(dt.UTC)

_Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# What OpenSSL 3.0 (`ssl`, Python 3.11) says about each fault, as `describe_exception` words it.
# test_tls_probe proves a real handshake gives exactly these; test_tls_judge builds facts with them.
REASONS = {
    "expired": "TLS certificate verification failed: certificate has expired",
    "not-yet-valid": "TLS certificate verification failed: certificate is not yet valid",
    "hostname": (
        "TLS certificate verification failed: Hostname mismatch, certificate is not valid for "
        "'localhost'."
    ),
    "self-signed": "TLS certificate verification failed: self-signed certificate",
    "untrusted": (
        "TLS certificate verification failed: self-signed certificate in certificate chain"
    ),
    "unknown-issuer": "TLS certificate verification failed: unable to get local issuer certificate",
    "weak-key": "TLS certificate verification failed: EE certificate key too weak",
    "sha1": "TLS certificate verification failed: CA signature digest algorithm too weak",
    # A server that demands a client certificate, met without one (TLS 1.3 / 1.2) or a foreign one.
    "no-client-cert-tls13": "TLS handshake failed: TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "no-client-cert-tls12": "TLS handshake failed: SSLV3_ALERT_HANDSHAKE_FAILURE",
    "foreign-client-cert": "TLS handshake failed: TLSV1_ALERT_UNKNOWN_CA",
    # A server that speaks only TLS 1.0 (or only 1.1), met by a client offering TLS 1.2 and 1.3.
    "legacy-only": "TLS handshake failed: TLSV1_ALERT_PROTOCOL_VERSION",
}


@dataclass(frozen=True)
class Cert:
    cert: x509.Certificate
    key: _Key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _new_key(rsa_bits: int | None) -> _Key:
    if rsa_bits:
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    name: str, issuer: Cert | None = None, *, days: int = 3650, key_id: bool = True
) -> Cert:
    """A CA certificate: self-signed when `issuer` is None, else an intermediate under it;
    `key_id`: with a subject key identifier."""
    key = _new_key(None)
    subject = _name(name)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=2))
        .not_valid_after(_NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    )
    if key_id:
        identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(identifier, critical=False)
    return Cert(builder.sign(signer_key, hashes.SHA256()), key)


def make_leaf(
    issuer: Cert | None,
    common_name: str = "localhost",
    *,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 365,
    not_before_days: int = -1,
    rsa_bits: int | None = None,
    client: bool = False,
    authority_key_id: bool = False,
) -> Cert:
    """A server (or client) certificate; self-signed when `issuer` is None; with
    `authority_key_id`, naming its issuer's key."""
    key = _new_key(rsa_bits)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW + dt.timedelta(days=not_before_days))
        .not_valid_after(_NOW + dt.timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if authority_key_id and issuer is not None:
        identifier = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(identifier, critical=False)
    return Cert(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


class Pki:
    """A root and an issuing CA under it, as a deployment's private PKI has."""

    def __init__(self, name: str = "Test") -> None:
        self.root = make_ca(f"{name} Root CA")
        self.issuing = make_ca(f"{name} Issuing CA", self.root)

    def leaf(
        self,
        common_name: str = "localhost",
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        days: int = 365,
        not_before_days: int = -1,
        rsa_bits: int | None = None,
    ) -> Cert:
        return make_leaf(
            self.issuing,
            common_name,
            hosts=hosts,
            days=days,
            not_before_days=not_before_days,
            rsa_bits=rsa_bits,
        )


def write_chain(folder: Path, name: str, leaf: Cert, *chain: Cert) -> tuple[Path, Path]:
    """`name.pem` (the leaf, then `chain` in order) and `name.key`; returns both paths."""
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(leaf.pem + b"".join(c.pem for c in chain))
    key_path.write_bytes(leaf.key_pem)
    return cert_path, key_path


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def sha1_leaf(folder: Path, issuer: Cert) -> tuple[bytes, Path]:
    """A leaf for localhost signed by `issuer` with SHA-1: (DER, key file). cryptography refuses to
    sign with SHA-1; the `openssl` command still does."""
    (folder / "sha1-ca.pem").write_bytes(issuer.pem)
    (folder / "sha1-ca.key").write_bytes(issuer.key_pem)
    key = folder / "sha1.key"
    key.write_bytes(make_leaf(None).key_pem)
    (folder / "sha1.ext").write_text("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    _openssl(folder, "req", "-new", "-key", key.name, "-subj", "/CN=localhost", "-out", "sha1.csr")
    _openssl(
        folder, "x509", "-req", "-sha1", "-in", "sha1.csr", "-CA", "sha1-ca.pem",
        "-CAkey", "sha1-ca.key", "-set_serial", "4660", "-days", "365", "-extfile", "sha1.ext",
        "-outform", "DER", "-out", "sha1.der",
    )  # fmt: skip
    return (folder / "sha1.der").read_bytes(), key


def sha1_self_signed(folder: Path) -> bytes:
    """DER of a self-signed SHA-1 root, the kind old PKIs still send along."""
    _openssl(
        folder, "req", "-x509", "-sha1", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "sha1-root.key", "-subj", "/CN=Old SHA-1 Root", "-days", "365",
        "-outform", "DER", "-out", "sha1-root.der",
    )  # fmt: skip
    return (folder / "sha1-root.der").read_bytes()
