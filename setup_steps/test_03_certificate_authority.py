"""Configure the CA "Smart ID Certificate Manager": connection zip, General tab, certificate types,
test connection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fixtures.steps import manual
from smartid import errors
from smartid.cm import ConnectionZipError, build_connection_zip, read_connection_zip
from smartid.cm.connection_zip import reencode_pkcs12
from smartid.deployment import Deployment
from smartid.idm import CertificateAuthority, IdmClient
from smartid.plan import Changes
from smartid.site import CertificateManagerSection

EPIC = "Configure Certificate Authority"
STORY = "Smart ID Certificate Manager"
DOC_URL = "https://doc.nexusgroup.com/pub/shared-credentials-start-up-guide"

pytestmark = [pytest.mark.setup, pytest.mark.order(3)]

ZIP_FILE = "cm-connection.zip"
INPUTS_FILE = "cm-connection.inputs"


def _section(deployment: Deployment) -> CertificateManagerSection:
    section = deployment.site.certificate_manager
    if section is None:
        pytest.skip("the site describes no [certificate_manager] section")
    return section


def _read(path: str, key: str, site: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise errors.SiteError(site, key, f"file {path} cannot be read ({exc.strerror})") from None


def _inputs_fingerprint(
    section: CertificateManagerSection, keystore: bytes, trust: list[bytes]
) -> str:
    """What the zip is made from; a new zip is built only when this changes (PKCS#12 encryption
    is salted, so rebuilding would give other bytes and an upload on every run)."""
    digest = hashlib.sha256()
    for part in (
        section.url or "",
        section.pkcs12_encryption,
        keystore,
        *trust,
        section.officer_keystore_password.get().reveal()
        if section.officer_keystore_password
        else "",
    ):
        data = part.encode() if isinstance(part, str) else part
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def connection_zip(deployment: Deployment, *, keep: bool = True) -> bytes:
    """The CM connection zip: the administrator's own, or built from the site and kept in the site
    state."""
    section = _section(deployment)
    site = str(deployment.site.path)
    if section.connection_zip is not None:
        data = _read(section.connection_zip, "certificate_manager.connection_zip", site)
        try:
            read_connection_zip(data)
        except ConnectionZipError as exc:
            raise errors.PackageError(section.connection_zip, str(exc)) from None
        return data
    if section.officer_keystore is None or section.officer_keystore_password is None:
        raise errors.SiteError(
            site,
            "certificate_manager.officer_keystore",
            "needed to build the CM connection zip (or set connection_zip)",
        )
    if section.url is None:
        raise errors.SiteError(site, "certificate_manager.url", "needed for the connection zip")
    keystore = _read(section.officer_keystore, "certificate_manager.officer_keystore", site)
    trust = [_read(p, "certificate_manager.trust_certs", site) for p in section.trust_certs]
    fingerprint = _inputs_fingerprint(section, keystore, trust)
    kept = deployment.state.read(ZIP_FILE)
    if kept is not None and deployment.state.read(INPUTS_FILE) == fingerprint.encode():
        return kept
    password = section.officer_keystore_password.get()
    try:
        converted = reencode_pkcs12(
            keystore, password, legacy=section.pkcs12_encryption == "legacy"
        )
        data = build_connection_zip(
            url=section.url, keystore=converted, keystore_password=password, trust_certs=trust
        )
    except (ConnectionZipError, ValueError) as exc:
        raise errors.PackageError(section.officer_keystore, str(exc)) from None
    if keep:
        deployment.state.write(ZIP_FILE, data)
        deployment.state.write(INPUTS_FILE, fingerprint.encode())
    return data


def _ca(client: IdmClient, name: str, planning: bool) -> CertificateAuthority | None:
    try:
        return client.certificate_authority(name)
    except errors.NotFoundError:
        if planning:
            return None
        raise


def _manual_if_no_contract(deployment: Deployment, instruction: str) -> None:
    idm = deployment.site.idm
    if idm is not None and idm.admin_api == "none":
        manual(instruction)


def test_connection_zip_made(deployment: Deployment, changes: Changes) -> None:
    """SETUP-301 The CM connection zip is built from the site (or taken from connection_zip) and
    kept in the site state."""
    data = connection_zip(deployment, keep=changes.apply)
    parsed = read_connection_zip(data)
    section = _section(deployment)
    if section.url is not None:
        assert parsed.url == section.url, f"the connection zip points at {parsed.url}"
    print(
        f"CM connection zip: {deployment.state.file(ZIP_FILE)} "
        f"sha256 {hashlib.sha256(data).hexdigest()}"
    )


def test_general_tab_updated(deployment: Deployment, changes: Changes, planning: bool) -> None:
    """SETUP-302 The CA's General tab holds the site's description and the CA is enabled."""
    section = _section(deployment)
    _manual_if_no_contract(
        deployment,
        f"In IDM Admin open the CA '{section.ca_name}', General "
        f"tab: set Description to '{section.description}'",
    )
    client, _ = deployment.working_admin()
    with client:
        ca = _ca(client, section.ca_name, planning)
        if ca is None:
            changes.change(
                f"CA '{section.ca_name}'",
                "description",
                "update",
                lambda: None,
                new=section.description,
            )
            return
        if ca.description != section.description or not ca.enabled:
            current = ca
            changes.change(
                f"CA '{section.ca_name}'",
                "description",
                "update",
                lambda: client.update_certificate_authority(
                    current.name,
                    version=current.version,
                    description=section.description,
                    enabled=True,
                ),
                old=f"{ca.description!r} enabled={ca.enabled}",
                new=f"{section.description!r} enabled=True",
            )
        if changes.apply:
            after = client.certificate_authority(section.ca_name)
            assert after.description == section.description
            assert after.enabled


def test_connection_zip_uploaded(deployment: Deployment, changes: Changes, planning: bool) -> None:
    """SETUP-303 The CA holds the CM connection zip (compared by sha256)."""
    section = _section(deployment)
    data = connection_zip(deployment, keep=changes.apply)
    digest = hashlib.sha256(data).hexdigest()
    _manual_if_no_contract(
        deployment,
        f"In IDM Admin open the CA '{section.ca_name}', General "
        f"tab: upload {deployment.state.file(ZIP_FILE)}",
    )
    client, _ = deployment.working_admin()
    with client:
        ca = _ca(client, section.ca_name, planning)
        current = ca.connection.sha256 if ca is not None and ca.connection else None
        if current != digest:
            changes.change(
                f"CA '{section.ca_name}'",
                "connection zip",
                "upload",
                lambda: client.upload_connection_zip(
                    section.ca_name, data, version=ca.version if ca else 0
                ),
                old=current,
                new=digest,
            )
        if changes.apply:
            after = client.certificate_authority(section.ca_name)
            assert after.connection is not None
            assert after.connection.sha256 == digest


def test_certificate_types_imported(
    deployment: Deployment, changes: Changes, planning: bool
) -> None:
    """SETUP-304 The certificate types (CM token procedures) are imported into the CA."""
    section = _section(deployment)
    _manual_if_no_contract(
        deployment, f"In IDM Admin open the CA '{section.ca_name}' and run Import certificate types"
    )
    client, _ = deployment.working_admin()
    with client:
        ca = _ca(client, section.ca_name, planning)
        have = set(ca.certificate_types) if ca is not None else set()
        wanted = set(section.certificate_types)
        if not have or not wanted <= have:
            result = changes.change(
                f"CA '{section.ca_name}'",
                "certificate types",
                "run",
                lambda: client.import_certificate_types(section.ca_name),
                old=", ".join(sorted(have)) or "none",
                new=", ".join(sorted(wanted)) or "what CM offers",
            )
            if result is not None and not result.ok:
                raise errors.ProtocolError(
                    client.admin_url,
                    f"Import certificate types of CA '{section.ca_name}' failed: {result.error}",
                )
        if changes.apply:
            after = set(client.certificate_authority(section.ca_name).certificate_types)
            assert after, f"CA '{section.ca_name}' has no certificate types after the import"
            missing = sorted(wanted - after)
            assert not missing, f"certificate types missing after the import: {missing}"


def test_ca_connection_test_passes(deployment: Deployment, changes: Changes) -> None:
    """SETUP-305 The CA's Test connection reaches CM with the officer certificate."""
    section = _section(deployment)
    _manual_if_no_contract(
        deployment,
        f"In IDM Admin open the CA '{section.ca_name}' and run Test connection; it must succeed",
    )
    if not changes.apply:
        return  # the test depends on the uploads above; the verify run repeats it
    client, _ = deployment.working_admin()
    with client:
        result = client.test_ca_connection(section.ca_name)
    assert result.ok, f"Test connection of CA '{section.ca_name}' failed: {result.error}"
    print(json.dumps({"protocol": result.protocol, "peer": result.peer, "officer": result.officer}))
