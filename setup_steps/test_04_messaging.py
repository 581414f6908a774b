"""Connect Smart ID Messaging (Hermod): IDM client in Hermod, messaging server and hermod user in
IDM, HTTPS trust, and the ping round trip."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fixtures.steps import IdmView, ManualSteps
from smartid import errors
from smartid.deployment import HERMOD_KEY_FILE, Deployment
from smartid.hermod import (
    HermodApi,
    Refresh,
    client_section,
    generate_key,
    merge_client,
    run_refresh,
)
from smartid.idm.models import MessagingServer, TrustEntry
from smartid.masking import MASKER, Secret
from smartid.plan import Changes, converge
from smartid.report import seam
from smartid.site import MessagingSection

EPIC = "Add information regarding Smart ID Messaging"
STORY = "Smart ID Messaging"
DOC_URL = "https://doc.nexusgroup.com/pub/integrate-identity-manager-with-smart-id-messaging"

pytestmark = [pytest.mark.setup, pytest.mark.order(4)]

SECTION_FILE = "hermod-client-section.yml"
# Kept in the site state from writing application.yml until Hermod's refresh succeeded, so that a
# refresh that failed is tried again by the next run although the file no longer changes.
REFRESH_PENDING_FILE = "hermod-refresh-pending"


def _section(deployment: Deployment) -> MessagingSection:
    section = deployment.site.messaging
    if section is None:
        pytest.skip("the site describes no [messaging] section")
    return section


def _key(deployment: Deployment) -> Secret | None:
    key, _ = deployment.hermod_key()
    return key


def test_hermod_client_key_exists(deployment: Deployment, changes: Changes) -> None:
    """SETUP-401 The IDM client has a Hermod key. It is the site's, the site state's, or the one in
    Hermod's application.yml. When none exists anywhere it is made: by Hermod's generateclient page
    where the site names it, else locally, as that page makes one (64 hex characters)."""
    section = _section(deployment)
    key, source = deployment.hermod_key()
    if key is not None:
        print(f"Hermod key of client '{section.client_id}' from the {source}")
        return
    page = section.generateclient_url

    def new_key() -> str:
        if page is None:
            return generate_key()
        hermod = HermodApi(
            page.removesuffix("/util/generateclient"),
            ca_bundle=Path(section.ca_bundle) if section.ca_bundle else None,
            timeouts=deployment.timeouts,
        )
        return hermod.generate_client(section.client_id).key.reveal()

    changes.change(
        f"site state {HERMOD_KEY_FILE}",
        "key",
        "create",
        lambda: deployment.state.write(HERMOD_KEY_FILE, new_key().encode()),
        new=f"a key from {page}" if page else "a key made locally (64 hex characters)",
    )
    if changes.apply:
        assert _key(deployment) is not None


def test_client_section_in_application_yml(
    deployment: Deployment, changes: Changes, planning: bool, manual_steps: ManualSteps
) -> None:
    """SETUP-402 Hermod's application.yml holds the IDM client. Its allowed-clients holds the IDM
    client with its key, callback-url and callback-basic-auth = the IDM hermod user; when the file
    changed, Hermod's configuration is refreshed (the site's refresh_command or refresh_url, else by
    hand)."""
    section = _section(deployment)
    key = _key(deployment)
    path = deployment.application_yml()
    if key is None:
        if not planning:
            pytest.fail("no Hermod key: SETUP-401 makes it")
        changes.change(
            f"Hermod {path.name if path else 'client section'}",
            f"allowed-clients '{section.client_id}'",
            "write",
            lambda: None,
            new=f"client-id {section.client_id}, callback-url {section.callback_url}",
        )
        if path is not None:
            _refresh(deployment, changes, path, manual_steps)
        return
    client = deployment.desired_hermod_client(key)
    if path is None:
        if planning:
            changes.change(f"site state {SECTION_FILE}", "client section", "write", lambda: None)
            return
        written = deployment.state.write(SECTION_FILE, client_section(client).encode())
        MASKER.register(client.key)
        changes.note(
            f"Paste {written} into allowed-clients of Hermod's application.yml and refresh "
            "Hermod's configuration; the round trip (SETUP-406) proves it was done."
        )
        return
    text = deployment.application_yml_text()
    merged = merge_client(text, client, str(path))
    if merged != text:
        changes.change(
            f"Hermod {path.name}",
            f"allowed-clients '{section.client_id}'",
            "write",
            lambda: _write_application_yml(deployment, path, merged),
            new=f"client-id {section.client_id}, callback-url {section.callback_url}",
        )
    if merged != text or deployment.state.file(REFRESH_PENDING_FILE).exists():
        _refresh(deployment, changes, path, manual_steps)
    if changes.apply:
        found = {c.client_id: c for c in deployment.configured_hermod_clients()}
        written_client = found.get(section.client_id)
        assert written_client is not None, f"client '{section.client_id}' missing in {path}"
        assert written_client.key == key
        assert written_client.callback_url == section.callback_url
        assert written_client.callback_user == section.hermod_user


def _write_application_yml(deployment: Deployment, path: Path, text: str) -> None:
    if deployment.hermod_refresh() is not None:
        # Marked before the write: a run that stops between the two still refreshes next time.
        deployment.state.write(REFRESH_PENDING_FILE, f"{path}\n".encode())
    path.write_text(text, encoding="utf-8")


def _refresh(deployment: Deployment, changes: Changes, path: Path, by_hand: ManualSteps) -> None:
    """Have Hermod apply the edited file: by the site's refresh, or as a manual step."""
    refresh = deployment.hermod_refresh()
    if refresh is None:
        if changes.apply:
            deployment.state.file(REFRESH_PENDING_FILE).unlink(missing_ok=True)
        by_hand.add(
            f"Refresh Hermod's configuration so that it applies {path} (the site names no "
            "[messaging] refresh_command or refresh_url); SETUP-406 and CONN-003 prove it was done"
        )
        return
    changes.change(
        "Hermod configuration",
        "refresh",
        "run",
        lambda: _run_refresh(deployment, refresh),
        old=f"{path.name} not applied",
        new=f"applied by {refresh.how}",
    )


