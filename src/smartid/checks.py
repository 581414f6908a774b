"""What the verify checks share apart from pytest (DESIGN §6): the findings of one check and the
one failure they make, waivers, and the officer certificate. The TLS endpoints a site declares
live in `smartid.endpoints`, the catalogue of checks in `smartid.catalogue`; both are re-exported.

A check collects every finding it sees (`Findings`) and fails once, at its end, with one line per
finding naming the endpoint or object, what was observed and what is required. A finding of
severity "warning" does not fail the check. A waiver from the site file turns a failure of its
check into a skip until its date has passed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from smartid.catalogue import (
    CHECK_ID,
    CheckEntry,
    CheckOutcome,
    check_catalogue,
    check_id,
    read_junit,
)
from smartid.cm import keystore_password, read_connection_zip
from smartid.deployment import Deployment
from smartid.endpoints import TlsEndpoint, tls_endpoints
from smartid.errors import PackageError
from smartid.idm import (
    CertificateAuthority,
    IdmClient,
    InstalledPackage,
    MessagingServer,
    Process,
    TrustEntry,
)
from smartid.masking import Secret
from smartid.site import CertificateManagerSection, MessagingSection, Waiver
from smartid.tls.judge import Finding, Severity

__all__ = [
    "CHECK_ID",
    "BundleCertificate",
    "CheckEntry",
    "CheckOutcome",
    "Findings",
    "IdmReadings",
    "Officer",
    "TlsEndpoint",
    "WaiverStatus",
    "bundle_certificates",
    "check_catalogue",
    "check_id",
    "failure_text",
    "file_sha256",
    "finding_line",
    "hermod_key",
    "officer_keystore",
    "read_junit",
    "tls_endpoints",
    "waiver_status",
]


class Findings:
    """Every finding of one check, in the order seen; the check fails once, at its end."""

    def __init__(self, check: str, severity: Severity) -> None:
        self.check = check
        self.severity = severity
        self._found: list[Finding] = []
        self._details: list[str] = []

    def add(
        self,
        key: str,
        observed: str,
        required: str,
        target: str,
        *,
        severity: Severity | None = None,
    ) -> None:
        """One finding; its severity is the check's unless given ("warning" passes)."""
        self._found.append(Finding(key, severity or self.severity, observed, required, target))

    def extend(self, findings: Iterable[Finding], *, target: str | None = None) -> None:
        """Findings a judge made, under another target name if given."""
        for finding in findings:
            self._found.append(replace(finding, target=target) if target else finding)

    def detail(self, text: str) -> None:
        """Text shown below the findings when the check fails (a diff, say)."""
        self._details.append(text)

    @property
    def all(self) -> tuple[Finding, ...]:
        return tuple(self._found)

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self._found if f.severity != "warning")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self._found if f.severity == "warning")

    @property
    def details(self) -> tuple[str, ...]:
        return tuple(self._details)


def finding_line(finding: Finding) -> str:
    return (
        f"[{finding.severity}] {finding.target}: {finding.observed} (required: {finding.required})"
    )


def failure_text(
    check: str,
    failures: Sequence[Finding],
    *,
    errors: Sequence[str] = (),
    details: Sequence[str] = (),
    note: str | None = None,
) -> str:
    """The one failure of a check: a single finding as one line, several as a headline and one
    line each; then the note and the details."""
    shown = [finding_line(f) for f in failures] + list(errors)
    if len(shown) == 1:
        lines = [f"{check}: {shown[0]}"]
    else:
        lines = [f"{check}: {len(shown)} findings", *(f"- {line}" for line in shown)]
    if note:
        lines.append(note)
    lines += [text.rstrip("\n") for text in details]
    return "\n".join(lines)


# --- waivers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaiverStatus:
    """The waiver that applies to a check today, and the latest one that no longer does."""

    active: Waiver | None
    expired: Waiver | None

    @property
    def skip_reason(self) -> str | None:
        w = self.active
        return None if w is None else f"waived: {w.reason} ({w.owner}, until {w.until})"

    @property
    def expired_note(self) -> str | None:
        w = self.expired
        if w is None or self.active is not None:
            return None
        return f"the waiver of {w.owner} ({w.reason}) expired after {w.until} and no longer applies"


