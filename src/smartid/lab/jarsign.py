"""Signing the lab's configuration export as a signed JAR, as IDM does when `zipPacker.signZip` is
on (the default; docs/vendor.md).

The JAR File Specification's three signature files, written apart from the suite's verifier
(smartid.idm.signature) so that a misreading of the specification shows as a failed test:

    META-INF/MANIFEST.MF    main attributes, then one section per entry: Name, SHA-256-Digest
    META-INF/CONFIGZI.SF    the digest of the whole manifest, of its main attributes and of
                            each of its sections
    META-INF/CONFIGZI.RSA   a detached PKCS#7 SignedData over the .SF, the signer's certificate
                            and its issuer's included (.EC for an EC key)

"CONFIGZI" is what jarsigner makes of the vendor's key alias "ConfigZipSigner" (its first eight
characters, upper case). Lines end in CRLF and no line is longer than 72 bytes: a longer header
continues on lines that start with one space, never inside a UTF-8 character. The signature has
no signed attributes (no signing time), and PKCS#1 v1.5 signatures are deterministic, so that the
same configuration and signer give the same export bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from smartid.errors import LabError
from smartid.safezip import deterministic_zip

__all__ = ["MANIFEST", "SIGNATURE_NAME", "Signing", "manifest_header", "signed_jar"]

MANIFEST = "META-INF/MANIFEST.MF"
SIGNATURE_NAME = "CONFIGZI"
CREATED_BY = "Smart ID lab (Identity Manager configuration export)"
_LINE_BYTES = 72
_CRLF = b"\r\n"
# Entries a JAR signature does not cover: the signature files themselves.
_SIGNATURE_SUFFIXES = (".SF", ".RSA", ".DSA", ".EC")


@dataclass(frozen=True, kw_only=True)
class Signing:
    """Who signs the export: a PEM chain (the signer, then its issuer) and the signer's key.
    `tamper`: the fault idm-config-signature-broken, an entry changed after signing."""

    cert: Path
    key: Path
    tamper: bool = False


def signed_jar(files: Mapping[str, bytes], signing: Signing) -> bytes:
    """`files` zipped as a signed JAR: manifest and signature files first, then the entries in
    name order. With `signing.tamper`, the first entry outside META-INF/ (in name order) gains a
    trailing newline after it was signed."""
    entries = {name: body for name, body in files.items() if not _signature_related(name)}
    chain, key = _signer(signing.cert, signing.key)
    sections = {name: _section(name, body) for name, body in sorted(entries.items())}
    main = manifest_header("Manifest-Version", "1.0") + manifest_header("Created-By", CREATED_BY)
    manifest = main + _CRLF + b"".join(sections.values())
    sf = _signature_file(main + _CRLF, manifest, sections)
    block = _signature_block(sf, chain, key)
    suffix = ".RSA" if isinstance(key, rsa.RSAPrivateKey) else ".EC"
    names = (MANIFEST, f"META-INF/{SIGNATURE_NAME}.SF", f"META-INF/{SIGNATURE_NAME}{suffix}")
    signed = dict(zip(names, (manifest, sf, block), strict=True))
    if signing.tamper and entries:
        objects = [name for name in entries if not name.startswith("META-INF/")]
        first = min(objects or entries)
        entries[first] = entries[first] + b"\n"
    return deterministic_zip({**signed, **entries}, mode=0o644, first=names)


def _signer(
    cert: Path, key: Path
) -> tuple[list[x509.Certificate], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """The signer's chain and key, read again only when either file changes (reading them took
    a third of the lab's time per download)."""
    return _load_signer(cert, key, _stamp(cert), _stamp(key))


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=16)
def _load_signer(
    cert: Path, key_path: Path, _cert_stamp: tuple[int, int], _key_stamp: tuple[int, int]
) -> tuple[list[x509.Certificate], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    chain = x509.load_pem_x509_certificates(cert.read_bytes())
    # The key is the lab's own, made by its PKI into its state folder (0600): checking an RSA
    # key's consistency guards against a key from elsewhere and costs 68 ms per 2048-bit key,
    # once per lab process and signer.
    key = serialization.load_pem_private_key(
        key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise LabError(f"{key_path}: the configuration signer's key is not RSA or EC")
    return chain, key


def manifest_header(name: str, value: str) -> bytes:
    """One `Name: value` header, CRLF-terminated, wrapped at 72 bytes as the JAR spec says."""
    rest = f"{name}: {value}".encode()
    lines: list[bytes] = []
    width = _LINE_BYTES
    while len(rest) > width:
        cut = width
        while cut > 1 and rest[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before it
            cut -= 1
        lines.append(rest[:cut])
        rest = rest[cut:]
        width = _LINE_BYTES - 1  # a continuation line starts with one space
    lines.append(rest)
    return b"\r\n ".join(lines) + _CRLF


def _signature_related(name: str) -> bool:
    folder, _, base = name.rpartition("/")
    if folder.upper() != "META-INF":
        return False
    upper = base.upper()
    return upper == "MANIFEST.MF" or upper.startswith("SIG-") or upper.endswith(_SIGNATURE_SUFFIXES)


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _section(name: str, body: bytes) -> bytes:
    """A manifest section, its terminating blank line included: the .SF digests these bytes."""
    return manifest_header("Name", name) + manifest_header("SHA-256-Digest", _digest(body)) + _CRLF


def _signature_file(main: bytes, manifest: bytes, sections: Mapping[str, bytes]) -> bytes:
    lines = [
        manifest_header("Signature-Version", "1.0"),
        manifest_header("Created-By", CREATED_BY),
        manifest_header("SHA-256-Digest-Manifest", _digest(manifest)),
        manifest_header("SHA-256-Digest-Manifest-Main-Attributes", _digest(main)),
        _CRLF,
    ]
    for name, section in sections.items():
        lines += [
            manifest_header("Name", name),
            manifest_header("SHA-256-Digest", _digest(section)),
            _CRLF,
        ]
    return b"".join(lines)


def _signature_block(
    sf: bytes,
    chain: list[x509.Certificate],
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    signer, *issuers = chain
    builder = pkcs7.PKCS7SignatureBuilder().set_data(sf).add_signer(signer, key, hashes.SHA256())
    for issuer in issuers:
        builder = builder.add_certificate(issuer)
    options = [
        pkcs7.PKCS7Options.DetachedSignature,
        pkcs7.PKCS7Options.Binary,  # the .SF's bytes as they are, no MIME canonical form
        pkcs7.PKCS7Options.NoAttributes,  # no signing time: the same input signs the same
    ]
    return builder.sign(serialization.Encoding.DER, options)
