"""Upload SharedCredentials.zip through IDM's deploy API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from smartid import errors
from smartid.deployment import Deployment
from smartid.plan import Changes

EPIC = "Upload the shared credentials package"
STORY = "SharedCredentials.zip"
DOC_URL = "https://doc.nexusgroup.com/display/PUB/Smart+ID+Identity+Manager+-+Deployment+REST+APIs"

pytestmark = [pytest.mark.setup, pytest.mark.order(2)]

UPLOADED = "package-uploaded.sha256"


def _package(deployment: Deployment) -> tuple[Path, bytes]:
    package = deployment.site.package
    if package is None or package.path is None:
        pytest.skip("the site describes no [package] path")
    path = Path(package.path)
    try:
        return path, path.read_bytes()
    except OSError as exc:
        raise errors.PackageError(str(path), f"cannot be read ({exc.strerror})") from None


def test_package_uploaded(deployment: Deployment, changes: Changes) -> None:
    """SETUP-201 SharedCredentials.zip is installed; an identical package is not uploaded again."""
    path, data = _package(deployment)
    digest = hashlib.sha256(data).hexdigest()
    assert deployment.site.package is not None
    name = deployment.site.package.name
    client, _ = deployment.working_admin()
    with client:
        if deployment.site.idm is not None and deployment.site.idm.admin_api == "none":
            # Without the contract the installed packages cannot be listed: the site state
            # remembers what this suite uploaded to this target.
            installed_digest = (deployment.state.read(UPLOADED) or b"").decode() or None
        else:
            installed = {p.name: p for p in client.packages()}
            installed_digest = installed[name].sha256 if name in installed else None
        if installed_digest != digest:
            changes.change(
                f"package {name}",
                "sha256",
                "upload",
                lambda: client.upload_configuration(data),
                old=installed_digest,
                new=digest,
            )
            if changes.apply:
                deployment.state.write(UPLOADED, digest.encode())
        no_contract = deployment.site.idm is not None and deployment.site.idm.admin_api == "none"
        if not changes.apply or no_contract:
            return
        after = {p.name: p for p in client.packages()}
    assert name in after, f"package {name} is not listed after the upload of {path}"
    assert after[name].sha256 == digest, f"package {name} has another sha256 than {path}"
    expected = deployment.site.package.version
    if expected is not None:
        assert after[name].version == expected, (
            f"package {name} is version {after[name].version}, the site expects {expected}"
        )


def test_package_objects_exist(deployment: Deployment, planning: bool) -> None:
    """SETUP-202 The package's CA, messaging server, hermod user, data pools, sub-processes and
    processes exist."""
    site = deployment.site
    if site.idm is not None and site.idm.admin_api == "none":
        pytest.skip('with admin_api = "none" the objects cannot be listed')
    client, _ = deployment.working_admin()
    with client:
        found = {
            "certificate authority": {ca.name for ca in client.certificate_authorities()},
            "messaging server": {m.name for m in client.messaging_servers()},
            "user": {u.name for u in client.users()},
            "data pool": set(client.data_pools()),
            "sub-process": set(client.sub_processes()),
            "process": {p.name for p in client.processes()},
        }
    wanted: dict[str, set[str]] = {
        "certificate authority": set(),
        "messaging server": set(),
        "user": set(),
        "data pool": set(),
        "sub-process": set(),
        "process": set(),
    }
    if site.certificate_manager is not None:
        wanted["certificate authority"].add(site.certificate_manager.ca_name)
    if site.messaging is not None:
        wanted["messaging server"].add(site.messaging.server)
        wanted["user"].add(site.messaging.hermod_user)
    for binding in site.bindings:
        wanted["data pool"].add(binding.data_pool)
        wanted["sub-process"].add(binding.sub_process)
        wanted["process"].add(binding.process)
    missing = [
        f"{kind} '{name}'" for kind, names in wanted.items() for name in sorted(names - found[kind])
    ]
    if planning and missing:
        pytest.skip(f"after the package upload: {', '.join(missing)}")
    assert not missing, f"missing after the package upload: {', '.join(missing)}"