def waiver_status(waivers: Sequence[Waiver], check: str, today: date) -> WaiverStatus:
    """A waiver applies up to and including its `until` day."""
    mine = [w for w in waivers if w.check == check]
    active = [w for w in mine if today <= w.until]
    expired = [w for w in mine if today > w.until]
    return WaiverStatus(
        active=max(active, key=lambda w: w.until) if active else None,
        expired=max(expired, key=lambda w: w.until) if expired else None,
    )


# --- the CM officer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Officer:
    """The CM officer certificate the site gives IDM, as files for TLS, or why there are none."""

    files: tuple[Path, Path] | None
    common_name: str | None = None
    serial: str | None = None  # lowercase hex, as CM shows it
    source: str | None = None
    problem: str | None = None

    @classmethod
    def from_chain(cls, files: tuple[Path, Path], source: str) -> Officer:
        cert = x509.load_pem_x509_certificates(files[0].read_bytes())[0]
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return cls(
            files,
            str(names[0].value) if names else "",
            format(cert.serial_number, "x"),
            source,
        )


def officer_keystore(section: CertificateManagerSection) -> tuple[bytes, Secret, str]:
    """The officer's PKCS#12 keystore, its password and where it came from: the site's
    officer_keystore, else the keystore inside the site's connection_zip. PackageError if none."""
    if section.officer_keystore is not None and section.officer_keystore_password is not None:
        path = Path(section.officer_keystore)
        try:
            return path.read_bytes(), section.officer_keystore_password.get(), str(path)
        except OSError as exc:
            raise PackageError(str(path), f"cannot be read ({exc.strerror})") from None
    if section.connection_zip is not None:
        path = Path(section.connection_zip)
        try:
            parsed = read_connection_zip(path.read_bytes())
        except OSError as exc:
            raise PackageError(str(path), f"cannot be read ({exc.strerror})") from None
        except ValueError as exc:
            raise PackageError(str(path), str(exc)) from None
        return parsed.keystore, keystore_password(parsed), f"{path} ({parsed.keystore_name})"
    raise PackageError(
        "certificate_manager", "the site gives neither officer_keystore nor connection_zip"
    )


# --- files the site names -----------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCertificate:
    subject: str
    sha256: str  # of the DER, as IDM's truststore lists it


def bundle_certificates(path: Path) -> list[BundleCertificate]:
    """The certificates of a PEM bundle (the site loader has made sure it is one)."""
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PackageError(str(path), f"is not a readable PEM certificate bundle ({exc})") from None
    return [
        BundleCertificate(
            cert.subject.rfc4514_string(),
            hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        )
        for cert in certificates
    ]


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise PackageError(str(path), f"cannot be read ({exc.strerror})") from None


def hermod_key(deployment: Deployment, messaging: MessagingSection) -> tuple[Secret | None, str]:
    """The key Hermod holds for the IDM client and where it was read: Hermod's application.yml
    when the site names it (what Hermod itself checks), else the key the suite knows (the site's,
    or the site state's)."""
    path = deployment.application_yml()
    if path is not None:
        for client in deployment.configured_hermod_clients():
            if client.client_id == messaging.client_id:
                return client.key, f"Hermod's {path.name}"
    key, source = deployment.hermod_key()
    return key, f"the {source}"


class IdmReadings:
    """IDM's objects as the admin contract lists them, each list read once and shared by every
    check of the run (observe once, judge many): the verify run is read-only, so they cannot
    change under it."""

    def __init__(self, client: IdmClient) -> None:
        self.client = client

    @functools.cached_property
    def login_works(self) -> bool:
        return self.client.login_works()

    @functools.cached_property
    def packages(self) -> dict[str, InstalledPackage]:
        return {p.name: p for p in self.client.packages()}

    @functools.cached_property
    def certificate_authorities(self) -> dict[str, CertificateAuthority]:
        return {c.name: c for c in self.client.certificate_authorities()}

    @functools.cached_property
    def messaging_servers(self) -> dict[str, MessagingServer]:
        return {m.name: m for m in self.client.messaging_servers()}

    @functools.cached_property
    def truststore(self) -> tuple[TrustEntry, ...]:
        return tuple(self.client.truststore())

    @functools.cached_property
    def processes(self) -> dict[str, Process]:
        return {p.name: p for p in self.client.processes()}
