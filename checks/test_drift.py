"""Drift: everything the site file declares against everything the target shows, as one readable
diff (docs/checks.md). The other checks say what is wrong one requirement at a time; this one shows
the whole picture in one place, for a reviewer to read at a glance. Read-only; secrets are rendered
as whether they are accepted or match, never as values.

PYTEST_DONT_REWRITE: checks report through their findings, not through asserts; a warm fork
server preloads this module (smartid.forkrun).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.checks import IdmObservation
from smartid.deployment import Deployment
from smartid.errors import PackageError
from smartid.hermod import HermodClient, HermodConfigError
from smartid.idm.export import NotVerifiable
from smartid.idm.package import read_package_file
from smartid.idm.snapshot import IdmSnapshot
from smartid.masking import Secret
from smartid.report import seam
from smartid.site import Site
from smartid.verify import Findings, IdmReadings
from smartid.verify.configuration import missing_objects
from smartid.verify.drift import Declared, LiveState, compare, not_compared, render, unified_diff
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


def _package_objects_missing(site: Site, snapshot: IdmSnapshot) -> tuple[str, ...] | None:
    """Where the snapshot lists no packages: the package file's objects it lacks, if the file
    is in a layout the suite reads."""
    if snapshot.packages is not None or site.package is None or site.package.path is None:
        return None
    try:
        contents = read_package_file(Path(site.package.path)).contents()
    except (PackageError, NotVerifiable):
        return None
    return tuple(missing_objects(contents, snapshot))


def _live(
    site: Site, deployment: Deployment, readings: IdmReadings, snapshot: IdmSnapshot
) -> LiveState:
    messaging = site.messaging
    hermod_accepted = None
    if messaging is not None:
        hermod_accepted = readings.client.credentials_valid(
            messaging.hermod_user, messaging.hermod_password.get()
        )
    clients = None
    if deployment.application_yml() is not None:
        clients = {c.client_id: c for c in deployment.configured_hermod_clients()}
    truststore = snapshot.truststore
    return LiveState(
        admin_password_accepted=readings.login_works,
        packages=snapshot.packages,
        certificate_authorities=snapshot.certificate_authorities,
        messaging_servers=snapshot.messaging_servers,
        hermod_user_accepted=hermod_accepted,
        truststore=frozenset(e.sha256 for e in truststore) if truststore is not None else None,
        processes=snapshot.processes,
        hermod_clients=clients,
        package_objects_missing=_package_objects_missing(site, snapshot),
    )


@pytest.mark.severity("minor")
@pytest.mark.needs("login")
def test_live_state_matches_the_site(
    site: Site,
    deployment: Deployment,
    idm_readings: IdmReadings,
    idm_observation: IdmObservation,
    findings: Findings,
) -> None:
    """DRIFT-001 The live state equals everything the site file declares; any difference is
    shown as one unified diff of the two."""
    live = _live(site, deployment, idm_readings, idm_observation.get())
    items = compare(site, _declared(site, deployment), live)
    unshown = not_compared(site, live)
    if unshown:
        seam.attach_text("not compared", "\n".join(unshown))
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
