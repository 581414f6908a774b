"""What several checks read from the site and the target: the CM officer certificate, the
certificates of a bundle, file digests, the Hermod key and IDM's objects read once per run.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from smartid.cm.connection_zip import keystore_password, read_connection_zip
from smartid.deployment import Deployment
from smartid.errors import PackageError
from smartid.idm.client import IdmClient
from smartid.idm.models import (
    CertificateAuthority,
    InstalledPackage,
    MessagingServer,
    Process,
    TrustEntry,
)
from smartid.masking import Secret
from smartid.site import CertificateManagerSection, MessagingSection

__all__ = [
    "BundleCertificate",
    "IdmReadings",
    "Officer",
    "bundle_certificates",
    "file_sha256",
    "hermod_key",
    "officer_keystore",
]


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
