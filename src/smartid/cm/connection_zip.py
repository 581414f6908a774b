"""Certificate Manager's connection zip, the one IDM Admin takes on the CA's General tab, and the
officer's PKCS#12 keystore inside it.

The real layout of CM's connection zip is not public (docs/vendor.md); the suite's own,
built on the documented `Nexus_CM.properties` name and `caTokenProcedureImportCert` key, is:

    Nexus_CM.properties   cm.url, cm.keystore.file, cm.keystore.password, cm.truststore.files
                          (comma-separated entry names), cm.transport=REST and, when given,
                          caTokenProcedureImportCert
    <keystore name>       the IDM officer's PKCS#12 keystore (client certificate for CM)
    trust/<n>.pem         the certificates that CM's TLS server certificate chains to

The reader takes files a user hands over, so it refuses what could escape a folder or exhaust
memory before it parses anything (smartid.safezip), and every refusal is one sentence naming the
entry or the property, never a password.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from smartid.cm.properties import PropertiesError, format_properties, parse_properties
from smartid.files import write_private
from smartid.masking import MASKER, Secret
from smartid.safezip import ZipLimits, ZipRejected, deterministic_zip, entry_parts, read_entries

__all__ = [
    "MAX_ENTRIES",
    "MAX_TOTAL_BYTES",
    "PROPERTIES",
    "ConnectionZip",
    "ConnectionZipError",
    "build_connection_zip",
    "client_cert_files",
    "keystore_password",
    "pkcs12_encryption",
    "read_connection_zip",
    "reencode_pkcs12",
]

PROPERTIES = "Nexus_CM.properties"
MAX_ENTRIES = 50
MAX_TOTAL_BYTES = 10 * 1024 * 1024

_URL, _KEYSTORE, _PASSWORD = "cm.url", "cm.keystore.file", "cm.keystore.password"
_TRUST, _TRANSPORT, _IMPORT = "cm.truststore.files", "cm.transport", "caTokenProcedureImportCert"
_REQUIRED = (_URL, _KEYSTORE, _PASSWORD)
_COMMENT = "Smart ID Certificate Manager connection (written by the Smart ID suite)"
# One entry may fill the whole zip; no keystore, PEM or properties file compresses anywhere near
# 100:1, so an entry that does is a bomb.
_LIMITS = ZipLimits(
    entries=MAX_ENTRIES, total_bytes=MAX_TOTAL_BYTES, entry_bytes=MAX_TOTAL_BYTES, ratio=100
)
# Java keytool's own PKCS#12 iteration count: every Java that reads these files accepts it.
_KDF_ROUNDS = 10_000
# DER of the algorithm identifiers that tell the two PKCS#12 encryptions apart.
_PBES2_OID = bytes.fromhex("06092a864886f70d01050d")  # 1.2.840.113549.1.5.13
_AES_CBC_OID_PREFIX = bytes.fromhex("06096086480165030401")  # 2.16.840.1.101.3.4.1.*
_PKCS12_PBE_OID_PREFIX = bytes.fromhex("060a2a864886f70d010c01")  # 1.2.840.113549.1.12.1.*
_BAD_KEYSTORE = "wrong keystore password or corrupt keystore"
# The key types a PKCS#12 keystore can be written with (pkcs12.PKCS12PrivateKeyTypes).
_PKCS12_KEYS = (
    rsa.RSAPrivateKey,
    dsa.DSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


class ConnectionZipError(ValueError):
    """A connection zip is not usable; one sentence naming the entry or property, no password."""


@dataclass(frozen=True, repr=False)
class ConnectionZip:
    """A connection zip as read; `properties` holds the keystore password, so repr hides it."""

    properties: Mapping[str, str]
    keystore_name: str
    keystore: bytes  # the officer's PKCS#12
    trust_certs: tuple[bytes, ...]  # PEM, one item per trust file

    @property
    def url(self) -> str:
        return self.properties[_URL]

    def __repr__(self) -> str:
        return (
            f"ConnectionZip(url={self.url!r}, keys={sorted(self.properties)}, "
            f"keystore_name={self.keystore_name!r}, keystore=<{len(self.keystore)} bytes>, "
            f"trust_certs=<{len(self.trust_certs)} files>)"
        )


def build_connection_zip(
    *,
    url: str,
    keystore: bytes,
    keystore_password: Secret,
    trust_certs: Sequence[bytes],
    keystore_name: str = "idm-officer.p12",
    import_procedure: str | None = None,
) -> bytes:
    """The connection zip: deterministic bytes (sorted entries, fixed 1980-01-01 timestamps,
    stored not deflated), so the same input gives the same sha256 and setup can tell that the
    uploaded zip is already the wanted one. ConnectionZipError for input the reader would refuse.
    """
    if not _plain_name(keystore_name) or keystore_name == PROPERTIES:
        raise ConnectionZipError(f"keystore name {keystore_name!r} is not a plain entry name")
    trust_names = [f"trust/{n}.pem" for n in range(1, len(trust_certs) + 1)]
    properties = {
        _URL: url,
        _KEYSTORE: keystore_name,
        _PASSWORD: keystore_password.reveal(),
        _TRUST: ",".join(trust_names),
        _TRANSPORT: "REST",
    }
    if import_procedure is not None:
        properties[_IMPORT] = import_procedure
    written = format_properties(properties, comment=_COMMENT)
    files = {PROPERTIES: written, keystore_name: keystore}
    files.update(zip(trust_names, trust_certs, strict=True))
    data = deterministic_zip(files, mode=0o600)  # it holds a password and a key
    read_connection_zip(data)  # what the suite builds, it can read back
    return data


def read_connection_zip(data: bytes) -> ConnectionZip:
    """The connection zip in `data`, or ConnectionZipError.

    Refused: not a zip; an entry with a '..' component, an absolute path, a backslash or a drive
    letter, or an encrypted, duplicate or corrupt entry; more than MAX_ENTRIES entries, more than
    MAX_TOTAL_BYTES expanded or an entry compressed more than 100:1; no Nexus_CM.properties, or
    one without cm.url, cm.keystore.file or cm.keystore.password; the keystore or a trust file it
    names missing from the zip; a keystore that does not open with the password or lacks a key or
    a certificate; a trust file that is not PEM certificates.
    """
    try:
        entries = read_entries(data, _LIMITS, what="the connection zip")
    except ZipRejected as exc:
        raise ConnectionZipError(str(exc)) from None
    if PROPERTIES not in entries:
        raise ConnectionZipError(f"the connection zip has no {PROPERTIES}")
    try:
        text = entries[PROPERTIES].decode("utf-8")
    except UnicodeDecodeError:
        text = entries[PROPERTIES].decode("latin-1")  # Java's own encoding for .properties
    try:
        properties = parse_properties(text)
    except PropertiesError as exc:
        raise ConnectionZipError(f"{PROPERTIES}: {exc}") from None
    for key in _REQUIRED:
        if not properties.get(key):
            raise ConnectionZipError(f"{PROPERTIES} lacks {key}")
    name = properties[_KEYSTORE]
    if name not in entries:
        raise ConnectionZipError(f"the keystore {name!r} named by {_KEYSTORE} is not in the zip")
    try:
        _load_keystore(entries[name], properties[_PASSWORD])
    except ValueError as exc:
        raise ConnectionZipError(f"entry {name!r}: {exc}") from None
    trust = []
    for trust_name in filter(None, (n.strip() for n in properties.get(_TRUST, "").split(","))):
        if trust_name not in entries:
            raise ConnectionZipError(f"the trust file {trust_name!r} named by {_TRUST} is missing")
        try:
            x509.load_pem_x509_certificates(entries[trust_name])
        except ValueError:
            raise ConnectionZipError(f"entry {trust_name!r} is not PEM certificates") from None
        trust.append(entries[trust_name])
    return ConnectionZip(MappingProxyType(properties), name, entries[name], tuple(trust))


def keystore_password(zip: ConnectionZip) -> Secret:
    """The keystore password, registered with the masker so that no report shows it."""
    secret = Secret(zip.properties[_PASSWORD], f"{PROPERTIES} {_PASSWORD}")
    MASKER.register(secret)
    return secret


def reencode_pkcs12(data: bytes, password: Secret, *, legacy: bool) -> bytes:
    """The same key, certificate and CA certificates under the same password, encrypted with
    AES-256-CBC and PBKDF2/HMAC-SHA256, or with `legacy` 3DES and a SHA-1 MAC, the only
    encryption Java runtimes before 8u301 can open. ValueError if it does not open."""
    key, cert, cas, friendly = _load_keystore(data, password.reveal())
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(_KDF_ROUNDS)
    if legacy:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        builder = builder.hmac_hash(hashes.SHA1())  # noqa: S303 - the legacy format's MAC
    else:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        builder = builder.hmac_hash(hashes.SHA256())
    encryption = builder.build(password.reveal().encode())
    return pkcs12.serialize_key_and_certificates(friendly, key, cert, cas, encryption)


def pkcs12_encryption(data: bytes) -> Literal["aes", "legacy"]:
    """How a PKCS#12 keystore is encrypted, read from its algorithm identifiers (which are not
    encrypted): "aes" when any part uses PBES2 with AES, since then only a modern Java opens it;
    "legacy" for the PKCS#12 PBE family (3DES, RC2). ValueError when it is neither."""
    if _PBES2_OID in data and _AES_CBC_OID_PREFIX in data:
        return "aes"
    if _PKCS12_PBE_OID_PREFIX in data:
        return "legacy"
    raise ValueError("not a PKCS#12 keystore encrypted with AES or a PKCS#12 PBE algorithm")


