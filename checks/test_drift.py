"""Drift: everything the site file declares against everything the target shows, as one readable
diff (docs/checks.md). The other checks say what is wrong one requirement at a time; this one shows
the whole picture in one place, for a reviewer to read at a glance. Read-only; secrets are rendered
as whether they are accepted or match, never as values."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartid.deployment import Deployment
from smartid.hermod import HermodClient, HermodConfigError
from smartid.masking import Secret
from smartid.report import seam
from smartid.site import Site
from smartid.verify import Findings, IdmReadings
from smartid.verify.drift import Declared, LiveState, compare, render, unified_diff
from smartid.verify.readings import bundle_certificates, file_sha256, hermod_key

EPIC = "Acceptance checks"
STORY = "Drift"
DOC_URL = "https://doc.nexusgroup.com/pub/shared-credentials-start-up-guide"

pytestmark = [pytest.mark.verify]


def _api_key(client_id: str, key: Secret | None) -> Secret | None:
    if key is None:
        return None
    try:
        return HermodClient(client_id=client_id, key=key).api_key
    except HermodConfigError:
        return None  # a malformed key matches no token; AUTH-004 says why


def _declared(site: Site, deployment: Deployment) -> Declared:
    package = site.package
    package_sha256 = package.sha256 if package is not None else None
    if package is not None and package_sha256 is None and package.path is not None:
        package_sha256 = file_sha256(Path(package.path))
    messaging = site.messaging
    if messaging is None:
        return Declared(package_sha256=package_sha256)
    bundle = messaging.ca_bundle
    key, _ = hermod_key(deployment, messaging)
    return Declared(
        package_sha256=package_sha256,
        hermod_ca=tuple(bundle_certificates(Path(bundle))) if bundle else (),
        api_key=_api_key(messaging.client_id, key),
        hermod_key=deployment.hermod_key()[0],
    )


def _live(site: Site, deployment: Deployment, readings: IdmReadings) -> LiveState:
    messaging = site.messaging
    hermod_accepted = None
    if messaging is not None:
        hermod_accepted = readings.client.credentials_valid(
            messaging.hermod_user, messaging.hermod_password.get()
        )
    clients = None
    if deployment.application_yml() is not None:
        clients = {c.client_id: c for c in deployment.configured_hermod_clients()}
    return LiveState(
        admin_password_accepted=readings.login_works,
        packages=readings.packages,
        certificate_authorities=readings.certificate_authorities,
        messaging_servers=readings.messaging_servers,
        hermod_user_accepted=hermod_accepted,
        truststore=frozenset(e.sha256 for e in readings.truststore),
        processes=readings.processes,
        hermod_clients=clients,
    )


@pytest.mark.severity("minor")
def test_live_state_matches_the_site(
    site: Site, deployment: Deployment, idm_readings: IdmReadings, findings: Findings
) -> None:
    """DRIFT-001 The live state equals everything the site file declares; any difference is
    shown as one unified diff of the two."""
    items = compare(site, _declared(site, deployment), _live(site, deployment, idm_readings))
    seam.attach_text("declared state", "\n".join(render(items, "declared")))
    seam.attach_text("live state", "\n".join(render(items, "live")))
    target = site.idm.admin_url if site.idm is not None else site.name
    diff = unified_diff(items, live_name=f"live ({target})")
    if not diff:
        return
    seam.attach_text("drift", diff)
    differing = sum(item.differs for item in items)
    findings.add(
        "drift",
        f"{differing} of {len(items)} declared values differ from the live state (diff below)",
        "the live state as the site file declares it",
        f"site '{site.name}'",
    )
    findings.detail(diff)
