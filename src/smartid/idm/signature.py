"""The JAR signature of IDM's configuration download: what Nexus documents (docs/vendor.md) is that
the zip is a signed JAR when signing is on, the default, and that an expired signer blocks the
download. This module verifies one downloaded zip as the JAR File Specification defines a valid
signature, and judges its signer certificate like a TLS certificate.

Verified, every problem one sentence naming the download and the entry:

- every entry but the signature files (`META-INF/MANIFEST.MF`, `META-INF/*.SF|RSA|EC|DSA`,
  `META-INF/SIG-*`) has a section in the manifest whose SHA-256, SHA-384 or SHA-512 digest matches
  its bytes, and the manifest names no entry the zip lacks;
- the signature file's `<alg>-Digest-Manifest` matches the whole manifest, or, as jarsigner falls
  back, its main attributes digest and a digest of each manifest section match;
- the signature block (a detached PKCS#7 SignedData) verifies over the signature file. The
  `openssl cms -verify -noverify` command checks it (`cryptography` verifies no PKCS#7) and hands
  back the signer certificate, whose validity is judged here, not by openssl's chain building.

The zip is untrusted: it is read with the export reader's limits (smartid.idm.export), the
manifest and signature file are bounded, and openssl runs under a timeout on files in a private
temporary folder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from smartid.idm.export import DOWNLOAD_LIMITS
from smartid.idm.manifest import Manifest, ManifestError, read_manifest
from smartid.safezip import ZipRejected, read_entries
from smartid.site import TlsPolicy
from smartid.tls.judge import Finding

__all__ = [
    "MAX_MANIFEST_BYTES",
    "OPENSSL_TIMEOUT",
    "JarSignature",
    "Signer",
    "issued_by_bundle",
    "judge_signer",
    "verify_jar",
]

MANIFEST = "META-INF/MANIFEST.MF"
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
OPENSSL_TIMEOUT = 10.0
_BLOCK_SUFFIXES = (".RSA", ".EC", ".DSA")
_DIGESTS = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
_KNOWN = "a SHA-256, SHA-384 or SHA-512 digest"
_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@dataclass(frozen=True, kw_only=True)
class Signer:
    """The signer certificate the signature block carries, as facts."""

    subject: str
    issuer: str
    serial: str  # hex
    not_before: datetime
    not_after: datetime
    sha256: str  # of the DER certificate, hex
    self_signed: bool
    key_usage: tuple[str, ...] | None  # None: no key usage extension
    key_usage_critical: bool
    der: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "self_signed": self.self_signed,
            "key_usage": list(self.key_usage) if self.key_usage is not None else None,
            "key_usage_critical": self.key_usage_critical,
        }


@dataclass(frozen=True, kw_only=True)
class JarSignature:
    """What the download's signature shows: whether it is signed at all, by whom, and every
    problem found (none: the signature verifies)."""

    where: str
    signed: bool
    signature_file: str | None = None
    entries: int = 0  # entries the signature covers
    signer: Signer | None = None
    problems: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.signed and self.signer is not None and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "signed": self.signed,
            "signature_file": self.signature_file,
            "entries": self.entries,
            "signer": self.signer.to_dict() if self.signer is not None else None,
            "problems": list(self.problems),
        }


class _Unverified(Exception):
    """openssl did not verify the block; the message is the sentence to report."""


def verify_jar(
    data: bytes, where: str, *, openssl: str | None = None, timeout: float = OPENSSL_TIMEOUT
) -> JarSignature:
    """The JAR signature of the zip `data`, downloaded from `where` (which names it in every
    problem). `openssl` is the command's path (default: found on PATH)."""
    try:
        entries = read_entries(data, DOWNLOAD_LIMITS, what=where)
    except ZipRejected as exc:
        return JarSignature(where=where, signed=False, problems=(_named(where, str(exc)),))
    by_upper = {name.upper(): name for name in entries}
    signature_files = sorted(n for n in entries if _meta(n) and n.upper().endswith(".SF"))
    manifest_name = by_upper.get(MANIFEST)
    if not signature_files:
        has = "a manifest but no" if manifest_name else "no manifest and no"
        problem = (
            f"{where} is not signed: it has {has} signature file META-INF/*.SF "
            "(Nexus: IDM signs the configuration by default)"
        )
        return JarSignature(where=where, signed=False, problems=(problem,))
    if len(signature_files) > 1:
        listed = ", ".join(signature_files)
        problem = f"{where} has {len(signature_files)} signature files ({listed}), not one signer"
        return JarSignature(where=where, signed=True, problems=(problem,))
    sf_name = signature_files[0]
    if manifest_name is None:
        problem = f"{where} has the signature file {sf_name} but no {MANIFEST}"
        return JarSignature(where=where, signed=True, signature_file=sf_name, problems=(problem,))
    problems: list[str] = []
    manifest = _read(entries, manifest_name, where, problems)
    sf = _read(entries, sf_name, where, problems)
    covered = 0
    if manifest is not None and sf is not None:
        problems += _entry_problems(entries, manifest, where)
        problems += _signature_file_problems(entries[manifest_name], manifest, sf, sf_name, where)
        covered = sum(1 for name in entries if not _signature_related(name))
    signer = _verified_signer(entries, by_upper, sf_name, where, problems, openssl, timeout)
    return JarSignature(
        where=where,
        signed=True,
        signature_file=sf_name,
        entries=covered,
        signer=signer,
        problems=tuple(problems),
    )


