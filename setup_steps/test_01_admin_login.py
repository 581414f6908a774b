"""Log in to IDM Admin and replace the default administrator password."""

from __future__ import annotations

import pytest

from smartid.deployment import Deployment
from smartid.plan import Changes

EPIC = "Log in to Identity Manager Admin"
STORY = "Administrator password"
DOC_URL = "https://doc.nexusgroup.com/pub/shared-credentials-start-up-guide"

pytestmark = [pytest.mark.setup, pytest.mark.order(1)]


def test_admin_password_changed(deployment: Deployment, changes: Changes) -> None:
    """SETUP-101 The default administrator password is replaced by the site's password."""
    idm = deployment.site.idm
    if idm is None:
        pytest.skip("the site describes no [idm] section")
    client, uses_site_password = deployment.working_admin()
    with client:
        if uses_site_password:
            return
        if idm.admin_api == "none":
            changes.manual(
                f"In IDM Admin ({idm.admin_url}) open Home > User Administration, select "  # noqa: S608
                f"'{idm.admin_user}' and set the password from {idm.admin_password.source}"
            )
        user = client.user(idm.admin_user)
        changes.change(
            f"user '{idm.admin_user}'",
            "password",
            "set",
            lambda: client.set_password(
                idm.admin_user,
                idm.admin_password.get(),
                version=user.version,
                current=deployment.default_password,
            ),
            old="the default password",
            new=idm.admin_password.get(),
        )
    if not changes.apply:
        return
    deployment.forget_admin_login()
    with deployment.idm_client() as renewed:
        assert renewed.login_works(), "the site's password is refused after the change"
    with deployment.idm_client(deployment.default_password) as default:
        assert not default.login_works(), "the default password still works after the change"
