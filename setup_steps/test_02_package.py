"""Upload SharedCredentials.zip through IDM's deploy API."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.steps import IdmView
from smartid.deployment import Deployment
from smartid.idm import IdmClient
from smartid.idm.export import NotVerifiable
from smartid.idm.package import PackageFile, read_package_file
from smartid.idm.snapshot import IdmSnapshot, Kind, from_contract
from smartid.plan import Changes
from smartid.verify.configuration import missing_objects

EPIC = "Upload the shared credentials package"
STORY = "SharedCredentials.zip"
DOC_URL = "https://doc.nexusgroup.com/display/PUB/Smart+ID+Identity+Manager+-+Deployment+REST+APIs"

pytestmark = [pytest.mark.setup, pytest.mark.order(2)]

UPLOADED = "package-uploaded.sha256"


def _package(deployment: Deployment) -> PackageFile:
    """The package file, checked before anything goes to IDM (PackageError)."""
    package = deployment.site.package
    if package is None or package.path is None:
        pytest.skip("the site describes no [package] path")
    return read_package_file(Path(package.path))


def _snapshot(deployment: Deployment, client: IdmClient, view: IdmView) -> IdmSnapshot:
    """IDM's configuration as this step can see it: the admin contract's lists, or without the
    contract the configuration download (NotVerifiable if the suite cannot read it)."""
    idm = deployment.site.idm
    if idm is not None and idm.admin_api == "contract":
        return from_contract(client)
    snapshot = view.snapshot()
    if snapshot is None:
        raise NotVerifiable(view.problem or f"{view.source} cannot be read")
    return snapshot


def _missing_objects(snapshot: IdmSnapshot, package: PackageFile) -> list[str] | None:
    """The package's objects the snapshot lacks; None if the package file is in a layout the
    suite does not read."""
    try:
        contents = package.contents()
    except NotVerifiable:
        return None
    return missing_objects(contents, snapshot)


def test_package_uploaded(deployment: Deployment, changes: Changes, idm_view: IdmView) -> None:
    """SETUP-201 SharedCredentials.zip is installed. An identical package is not uploaded again."""
    package = _package(deployment)
    path, data, digest = package.path, package.data, package.sha256
    assert deployment.site.package is not None
    name = deployment.site.package.name
    client, _ = deployment.working_admin()
    with client:
        try:
            before: IdmSnapshot | None = _snapshot(deployment, client, idm_view)
        except NotVerifiable as exc:
            changes.note(
                f"{exc}; whether the package is installed is judged from the site "
                "state's record of the last upload alone"
            )
            before = None
        if before is not None and before.packages is not None:
            installed = before.packages.get(name)
            installed_digest = installed.sha256 if installed is not None else None
        else:
            # A download lists no packages: the package counts as installed when all of its
            # objects are present and the site state remembers no other upload.
            recorded = (deployment.state.read(UPLOADED) or b"").decode() or None
            missing = _missing_objects(before, package) if before is not None else None
            if before is not None and missing is None:
                changes.note(
                    f"{path} is in a layout the suite does not read; whether it is installed "
                    "is judged from the site state's record of the last upload alone"
                )
            present = missing == [] and recorded in (None, digest)
            installed_digest = digest if present else recorded
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
                idm_view.forget()
        if not changes.apply or before is None:
            return
        after = _snapshot(deployment, client, idm_view)
    if after.packages is None:
        missing = _missing_objects(after, package) or []
        assert not missing, f"missing after the upload of {path}: {', '.join(missing)}"
        return
    packages = after.packages
    assert name in packages, f"package {name} is not listed after the upload of {path}"
    assert packages[name].sha256 == digest, f"package {name} has another sha256 than {path}"
    expected = deployment.site.package.version
    if expected is not None:
        assert packages[name].version == expected, (
            f"package {name} is version {packages[name].version}, the site expects {expected}"
        )


def test_package_objects_exist(
    deployment: Deployment, planning: bool, changes: Changes, idm_view: IdmView
) -> None:
    """SETUP-202 The package's objects exist. Its CA, messaging server, hermod user, data pools,
    sub-processes and processes are in IDM."""
    site = deployment.site
    client, _ = deployment.working_admin()
    with client:
        try:
            snapshot = _snapshot(deployment, client, idm_view)
        except NotVerifiable as exc:
            pytest.skip(f"not verifiable: {exc}")
    wanted: dict[Kind, set[str]] = {
        "certificate_authorities": set(),
        "messaging_servers": set(),
        "users": set(),
        "data_pools": set(),
        "sub_processes": set(),
        "processes": set(),
    }
    if site.certificate_manager is not None:
        wanted["certificate_authorities"].add(site.certificate_manager.ca_name)
    if site.messaging is not None:
        wanted["messaging_servers"].add(site.messaging.server)
        wanted["users"].add(site.messaging.hermod_user)
    for binding in site.bindings:
        wanted["data_pools"].add(binding.data_pool)
        wanted["sub_processes"].add(binding.sub_process)
        wanted["processes"].add(binding.process)
    missing: list[str] = []
    for kind, names in wanted.items():
        found = getattr(snapshot, kind)
        if found is None:
            if names:
                changes.note(f"{snapshot.not_shown(kind)}: {', '.join(sorted(names))} unchecked")
            continue
        missing.extend(f"{_KIND_NAMES[kind]} '{n}'" for n in sorted(names) if n not in found)
    if planning and missing:
        pytest.skip(f"after the package upload: {', '.join(missing)}")
    assert not missing, f"missing after the package upload: {', '.join(missing)}"


_KIND_NAMES: dict[Kind, str] = {
    "certificate_authorities": "certificate authority",
    "messaging_servers": "messaging server",
    "users": "user",
    "data_pools": "data pool",
    "sub_processes": "sub-process",
    "processes": "process",
}
