"""Authentication: the default administrator password is gone, and IDM and Hermod accept each
other with the credentials the guide set up (docs/checks.md).

Secrets are compared by fingerprint and never shown. The callback probe (AUTH-002) sends an empty
callback that IDM Operator can only refuse as malformed once it has checked the credentials, so
nothing is recorded; the default-password probe (AUTH-001) runs only where the site allows it,
because a refused login can count towards an account's lockout.

PYTEST_DONT_REWRITE: checks report through their findings, not through asserts; a warm fork
server preloads this module (smartid.forkrun).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.checks import IdmObservation, shown
from smartid.deployment import Deployment
from smartid.hermod import HermodClient, HermodConfigError
from smartid.http import session
from smartid.masking import Secret
from smartid.site import IdmSection, MessagingSection, Site
from smartid.verify import Findings
from smartid.verify.readings import hermod_key

EPIC = "Acceptance checks"
STORY = "Authentication"
DOC_URL = "https://doc.nexusgroup.com/pub/integrate-identity-manager-with-smart-id-messaging"

pytestmark = [pytest.mark.verify, pytest.mark.health]

# A callback endpoint that read the (empty) body has accepted the credentials: it answers 2xx, or
# refuses the body itself.
_READ_BODY = frozenset({200, 201, 202, 204, 400, 415, 422})
_REFUSED = frozenset({401, 403})


def _deploy_api_accepts(deployment: Deployment, idm: IdmSection, password: Secret) -> bool:
    """Whether the vendor's deploy API takes the credentials (401 means no), for a site without
    the admin contract; the configuration it would send is not read."""
    bundle = Path(idm.ca_bundle) if idm.ca_bundle else None
    with session(bundle, timeouts=deployment.timeouts, label="IDM Admin") as http:
        response = http.get(
            f"{idm.admin_url}/ws/deploy/configuration",
            params={"tenantId": idm.tenant_id},
            auth=(idm.admin_user, password.reveal()),
            stream=True,
        )
        response.close()
    return response.status_code != 401


@pytest.mark.severity("blocker")
@pytest.mark.needs("verified:idm")
def test_default_admin_password_refused(
    site: Site, deployment: Deployment, declared_idm: IdmSection, findings: Findings
) -> None:
    """AUTH-001 IDM Admin refuses the administrator with the vendor's default password (only
    where the site sets probe_default_password)."""
    if not site.probe_default_password:
        pytest.skip(
            "probe_default_password is false for this site: a refused login can count towards "
            "the account's lockout"
        )
    if declared_idm.admin_api == "contract":
        with deployment.idm_client(deployment.default_password) as client:
            accepted = client.login_works()
        where = f"IDM Admin {declared_idm.admin_url}/api/v1"
    else:
        accepted = _deploy_api_accepts(deployment, declared_idm, deployment.default_password)
        where = f"IDM Admin {declared_idm.admin_url}/ws/deploy"
    if accepted:
        findings.add(
            "default-password",
            f"accepts user '{declared_idm.admin_user}' with the vendor's default password",
            "the default password refused (replaced at the first login)",
            where,
        )


def _verdict(status: int) -> str:
    if status in _REFUSED:
        return "refused"
    return "accepted" if status in _READ_BODY else "unexpected"


@pytest.mark.severity("critical")
@pytest.mark.needs("verified:idm-operator")
def test_callback_endpoint_accepts_only_the_hermod_user(
    site: Site, deployment: Deployment, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """AUTH-002 IDM Operator's Hermod callback endpoint accepts the hermod user with the site's
    password and refuses anonymous calls (at callback_url + callback_suffix, as Hermod posts)."""
    url = declared_messaging.callback_endpoint("ping")
    if url is None:
        pytest.skip("the site gives no [messaging] callback_url")
    bundle = site.idm.ca_bundle if site.idm is not None else None
    user = declared_messaging.hermod_user
    with session(
        Path(bundle) if bundle else None, timeouts=deployment.timeouts, label="IDM Operator"
    ) as http:
        as_hermod = http.post(
            url, json={}, auth=(user, declared_messaging.hermod_password.get().reveal())
        ).status_code
        anonymous = http.post(url, json={}).status_code
    where = f"IDM Operator {url}"
    if _verdict(as_hermod) != "accepted":
        findings.add(
            "hermod-user",
            f"{_verdict(as_hermod)} user '{user}' with the site's hermod password "
            f"(HTTP {as_hermod})",
            f"user '{user}' accepted",
            where,
        )
    if _verdict(anonymous) != "refused":
        findings.add(
            "anonymous",
            f"did not refuse an anonymous callback (HTTP {anonymous})",
            "HTTP 401 or 403 without credentials",
            where,
        )


@pytest.mark.severity("critical")
def test_callback_credentials_are_the_hermod_user(
    deployment: Deployment, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """AUTH-003 The callback-basic-auth of the IDM client in Hermod's application.yml is the IDM
    hermod user with the site's hermod password."""
    path = deployment.application_yml()
    if path is None:
        pytest.skip("the site does not name Hermod's application.yml ([messaging] application_yml)")
    client_id = declared_messaging.client_id
    user = declared_messaging.hermod_user
    clients = {c.client_id: c for c in deployment.configured_hermod_clients()}
    client = clients.get(client_id)
    where = f"{path} client '{client_id}'"
    if client is None:
        findings.add(
            "client",
            f"allowed-clients has no client '{client_id}'",
            "the IDM client",
            str(path),
        )
        return
    if client.callback_basic_auth is None or client.callback_user is None:
        findings.add("basic-auth", "has no callback-basic-auth", f"'{user}:<password>'", where)
        return
    if client.callback_user != user:
        findings.add(
            "user",
            f"callback-basic-auth is for user '{client.callback_user}'",
            f"the IDM hermod user '{user}'",
            where,
        )
        return
    given = Secret(client.callback_basic_auth.reveal().partition(":")[2], f"{where} password")
    if given != declared_messaging.hermod_password.get():
        findings.add(
            "password",
            "callback-basic-auth holds another password than the site's hermod password "
            "(compared by fingerprint)",
            f"the IDM hermod user's password ({declared_messaging.hermod_password.source})",
            where,
        )


