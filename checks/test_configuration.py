"""Configuration: what the start-up guide configures in IDM Admin is as the site declares it
(docs/checks.md): the package, the CA, the messaging server and the hermod user, the six task
bindings and IDM's trust in Hermod. IDM is observed once per run, through the admin contract or,
with admin_api = "none", from IDM Admin's configuration download; what that source does not show
is skipped as not verifiable, with the evidence an administrator adds by hand. The package and
the bindings are judged in IDM Operator's download too, where the site gives its URL, because
configuration takes effect in the runtime only once it is there. The judgements are
pure functions (smartid.verify.configuration); these checks fetch, attach and report.

PYTEST_DONT_REWRITE: checks report through their findings, not through asserts; a warm fork
server preloads this module (smartid.forkrun).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.checks import IdmObservation, IdmSources, judge_everywhere, shown
from smartid.idm.export import Configuration, NotVerifiable
from smartid.idm.package import read_package_file
from smartid.idm.snapshot import IdmSnapshot
from smartid.report import seam
from smartid.site import Binding, CertificateManagerSection, MessagingSection, PackageSection
from smartid.verify import Findings
from smartid.verify.configuration import (
    Gap,
    binding_gaps,
    certificate_authority_gaps,
    hermod_user_gaps,
    messaging_server_gaps,
    package_gaps,
    truststore_gaps,
    unreadable_binding,
)
from smartid.verify.readings import bundle_certificates, file_sha256

EPIC = "Acceptance checks"
STORY = "Configuration"
DOC_URL = "https://doc.nexusgroup.com/pub/shared-credentials-start-up-guide"

pytestmark = [pytest.mark.verify]


def _report(findings: Findings, gaps: list[Gap]) -> None:
    for gap in gaps:
        findings.add(gap.key, gap.observed, gap.required, gap.target)


@pytest.mark.severity("normal")
@pytest.mark.needs("login")
def test_package_installed(
    idm_sources: IdmSources, declared_package: PackageSection, findings: Findings
) -> None:
    """CONF-001 The site's configuration package is installed: under its name and declared
    version with the sha256 of the site's package file where IDM lists its packages, else with
    every object of the package file present; in IDM Operator's download too, where the site
    gives its URL."""
    expected, source = declared_package.sha256, "the site's sha256"
    if expected is None and declared_package.path is not None:
        expected, source = file_sha256(Path(declared_package.path)), str(declared_package.path)
    package_file: list[Configuration] = []  # read once, by the first source that needs it

    def contents(snapshot: IdmSnapshot) -> Configuration:
        if declared_package.path is None:
            raise NotVerifiable(
                f"{snapshot.not_shown('packages')} and the site gives no [package] path whose "
                "objects could be looked for"
            )
        if not package_file:
            package_file.append(read_package_file(Path(declared_package.path)).contents())
        return package_file[0]

    def judge(snapshot: IdmSnapshot) -> list[Gap]:
        if snapshot.packages is not None:
            seam.attach_json(
                "installed packages", [p.model_dump() for p in snapshot.packages.values()]
            )
        return package_gaps(
            snapshot,
            declared_package,
            expected_sha256=expected,
            sha256_source=source,
            contents=contents(snapshot) if snapshot.packages is None else None,
            contents_source=str(declared_package.path),
        )

    judge_everywhere(findings, idm_sources, judge)


@pytest.mark.severity("normal")
@pytest.mark.needs("login")
def test_certificate_authority_as_declared(
    idm_observation: IdmObservation, declared_cm: CertificateManagerSection, findings: Findings
) -> None:
    """CONF-002 The CA's General tab (description, enabled), its CM connection and its
    certificate types are as the site declares."""
    snapshot = idm_observation.get()
    shown(snapshot, "certificate_authorities")
    assert snapshot.certificate_authorities is not None
    ca = snapshot.certificate_authorities.get(declared_cm.ca_name)
    if ca is not None:
        seam.attach_json("certificate authority", ca.model_dump())
    _report(findings, certificate_authority_gaps(snapshot.certificate_authorities, declared_cm))


@pytest.mark.severity("normal")
@pytest.mark.needs("login")
def test_messaging_server_as_declared(
    idm_observation: IdmObservation, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """CONF-003 The messaging server in IDM has Hermod's command URL (the site's messaging url
    followed by /command) and the site's lifespan, and the user Messaging calls back as
    exists."""
    snapshot = idm_observation.get()
    shown(snapshot, "messaging_servers")
    assert snapshot.messaging_servers is not None
    server = snapshot.messaging_servers.get(declared_messaging.server)
    if server is not None:
        seam.attach_json("messaging server", server.model_dump())
    _report(findings, messaging_server_gaps(snapshot.messaging_servers, declared_messaging))
    if snapshot.users is not None:
        _report(findings, hermod_user_gaps(snapshot.users, declared_messaging))


@pytest.mark.severity("critical")
@pytest.mark.needs("login")
def test_task_bound(idm_sources: IdmSources, binding: Binding, findings: Findings) -> None:
    """CONF-004 The process task is bound to the declared data pool and sub-process, in IDM
    Admin and, where the site gives its URL, in IDM Operator's download."""

    def judge(snapshot: IdmSnapshot) -> list[Gap]:
        if snapshot.processes is None:
            raise NotVerifiable(snapshot.not_shown("processes"))
        process = snapshot.processes.get(binding.process)
        task = process.task(binding.task) if process is not None else None
        if task is not None:
            seam.attach_json(f"task in {snapshot.source}", task.model_dump())
        unreadable = unreadable_binding(snapshot.processes, binding)
        if unreadable is not None:
            raise NotVerifiable(f"{snapshot.source}: {unreadable}")
        return binding_gaps(snapshot.processes, binding)

    judge_everywhere(findings, idm_sources, judge)


@pytest.mark.severity("critical")
@pytest.mark.needs("login")
def test_idm_trusts_hermod(
    idm_observation: IdmObservation, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """CONF-005 IDM's truststore holds every CA certificate that verifies Hermod's server
    certificate (the site's [messaging] ca_bundle)."""
    if declared_messaging.ca_bundle is None:
        pytest.skip("no [messaging] ca_bundle: Hermod's certificate chains to a public CA")
    snapshot = idm_observation.get()
    shown(snapshot, "truststore")
    assert snapshot.truststore is not None
    bundle = Path(declared_messaging.ca_bundle)
    seam.attach_json("IDM truststore", [e.model_dump() for e in snapshot.truststore])
    present = frozenset(entry.sha256 for entry in snapshot.truststore)
    _report(findings, truststore_gaps(present, bundle_certificates(bundle), str(bundle)))