def judge_signer(signer: Signer, policy: TlsPolicy, target: str, *, now: datetime) -> list[Finding]:
    """The signer's validity as TLS-003 judges a certificate's (expired or not yet valid, fewer
    than `expiry_fail_days` left: critical; inside `expiry_warn_days`: a warning), and what Nexus
    requires of a ConfigZipSigner: not self-signed, digitalSignature if key usage is critical."""
    name = f"the signer '{signer.subject}'"
    findings: list[Finding] = []
    valid = "a signer certificate valid now"
    if now < signer.not_before:
        observed = f"{name} is valid only from {signer.not_before:%Y-%m-%d %H:%M} UTC"
        findings.append(Finding("signer-not-yet-valid", "critical", observed, valid, target))
    else:
        days = (signer.not_after - now).total_seconds() / 86400
        until = f"{signer.not_after:%Y-%m-%d}"
        fail = f"at least {policy.expiry_fail_days} days of validity left"
        if days < 0:
            observed = f"{name} expired on {until}, {_days(-days)} ago"
            findings.append(Finding("signer-expired", "critical", observed, fail, target))
        elif days < policy.expiry_fail_days:
            observed = f"{name} expires on {until}, in {_days(days)}"
            findings.append(Finding("signer-expiring", "critical", observed, fail, target))
        elif days < policy.expiry_warn_days:
            observed = f"{name} expires on {until}, in {_days(days)}"
            required = f"at least {policy.expiry_warn_days} days of validity left"
            findings.append(Finding("signer-expiring", "warning", observed, required, target))
    if signer.self_signed:
        required = "a signer issued by a CA in IDM's truststore (Nexus: not self-signed)"
        findings.append(
            Finding("signer-self-signed", "critical", f"{name} is self-signed", required, target)
        )
    usage = signer.key_usage
    if signer.key_usage_critical and usage is not None and "digital_signature" not in usage:
        observed = f"{name} has a critical key usage without digitalSignature"
        required = "digitalSignature in a critical key usage"
        findings.append(Finding("signer-key-usage", "critical", observed, required, target))
    return findings


def issued_by_bundle(signer: Signer, bundle_pem: bytes) -> bool:
    """Whether a certificate of the PEM bundle issued the signer directly (Nexus: the issuing CA
    must be in IDM's truststore); a chain through an intermediate the bundle lacks is not
    followed."""
    cert = x509.load_der_x509_certificate(signer.der)
    for candidate in x509.load_pem_x509_certificates(bundle_pem):
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return True
    return False


# --- the manifest and the signature file --------------------------------------------------------


def _named(where: str, message: str) -> str:
    return message if message.startswith(where) else f"{where}: {message}"


def _meta(name: str) -> bool:
    """Directly in META-INF/, where a JAR keeps its manifest and signature files."""
    folder, _, _ = name.rpartition("/")
    return folder.upper() == "META-INF"


def _signature_related(name: str) -> bool:
    if not _meta(name):
        return False
    base = name.rpartition("/")[2].upper()
    return (
        base == "MANIFEST.MF" or base.startswith("SIG-") or base.endswith((".SF", *_BLOCK_SUFFIXES))
    )


def _read(
    entries: Mapping[str, bytes], name: str, where: str, problems: list[str]
) -> Manifest | None:
    body = entries[name]
    if len(body) > MAX_MANIFEST_BYTES:
        problems.append(f"{where}: entry {name!r} is larger than {MAX_MANIFEST_BYTES} bytes")
        return None
    try:
        return read_manifest(body, f"{where}: entry {name!r}")
    except ManifestError as exc:
        problems.append(str(exc))
        return None