def _run_refresh(deployment: Deployment, refresh: Refresh) -> None:
    result = run_refresh(refresh)
    outcome = "done" if result.ok else str(result.error)
    seam.attach_text(
        "Hermod refresh",
        f"{refresh.how}\n{outcome} in {result.seconds:.2f} s\n\n{result.output or '(no output)'}",
    )
    if result.error is not None:
        raise result.error
    deployment.state.file(REFRESH_PENDING_FILE).unlink(missing_ok=True)
    print(f"Hermod refreshed by {refresh.how} in {result.seconds:.2f} s")


def test_messaging_server_configured(
    deployment: Deployment, changes: Changes, idm_view: IdmView
) -> None:
    """SETUP-403 The messaging server in IDM is configured. It has Hermod's command URL, the
    authentication token base64(client-id:key) and the site's lifespan."""
    section = _section(deployment)
    assert section.url is not None
    url = f"{section.url}/command"
    key = _key(deployment)
    token = deployment.desired_hermod_client(key).api_key if key else None
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def update(server: MessagingServer | None) -> None:
            client.update_messaging_server(
                section.server,
                version=server.version if server is not None else 0,
                url=url,
                authentication_token=token,
                lifespan=section.lifespan,
            )

        converge(
            changes,
            f"messaging server '{section.server}'",
            "url, token, lifespan",
            "update",
            want=(url, True, section.lifespan),
            value=lambda server: (
                server.url,
                token is not None and server.token_matches(token),
                server.lifespan,
            ),
            read=(lambda: client.messaging_server(section.server)) if contract else None,
            write=update if contract else None,
            manual=f"In IDM Admin open Home > Messaging Server '{section.server}': URL {url}, "
            f"Authentication token = the X-Api-Key line of "
            f"{deployment.state.file(SECTION_FILE)}, Lifespan {section.lifespan}",
            where=client.admin_url,
            observe=lambda: idm_view.messaging_server(section.server),
            seen_in=idm_view.source,
            show=lambda value: (
                f"{value[0] or 'none'}, token "
                f"{'matches' if value[1] else 'differs'}, lifespan {value[2]}"
            ),
        )


