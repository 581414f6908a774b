"""Configure the CA "Smart ID Certificate Manager": connection zip, General tab, certificate types,
test connection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fixtures.steps import IdmView
from smartid import errors
from smartid.cm import ConnectionZipError, build_connection_zip, read_connection_zip
from smartid.cm.connection_zip import reencode_pkcs12
from smartid.deployment import Deployment
from smartid.idm import CertificateAuthority
from smartid.plan import Changes, converge
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


# Stands for "whatever types CM offers" where the site lists none: at least one must be imported.
_ANY = "*"


def _types(value: frozenset[str]) -> str:
    named = ", ".join(sorted(value - {_ANY}))
    offered = "what CM offers" if _ANY in value else ""
    return " + ".join(part for part in (named, offered) if part) or "none"


def _types_imported(have: frozenset[str], want: frozenset[str]) -> bool:
    return bool(have) and want - {_ANY} <= have


def test_connection_zip_made(deployment: Deployment, changes: Changes) -> None:
    """SETUP-301 The CM connection zip is made. It is built from the site (or taken from
    connection_zip) and kept in the site state."""
    data = connection_zip(deployment, keep=changes.apply)
    parsed = read_connection_zip(data)
    section = _section(deployment)
    if section.url is not None:
        assert parsed.url == section.url, f"the connection zip points at {parsed.url}"
    print(
        f"CM connection zip: {deployment.state.file(ZIP_FILE)} "
        f"sha256 {hashlib.sha256(data).hexdigest()}"
    )


def test_general_tab_updated(deployment: Deployment, changes: Changes, idm_view: IdmView) -> None:
    """SETUP-302 The CA's General tab holds the site's description and the CA is enabled."""
    section = _section(deployment)
    name = section.ca_name
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def update(ca: CertificateAuthority | None) -> None:
            client.update_certificate_authority(
                name,
                version=ca.version if ca is not None else 0,
                description=section.description,
                enabled=True,
            )

        converge(
            changes,
            f"CA '{name}'",
            "description",
            "update",
            want=(section.description, True),
            value=lambda ca: (ca.description, ca.enabled),
            read=(lambda: client.certificate_authority(name)) if contract else None,
            write=update if contract else None,
            manual=f"In IDM Admin open the CA '{name}', General tab: set Description to "
            f"'{section.description}', enable the CA and save",
            where=client.admin_url,
            observe=lambda: idm_view.certificate_authority(name),
            seen_in=idm_view.source,
            show=lambda value: f"{value[0]!r} enabled={value[1]}",
        )


def test_connection_zip_uploaded(
    deployment: Deployment, changes: Changes, idm_view: IdmView
) -> None:
    """SETUP-303 The CA holds the CM connection zip (compared by sha256)."""
    section = _section(deployment)
    name = section.ca_name
    data = connection_zip(deployment, keep=changes.apply)
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def upload(ca: CertificateAuthority | None) -> None:
            client.upload_connection_zip(name, data, version=ca.version if ca else 0)

        converge(
            changes,
            f"CA '{name}'",
            "connection zip",
            "upload",
            want=hashlib.sha256(data).hexdigest(),
            value=lambda ca: ca.connection.sha256 if ca.connection is not None else "none",
            read=(lambda: client.certificate_authority(name)) if contract else None,
            write=upload if contract else None,
            manual=f"In IDM Admin open the CA '{name}', General tab: upload "
            f"{deployment.state.file(ZIP_FILE)}",
            where=client.admin_url,
            observe=lambda: idm_view.certificate_authority(name),
            seen_in=idm_view.source,
        )


def test_certificate_types_imported(
    deployment: Deployment, changes: Changes, idm_view: IdmView
) -> None:
    """SETUP-304 The certificate types (CM token procedures) are imported into the CA."""
    section = _section(deployment)
    name = section.ca_name
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def run_import(_: CertificateAuthority | None) -> None:
            result = client.import_certificate_types(name)
            if not result.ok:
                raise errors.ProtocolError(
                    client.admin_url,
                    f"Import certificate types of CA '{name}' failed: {result.error}",
                )

        converge(
            changes,
            f"CA '{name}'",
            "certificate types",
            "run",
            want=frozenset(section.certificate_types or [_ANY]),
            value=lambda ca: frozenset(ca.certificate_types),
            read=(lambda: client.certificate_authority(name)) if contract else None,
            write=run_import if contract else None,
            manual=f"In IDM Admin open the CA '{name}' and run Import certificate types",
            where=client.admin_url,
            observe=lambda: idm_view.certificate_authority(name),
            seen_in=idm_view.source,
            same=_types_imported,
            show=_types,
        )


def test_ca_connection_test_passes(deployment: Deployment, changes: Changes) -> None:
    """SETUP-305 The CA's Test connection reaches CM with the officer certificate."""
    section = _section(deployment)
    if not deployment.uses_contract:
        changes.manual(
            f"In IDM Admin open the CA '{section.ca_name}' and run Test connection; it must "
            "succeed (CONN-004 proves CM accepts the officer certificate)"
        )
    if not changes.apply:
        return  # the test depends on the uploads above; the verify run repeats it
    client, _ = deployment.working_admin()
    with client:
        result = client.test_ca_connection(section.ca_name)
    assert result.ok, f"Test connection of CA '{section.ca_name}' failed: {result.error}"
    print(json.dumps({"protocol": result.protocol, "peer": result.peer, "officer": result.officer}))
