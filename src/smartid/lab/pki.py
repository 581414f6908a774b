"""The lab's PKI: a root and an issuing CA, a server certificate per component, the CM officer's
client certificate and IDM's configuration zip signer (the vendor's "ConfigZipSigner": RSA 2048,
key usage digitalSignature), kept in one folder so that the lab presents the same certificates
across restarts and a trust store made from `ca-bundle.pem` stays valid (docs/lab.md).

Where the lab's CM publishes revocation (`revocation_base`, a plain-HTTP URL of the lab's CM),
every certificate the issuing CA signs, and the issuing CA itself, names its CRL distribution
point and OCSP responder there, as CM's own certificates do; `revocation-base.txt` records the
base the certificates were made for. A folder made before (or for another port) is upgraded in
place: the issuing CA is certified again with its own key, so everything it signed stays valid,
and the server certificates and fault variants are issued again.

Fault variants (expired, wrong host, weak key, untrusted issuer, an expired or expiring signer)
are issued on demand into the same folder; an untrusted one is signed by a separate "Foreign Root
CA" that is never in the bundle.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from smartid.errors import LabError
from smartid.files import write_private

__all__ = [
    "COMPONENTS",
    "CRL_PATHS",
    "OCSP_PATH",
    "LabPKI",
    "OfficerCredentials",
    "ServerCredentials",
]

COMPONENTS = ("idm", "hermod", "cm")
OFFICER_COMMON_NAME = "IDM Officer"

_ROOT, _ISSUING, _FOREIGN, _OFFICER = "root-ca", "issuing-ca", "foreign-root-ca", "officer"
_SIGNER = "config-signer"
SIGNER_COMMON_NAME = "Smart ID Lab Config Zip Signer"
# The vendor's supported signer keys are RSA 2048, 3072 and 4096 (docs/vendor.md).
_SIGNER_RSA_BITS = 2048
_BUNDLE = "ca-bundle.pem"
_REVOCATION_MARK = "revocation-base.txt"
# Where the lab's CM serves what the issuing and the root CA publish, under `revocation_base`.
CRL_PATHS = {"issuing": "issuing-ca.crl", "root": "root-ca.crl"}
OCSP_PATH = "ocsp"
# Names whose files ensure() manages as a set: an extra certificate under one of them would break
# the chain or leave officer.p12 holding another certificate than officer.pem.
_RESERVED = frozenset({_ROOT, _ISSUING, _FOREIGN, _OFFICER, _SIGNER, "ca-bundle"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Back-dated so that a peer whose clock runs a little behind still accepts a fresh certificate.
_BACKDATE = timedelta(hours=1)
# 825 days: the longest leaf validity Apple platforms accept from a locally trusted root.
_LEAF_VALIDITY = timedelta(days=825)
_ROOT_VALIDITY = timedelta(days=3650)
_ISSUING_VALIDITY = timedelta(days=1825)
# Lab passwords are long random tokens, so the PBKDF2 cost only has to be respectable, not slow:
# 10,000 rounds, as Java's keytool writes PKCS#12 keystores (and as smartid.cm.connection_zip
# re-encrypts them).
_KDF_ROUNDS = 10_000
_KEY_MODE, _CERT_MODE, _FOLDER_MODE = 0o600, 0o644, 0o700

_PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ServerCredentials:
    """A certificate chain (leaf, then its issuer) and its key, as `load_cert_chain` takes them."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class OfficerCredentials:
    """The CM officer's client certificate as PEM files and as the PKCS#12 keystore IDM uploads."""

    cert: Path
    key: Path
    p12: Path


@dataclass(frozen=True)
class _Issuer:
    cert: x509.Certificate
    key: _PrivateKey
    # The CRL and OCSP URLs of what this issuer signs; None: it publishes none.
    revocation: tuple[str, str] | None = None