@pytest.mark.severity("critical")
@pytest.mark.needs("login")
def test_messaging_token_matches_hermod_key(
    idm_observation: IdmObservation,
    deployment: Deployment,
    declared_messaging: MessagingSection,
    findings: Findings,
) -> None:
    """AUTH-004 IDM's messaging authentication token is base64(client-id:key) of the IDM client's
    key in Hermod (compared by fingerprint)."""
    where = f"messaging server '{declared_messaging.server}'"
    snapshot = idm_observation.get()
    shown(snapshot, "messaging_servers")
    assert snapshot.messaging_servers is not None
    server = snapshot.messaging_servers.get(declared_messaging.server)
    client_id = declared_messaging.client_id
    if server is None:
        findings.add("exists", "does not exist", "the messaging server the package lists", where)
        return
    if not server.authentication_token_set:
        findings.add(
            "token",
            "holds no authentication token",
            f"the X-Api-Key of client '{client_id}'",
            where,
        )
        return
    key, source = hermod_key(deployment, declared_messaging)
    if key is None:
        findings.add(
            "key",
            f"no key of client '{client_id}' is known (site, site state, application.yml)",
            "the IDM client's Hermod key, to compare the token with",
            where,
        )
        return
    try:
        expected = HermodClient(client_id=client_id, key=key).api_key
    except HermodConfigError:
        findings.add(
            "key",
            f"the key of client '{client_id}' in {source} is not 64 hex characters",
            "a key as Hermod generates it",
            where,
        )
        return
    if not server.token_matches(expected):
        findings.add(
            "token",
            f"holds another token than base64(client-id:key) of client '{client_id}' "
            "(compared by fingerprint)",
            f"the X-Api-Key of client '{client_id}' with the key in {source}",
            where,
        )