def _digest_of(section_attributes: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """The first known (algorithm, base64 value) among `<alg><suffix>` attributes."""
    for algorithm in _DIGESTS:
        value = section_attributes.get(f"{algorithm}{suffix}".lower())
        if value is not None:
            return algorithm, value
    return None


def _matches(algorithm: str, encoded: str, data: bytes) -> bool:
    try:
        expected = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hashlib.new(_DIGESTS[algorithm], data).digest() == expected


def _entry_problems(entries: Mapping[str, bytes], manifest: Manifest, where: str) -> list[str]:
    problems = []
    for name in sorted(entries):
        if _signature_related(name):
            continue
        section = manifest.sections.get(name)
        if section is None:
            problems.append(
                f"{where}: entry {name!r} is not in {MANIFEST}, so no signature covers it"
            )
            continue
        digest = _digest_of(section.attributes, "-Digest")
        if digest is None:
            problems.append(f"{where}: entry {name!r} has no {_KNOWN} in {MANIFEST}")
        elif not _matches(*digest, entries[name]):
            problems.append(
                f"{where}: entry {name!r} does not match its {digest[0]} digest in {MANIFEST} "
                "(changed after signing)"
            )
    for name in sorted(set(manifest.sections) - set(entries)):
        problems.append(f"{where}: {MANIFEST} names the entry {name!r}, which the download lacks")
    return problems


def _signature_file_problems(
    raw_manifest: bytes, manifest: Manifest, sf: Manifest, sf_name: str, where: str
) -> list[str]:
    whole = _digest_of(sf.main.attributes, "-Digest-Manifest")
    if whole is not None and _matches(*whole, raw_manifest):
        return []
    # As jarsigner: the main attributes and every section, each digested on its own.
    problems = []
    main = _digest_of(sf.main.attributes, "-Digest-Manifest-Main-Attributes")
    if main is not None and not _matches(*main, manifest.main.raw):
        problems.append(
            f"{where}: the main attributes of {MANIFEST} do not match their digest in {sf_name}"
        )
    for name, section in manifest.sections.items():
        signed = sf.sections.get(name)
        digest = _digest_of(signed.attributes, "-Digest") if signed is not None else None
        if digest is None:
            problems.append(
                f"{where}: entry {name!r} has no {_KNOWN} in {sf_name}, so the signature does "
                f"not cover it (and the digest of the whole {MANIFEST} does not match)"
            )
        elif not _matches(*digest, section.raw):
            problems.append(
                f"{where}: the {MANIFEST} section of entry {name!r} does not match its digest "
                f"in {sf_name} (changed after signing)"
            )
    return problems


# --- the signature block ------------------------------------------------------------------------


def _verified_signer(
    entries: Mapping[str, bytes],
    by_upper: Mapping[str, str],
    sf_name: str,
    where: str,
    problems: list[str],
    openssl: str | None,
    timeout: float,
) -> Signer | None:
    stem = sf_name[: -len(".SF")].upper()
    blocks = [by_upper[stem + s] for s in _BLOCK_SUFFIXES if stem + s in by_upper]
    if not blocks:
        wanted = ", ".join(f"{sf_name[:-3]}{s}" for s in _BLOCK_SUFFIXES)
        problems.append(f"{where} has no signature block ({wanted}) for {sf_name}")
        return None
    block = blocks[0]
    try:
        pem = _openssl_verify(entries[block], entries[sf_name], openssl, timeout)
        return _signer(pem)
    except _Unverified as exc:
        problems.append(
            f"{where}: the signature block {block} does not verify over {sf_name}: {exc}"
        )
        return None


def _openssl_verify(block: bytes, content: bytes, openssl: str | None, timeout: float) -> bytes:
    """The signer certificate(s) as PEM, once openssl verified the signature (not the chain)."""
    command = openssl or shutil.which("openssl")
    if command is None:
        raise _Unverified("the openssl command, which verifies it, is not installed")
    with tempfile.TemporaryDirectory(prefix="smartid-jar-") as work:  # 0700, removed at the end
        folder = Path(work)
        (folder / "block.der").write_bytes(block)
        (folder / "content.sf").write_bytes(content)
        arguments = [
            command,
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            str(folder / "block.der"),
            "-binary",
            "-content",
            str(folder / "content.sf"),
            "-noverify",
            "-signer",
            str(folder / "signer.pem"),
            "-out",
            str(folder / "verified.out"),
        ]
        try:
            done = subprocess.run(
                arguments,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _Unverified(f"openssl did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise _Unverified(f"openssl could not run ({exc.strerror or exc})") from None
        if done.returncode != 0:
            raise _Unverified(_summary(done.stderr.decode("utf-8", "replace")))
        signer = folder / "signer.pem"
        if not signer.exists():
            raise _Unverified("openssl verified it but named no signer certificate")
        return signer.read_bytes()


def _summary(stderr: str) -> str:
    """openssl's complaint in one sentence: its first message and the first error's reason
    (`<pid>:error:<code>:<library>:<function>:<reason>:<file>:<line>:`)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    messages = [line for line in lines if ":error:" not in line]
    reasons = []
    for line in lines:
        parts = line.split(":")
        if ":error:" in line and len(parts) > 5 and parts[5]:
            reasons.append(parts[5])
    head = messages[0] if messages else "openssl refused it"
    summary = f"{head} ({reasons[0]})" if reasons else head
    return " ".join(summary.split())[:300]


def _signer(pem: bytes) -> Signer:
    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except ValueError:
        raise _Unverified("openssl named a signer certificate that cannot be read") from None
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        names: tuple[str, ...] | None = tuple(n for n in _USAGES if getattr(usage.value, n))
        critical = usage.critical
    except x509.ExtensionNotFound:
        names, critical = None, False
    der = cert.public_bytes(serialization.Encoding.DER)
    return Signer(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).hexdigest(),
        self_signed=cert.subject == cert.issuer and _signs_itself(cert),
        key_usage=names,
        key_usage_critical=critical,
        der=der,
    )


def _signs_itself(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _days(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = int(days)
    return "1 day" if whole == 1 else f"{whole} days"