class LabPKI:
    """The certificates and keys of one lab, as files in `folder`."""

    def __init__(self, folder: Path, revocation_base: str | None = None) -> None:
        self.folder = folder
        self.revocation_base = revocation_base.rstrip("/") if revocation_base else None

    def _urls(self, issuer: str) -> tuple[str, str] | None:
        base = self.revocation_base
        return (f"{base}/{CRL_PATHS[issuer]}", f"{base}/{OCSP_PATH}") if base else None

    @property
    def issuing_key(self) -> Path:
        return self.folder / f"{_ISSUING}.key"

    @property
    def root_key(self) -> Path:
        return self.folder / f"{_ROOT}.key"

    @property
    def root_cert(self) -> Path:
        return self.folder / f"{_ROOT}.pem"

    @property
    def issuing_cert(self) -> Path:
        return self.folder / f"{_ISSUING}.pem"

    @property
    def ca_bundle(self) -> Path:
        """Root and issuing CA: what a client needs to verify every lab server."""
        return self.folder / _BUNDLE

    def server(self, component: str) -> ServerCredentials:
        if component not in COMPONENTS:
            raise ValueError(f"unknown lab component {component!r}; expected one of {COMPONENTS}")
        return self._credentials(component)

    @property
    def officer(self) -> OfficerCredentials:
        creds = self._credentials(_OFFICER)
        return OfficerCredentials(creds.cert, creds.key, self.folder / f"{_OFFICER}.p12")

    @property
    def config_signer(self) -> ServerCredentials:
        """The certificate (then its issuer's) and key that sign IDM's configuration export."""
        return self._credentials(_SIGNER)

    def ensure(self, officer_password: str) -> None:
        """Create what is missing; never regenerate what exists, because the lab's certificates
        must survive restarts. A certificate is reissued only when it or its issuer is incomplete,
        and an existing officer.p12 is kept whatever `officer_password` is now."""
        if self._complete():
            if not self._revocation_current():
                self._upgrade_revocation()
            return
        self.folder.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
        self.folder.chmod(_FOLDER_MODE)
        plan = self._plan()
        # Dependants go first, so that a crash part way leaves files missing (and so redone on the
        # next call) rather than a certificate signed by a key that no longer exists.
        for stem in plan:
            (self.folder / f"{stem}.pem").unlink(missing_ok=True)
        if _ISSUING in plan:
            self.ca_bundle.unlink(missing_ok=True)
        if _OFFICER in plan:
            self.officer.p12.unlink(missing_ok=True)
        self._issue_planned(plan)
        if not self.ca_bundle.exists():
            bundle = self.root_cert.read_bytes() + self.issuing_cert.read_bytes()
            write_private(self.ca_bundle, bundle, _CERT_MODE)
        officer = self.officer
        if not officer.p12.exists():
            data = self.pkcs12(ServerCredentials(officer.cert, officer.key), officer_password)
            write_private(officer.p12, data, _KEY_MODE)
        self._mark_revocation()

    def _revocation_current(self) -> bool:
        if self.revocation_base is None:
            return True
        try:
            return (self.folder / _REVOCATION_MARK).read_text() == self.revocation_base
        except OSError:
            return False

    def _mark_revocation(self) -> None:
        if self.revocation_base is not None:
            mark = self.revocation_base.encode()
            write_private(self.folder / _REVOCATION_MARK, mark, _CERT_MODE)

    def _upgrade_revocation(self) -> None:
        """Certify the issuing CA again with its own key and the current URLs, then reissue the
        server certificates; fault variants are issued again when next asked for."""
        for variant in self.folder.glob("fault-*"):
            variant.unlink(missing_ok=True)
        issuing = self._issuer(_ISSUING)
        cert = _ca_certificate(
            "Smart ID Lab Issuing CA", issuing.key, self._issuer(_ROOT), 0, _ISSUING_VALIDITY
        )
        self._write_pair(_ISSUING, cert, issuing.key)
        bundle = self.root_cert.read_bytes() + self.issuing_cert.read_bytes()
        write_private(self.ca_bundle, bundle, _CERT_MODE)
        for component in COMPONENTS:
            self._server(component, "localhost", ("localhost", "127.0.0.1"))
        self._mark_revocation()

    def issue_server(
        self,
        name: str,
        *,
        common_name: str = "localhost",
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        rsa_bits: int | None = None,
        issuer: Literal["issuing", "foreign"] = "issuing",
    ) -> ServerCredentials:
        """A server certificate variant as <name>.pem/<name>.key, replacing an earlier one; the
        faults use it for expired, wrong-host, weak-key and untrusted certificates."""
        _check_name(name)
        return self._server(name, common_name, hosts, not_before, not_after, rsa_bits, issuer)

    def issue_client(
        self,
        name: str,
        *,
        common_name: str,
        issuer: Literal["issuing", "foreign"] = "issuing",
        not_after: datetime | None = None,
    ) -> ServerCredentials:
        """A client certificate such as a foreign or expired officer, to prove CM refuses it."""
        _check_name(name)
        return self._client(name, common_name, issuer, not_after)

    def issue_signer(
        self, name: str, *, not_before: datetime | None = None, not_after: datetime | None = None
    ) -> ServerCredentials:
        """A configuration zip signer variant as <name>.pem/<name>.key, replacing an earlier one;
        the faults use it for an expired or an expiring signer."""
        _check_name(name)
        return self._signer(name, _validity(not_before, not_after))

    def pkcs12(self, creds: ServerCredentials, password: str, *, legacy: bool = False) -> bytes:
        """`creds` as a PKCS#12 keystore with the CA certificates a peer needs to build the chain.

        AES-256-CBC with PBKDF2/HMAC-SHA256 by default; `legacy` uses 3DES with a SHA-1 MAC,
        because Java runtimes before 8u301 cannot open anything else.
        """
        if not password:
            raise ValueError("a PKCS#12 password must not be empty")
        leaf, *chain = x509.load_pem_x509_certificates(creds.cert.read_bytes())
        cas = self._lab_chain(leaf) or chain
        return pkcs12.serialize_key_and_certificates(
            creds.cert.stem.encode(), _load_key(creds.key), leaf, cas, _encryption(password, legacy)
        )

    def _credentials(self, stem: str) -> ServerCredentials:
        return ServerCredentials(self.folder / f"{stem}.pem", self.folder / f"{stem}.key")

    def _has_pair(self, stem: str) -> bool:
        creds = self._credentials(stem)
        return creds.cert.exists() and creds.key.exists()

    def _complete(self) -> bool:
        try:
            if self.folder.stat().st_mode & 0o777 != _FOLDER_MODE:
                return False
        except FileNotFoundError:
            return False
        stems = (_ROOT, _ISSUING, *COMPONENTS, _OFFICER, _SIGNER)
        pairs = all(self._has_pair(stem) for stem in stems)
        return pairs and self.ca_bundle.exists() and self.officer.p12.exists()

    def _plan(self) -> list[str]:
        """What to (re)issue, in order: an incomplete CA takes everything it signed with it."""
        plan: list[str] = []
        for stem in (_ROOT, _ISSUING):
            if plan or not self._has_pair(stem):
                plan.append(stem)
        plan += [s for s in (*COMPONENTS, _OFFICER, _SIGNER) if plan or not self._has_pair(s)]
        return plan

    def _issue_planned(self, plan: list[str]) -> None:
        if _ROOT in plan:
            key = ec.generate_private_key(ec.SECP384R1())
            cert = _ca_certificate("Smart ID Lab Root CA", key, None, 1, _ROOT_VALIDITY)
            self._write_pair(_ROOT, cert, key)
        if _ISSUING in plan:
            key = ec.generate_private_key(ec.SECP256R1())
            root = self._issuer(_ROOT)
            cert = _ca_certificate("Smart ID Lab Issuing CA", key, root, 0, _ISSUING_VALIDITY)
            self._write_pair(_ISSUING, cert, key)
        for component in COMPONENTS:
            if component in plan:
                self._server(component, "localhost", ("localhost", "127.0.0.1"))
        if _OFFICER in plan:
            self._client(_OFFICER, OFFICER_COMMON_NAME, "issuing", None)
        if _SIGNER in plan:
            self._signer(_SIGNER, _validity(None, None))

    def _server(
        self,
        name: str,
        common_name: str,
        hosts: tuple[str, ...],
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        rsa_bits: int | None = None,
        issuer: str = "issuing",
    ) -> ServerCredentials:
        key = _new_key(rsa_bits)
        subject = _name(common_name, organization=name)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
        signer = self._issuer_for(issuer)
        cert = _leaf(subject, key, signer, usage, hosts, _validity(not_before, not_after))
        return self._write_pair(name, cert, key, signer)

    def _client(
        self, name: str, common_name: str, issuer: str, not_after: datetime | None
    ) -> ServerCredentials:
        key = _new_key(None)
        signer = self._issuer_for(issuer)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
        cert = _leaf(_name(common_name), key, signer, usage, (), _validity(None, not_after))
        return self._write_pair(name, cert, key, signer)

    def _signer(self, name: str, validity: tuple[datetime, datetime]) -> ServerCredentials:
        key = rsa.generate_private_key(public_exponent=65537, key_size=_SIGNER_RSA_BITS)
        signer = self._issuer_for("issuing")
        usage = ExtendedKeyUsageOID.CODE_SIGNING
        cert = _leaf(_name(SIGNER_COMMON_NAME), key, signer, usage, (), validity)
        return self._write_pair(name, cert, key, signer)

    def _issuer_for(self, issuer: str) -> _Issuer:
        if issuer == "issuing":
            if not self._has_pair(_ISSUING):
                raise LabError(f"{self.folder}: no issuing CA yet; call LabPKI.ensure() first")
            return self._issuer(_ISSUING)
        if issuer != "foreign":
            raise ValueError(f"unknown issuer {issuer!r}; expected 'issuing' or 'foreign'")
        if not self._has_pair(_FOREIGN):
            self.folder.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
            key = ec.generate_private_key(ec.SECP256R1())
            self._write_pair(_FOREIGN, _ca_certificate("Foreign Root CA", key), key)
        return self._issuer(_FOREIGN)

    def _issuer(self, stem: str) -> _Issuer:
        creds = self._credentials(stem)
        publishes = {_ROOT: "root", _ISSUING: "issuing"}.get(stem)
        return _Issuer(
            x509.load_pem_x509_certificate(creds.cert.read_bytes()),
            _load_key(creds.key),
            self._urls(publishes) if publishes else None,
        )

    def _lab_chain(self, leaf: x509.Certificate) -> list[x509.Certificate]:
        """Issuing and root CA when the lab's issuing CA signed `leaf`, else nothing."""
        if not (self.issuing_cert.exists() and self.root_cert.exists()):
            return []
        issuing = x509.load_pem_x509_certificate(self.issuing_cert.read_bytes())
        try:
            leaf.verify_directly_issued_by(issuing)
        except (ValueError, TypeError, InvalidSignature):
            return []
        return [issuing, x509.load_pem_x509_certificate(self.root_cert.read_bytes())]

    def _write_pair(
        self, stem: str, cert: x509.Certificate, key: _PrivateKey, issuer: _Issuer | None = None
    ) -> ServerCredentials:
        """Key first, then the certificate (followed by its issuer's for a leaf): a pair counts as
        present only when its certificate is, so a crash between the writes is repaired by the
        next ensure()."""
        creds = self._credentials(stem)
        creds.cert.unlink(missing_ok=True)
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(creds.key, pem_key, _KEY_MODE)
        chain = cert.public_bytes(serialization.Encoding.PEM)
        if issuer is not None:
            chain += issuer.cert.public_bytes(serialization.Encoding.PEM)
        write_private(creds.cert, chain, _CERT_MODE)
        return creds


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name in _RESERVED:
        raise ValueError(
            f"{name!r} cannot name an extra certificate: use letters, digits, '.', "
            f"'_' and '-', and none of {sorted(_RESERVED)}"
        )