def test_hermod_user_password_set(
    deployment: Deployment, changes: Changes, idm_view: IdmView
) -> None:
    """SETUP-404 The IDM user hermod has the password that Hermod sends on callbacks. Without the
    contract, IDM accepting that user and password through the deploy API proves it."""
    section = _section(deployment)
    password = section.hermod_password.get()
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def set_password(_: bool | None) -> None:
            try:
                user = client.user(section.hermod_user)
            except errors.NotFoundError:
                if changes.apply:
                    raise
                return
            client.set_password(section.hermod_user, password, version=user.version)

        def accepted() -> bool:
            return client.credentials_valid(section.hermod_user, password)

        converge(
            changes,
            f"user '{section.hermod_user}'",
            "password",
            "set",
            want=True,
            value=lambda ok: ok,
            read=accepted if contract else None,
            write=set_password if contract else None,
            manual=f"In IDM Admin open Home > User Administration, user "
            f"'{section.hermod_user}': set the password from {section.hermod_password.source}",
            where=client.admin_url,
            observe=accepted,
            seen_in=f"IDM's answer to {section.hermod_user}'s login ({client.admin_url})",
            show=lambda ok: "the site's password" if ok else "another password or none",
        )


def _ca_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise errors.PackageError(str(path), f"is not a PEM certificate bundle ({exc})") from None


def _alias(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    label = str(names[0].value) if names else cert.serial_number
    return "hermod-" + re.sub(r"[^a-z0-9]+", "-", str(label).lower()).strip("-")[:50]


def _digest(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_idm_trusts_hermod(deployment: Deployment, changes: Changes, idm_view: IdmView) -> None:
    """SETUP-405 IDM trusts Hermod's certificate. Its truststore holds the CA certificates that
    verify Hermod's server certificate (HTTPS connection set up)."""
    section = _section(deployment)
    if section.ca_bundle is None:
        pytest.skip("Hermod's certificate chains to a public CA: nothing to import")
    certificates = {_digest(cert): cert for cert in _ca_certificates(Path(section.ca_bundle))}
    contract = deployment.uses_contract
    client, _ = deployment.working_admin()
    with client:

        def add(entries: tuple[TrustEntry, ...] | None) -> None:
            present = {entry.sha256 for entry in entries or ()}
            for digest, cert in certificates.items():
                if digest not in present:
                    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
                    client.add_trust(_alias(cert), pem)

        def snapshot_truststore() -> tuple[TrustEntry, ...] | None:
            snapshot = idm_view.snapshot()
            return snapshot.truststore if snapshot is not None else None

        def shown(digests: frozenset[str]) -> str:
            names = sorted(certificates[d].subject.rfc4514_string() for d in digests)
            return "; ".join(names) or "none of them"

        converge(
            changes,
            "IDM truststore",
            f"the CA certificates of {section.ca_bundle}",
            "add",
            want=frozenset(certificates),
            value=lambda entries: frozenset(e.sha256 for e in entries) & set(certificates),
            read=(lambda: tuple(client.truststore())) if contract else None,
            write=add if contract else None,
            manual=f"Import the certificates of {section.ca_bundle} into IDM's truststore and "
            "restart IDM (SETUP-406's Test connection proves it)",
            where=client.admin_url,
            observe=snapshot_truststore,
            seen_in=idm_view.source,
            show=shown,
        )


def test_messaging_round_trip_passes(
    deployment: Deployment, changes: Changes, manual_steps: ManualSteps
) -> None:
    """SETUP-406 IDM's Test connection of the messaging server succeeds. IDM reaches Hermod with the
    token, and Hermod's callback back to IDM as the hermod user."""
    section = _section(deployment)
    if not deployment.uses_contract:
        changes.manual(
            f"In IDM Admin open Messaging Server '{section.server}' and run Test connection"
        )
    if not changes.apply:
        return
    if manual_steps.of("SETUP-402"):
        # Hermod serves its old clients until it is refreshed: the test would fail for that alone.
        changes.manual(
            f"Once Hermod's configuration is refreshed (SETUP-402), run setup again or run Test "
            f"connection of Messaging Server '{section.server}' in IDM Admin"
        )
    client, _ = deployment.working_admin()
    with client:
        result = client.test_messaging_connection(section.server)
    assert result.ok, f"Test connection of '{section.server}' failed: {result.error}"