@contextmanager
def client_cert_files(p12: bytes, password: Secret, folder: Path) -> Iterator[tuple[Path, Path]]:
    """The keystore as (certificate chain PEM, unencrypted key PEM), because requests and ssl
    only take files. Both are created 0600 in `folder`, which the caller keeps private (the
    site state), and removed on exit, also after an error. ValueError if it does not open."""
    key, cert, cas, _ = _load_keystore(p12, password.reveal())
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *cas))
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stem = f".cm-client-{secrets.token_hex(8)}"
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    try:
        write_private(cert_path, chain)
        write_private(key_path, pem_key)
        yield cert_path, key_path
    finally:
        key_path.unlink(missing_ok=True)
        cert_path.unlink(missing_ok=True)


def _load_keystore(
    data: bytes, password: str
) -> tuple[pkcs12.PKCS12PrivateKeyTypes, x509.Certificate, list[x509.Certificate], bytes | None]:
    """Key, certificate, CA certificates and friendly name; ValueError naming no secret."""
    try:
        loaded = pkcs12.load_pkcs12(data, password.encode())
    except (ValueError, TypeError):
        raise ValueError(_BAD_KEYSTORE) from None
    if loaded.key is None:
        raise ValueError("the keystore holds no private key")
    if loaded.cert is None:
        raise ValueError("the keystore holds no certificate for its key")
    if not isinstance(loaded.key, _PKCS12_KEYS):
        raise ValueError("the keystore's key is of a type a PKCS#12 keystore cannot hold")
    cas = [c.certificate for c in loaded.additional_certs]
    return loaded.key, loaded.cert.certificate, cas, loaded.cert.friendly_name


def _plain_name(name: str) -> bool:
    """A file entry's name that stays inside the folder the zip is unpacked into."""
    try:
        entry_parts(name)
    except ZipRejected:
        return False
    return not name.endswith("/")