def _new_key(rsa_bits: int | None) -> _PrivateKey:
    if rsa_bits is not None:
        # cryptography still generates 1024-bit keys, which the weak-key fault needs.
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def _load_key(path: Path) -> _PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise LabError(f"{path}: not an EC or RSA private key")
    return key


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are read as UTC, as cryptography itself reads them."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _validity(not_before: datetime | None, not_after: datetime | None) -> tuple[datetime, datetime]:
    """Back-dated start and the leaf lifetime by default; a `not_after` in the past alone gives a
    certificate that was valid for a lifetime before it expired."""
    after = None if not_after is None else _utc(not_after)
    if not_before is not None:
        before = _utc(not_before)
    elif after is not None and after <= datetime.now(UTC) - _BACKDATE:
        before = after - _LEAF_VALIDITY
    else:
        before = datetime.now(UTC) - _BACKDATE
    after = before + _LEAF_VALIDITY if after is None else after
    if after <= before:
        raise ValueError(
            f"not_after {after.isoformat()} is not after not_before {before.isoformat()}"
        )
    return before, after


def _builder(
    subject: x509.Name,
    key: _PrivateKey,
    issuer: _Issuer | None,
    validity: tuple[datetime, datetime],
) -> x509.CertificateBuilder:
    public_key = key.public_key()
    signer_key = issuer.key.public_key() if issuer else public_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key)
        builder = builder.add_extension(aki, critical=False)
    if issuer and issuer.revocation:
        crl, ocsp = issuer.revocation
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None, None)
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp)
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder


