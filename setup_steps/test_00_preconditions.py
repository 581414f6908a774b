"""Preconditions of the guide: the target answers, and the Users package is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartid import errors
from smartid.deployment import Deployment
from smartid.http import check_status, session

EPIC = "Preconditions"
STORY = "Target and Users package"
DOC_URL = "https://doc.nexusgroup.com/pub/users"

pytestmark = [pytest.mark.setup, pytest.mark.order(0)]

USERS_PROCESSES = ("Deactivate user", "Reactivate user", "Lock user")


def test_idm_admin_answers(deployment: Deployment) -> None:
    """SETUP-001 IDM Admin's deploy API answers over verified HTTPS."""
    idm = deployment.site.idm
    if idm is None:
        pytest.skip("the site describes no [idm] section")
    bundle = Path(idm.ca_bundle) if idm.ca_bundle else None
    with session(bundle, timeouts=deployment.timeouts, label="IDM Admin") as http:
        response = http.get(
            f"{idm.admin_url}/ws/deploy/configuration", params={"tenantId": idm.tenant_id}
        )
    # Without credentials the deploy API must ask for them: proof that it is there.
    check_status(response, 401)


def test_users_package_installed(deployment: Deployment) -> None:
    """SETUP-002 The Users package and its processes are installed, as the guide requires."""
    client, _ = deployment.working_admin()
    with client:
        if deployment.site.idm and deployment.site.idm.admin_api == "none":
            pytest.skip('with admin_api = "none" the installed packages cannot be listed')
        names = {p.name for p in client.packages()}
        processes = {p.name for p in client.processes()}
    missing = [name for name in USERS_PROCESSES if name not in processes]
    if "Users" not in names or missing:
        raise errors.ProtocolError(
            client.admin_url,
            "the Users package is not installed (missing: "
            f"{', '.join(missing) or 'package Users'}); upload users.zip and follow the "
            "Users start-up guide first",
        )
