"""What several checks read from the site and the target: the CM officer certificate, the
certificates of a bundle, file digests, the Hermod key and IDM's objects read once per run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from smartid.cm.connection_zip import keystore_password, read_connection_zip
from smartid.deployment import Deployment
from smartid.errors import PackageError, SmartIDError
from smartid.idm.client import IdmClient
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
    """What several checks ask IDM Admin outside the snapshot, each asked once per run and
    shared (observe once, judge many): the answer, or the failure, which the next check asking
    gets again without another request. The verify run is read-only, so neither can change
    under it."""

    def __init__(self, client: IdmClient) -> None:
        self.client = client
        self._login: bool | SmartIDError | None = None

    @property
    def login_works(self) -> bool:
        """Whether IDM Admin accepts the site's administrator and password."""
        if self._login is None:
            try:
                self._login = self.client.login_works()
            except SmartIDError as exc:
                self._login = exc
        if isinstance(self._login, SmartIDError):
            raise self._login
        return self._login