def _ca_certificate(
    common_name: str,
    key: _PrivateKey,
    issuer: _Issuer | None = None,
    path_length: int = 0,
    lifetime: timedelta = _ROOT_VALIDITY,
) -> x509.Certificate:
    start = datetime.now(UTC) - _BACKDATE
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        _builder(_name(common_name), key, issuer, (start, start + lifetime))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
    )
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def _leaf(
    subject: x509.Name,
    key: _PrivateKey,
    issuer: _Issuer,
    purpose: x509.ObjectIdentifier,
    hosts: tuple[str, ...],
    validity: tuple[datetime, datetime],
) -> x509.Certificate:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # RSA key exchange (TLS 1.2 without ECDHE) encrypts to a server's key; EC keys never do.
        key_encipherment=isinstance(key, rsa.RSAPrivateKey)
        and purpose == ExtendedKeyUsageOID.SERVER_AUTH,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        _builder(subject, key, issuer, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    )
    if hosts:
        builder = builder.add_extension(_subject_alt_names(hosts), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


def _subject_alt_names(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _encryption(password: str, legacy: bool) -> serialization.KeySerializationEncryption:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(_KDF_ROUNDS)
    if legacy:
        # SHA-1 only as the MAC of the legacy format that old Java runtimes can read.
        return (
            builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303
            .build(password.encode())
        )
    return (
        builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
