"""Configuration: what the start-up guide configures in IDM Admin is as the site declares it
(docs/checks.md): the package, the CA, the messaging server, the six task bindings and IDM's trust
in Hermod. Read through the admin contract, which a site with admin_api = "none" does not offer:
these checks are then skipped with that reason."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from smartid.idm.models import Process
from smartid.report import seam
from smartid.site import Binding, CertificateManagerSection, MessagingSection, PackageSection
from smartid.verify import Findings, IdmReadings
from smartid.verify.readings import bundle_certificates, file_sha256

EPIC = "Acceptance checks"
STORY = "Configuration"
DOC_URL = "https://doc.nexusgroup.com/pub/shared-credentials-start-up-guide"

pytestmark = [pytest.mark.verify]


def _short(digest: str) -> str:
    return digest[:16]


@pytest.mark.severity("normal")
def test_package_installed(
    idm_readings: IdmReadings, declared_package: PackageSection, findings: Findings
) -> None:
    """CONF-001 The site's configuration package is installed under its name and declared
    version, and it is the site's package file (same sha256)."""
    installed = idm_readings.packages
    seam.attach_json("installed packages", [p.model_dump() for p in installed.values()])
    name = declared_package.name
    where = f"package {name}"
    package = installed.get(name)
    if package is None:
        shown = ", ".join(sorted(installed)) or "none"
        findings.add("installed", f"is not installed (installed: {shown})", "installed", where)
        return
    if declared_package.version is not None and package.version != declared_package.version:
        findings.add(
            "version",
            f"is installed in version {package.version}",
            f"version {declared_package.version}",
            where,
        )
    expected, source = declared_package.sha256, "the site's sha256"
    if expected is None and declared_package.path is not None:
        expected, source = file_sha256(Path(declared_package.path)), str(declared_package.path)
    if expected is not None and package.sha256 != expected:
        findings.add(
            "sha256",
            f"is installed with sha256 {_short(package.sha256)}...",
            f"sha256 {_short(expected)}... of {source}",
            where,
        )


@pytest.mark.severity("normal")
def test_certificate_authority_as_declared(
    idm_readings: IdmReadings, declared_cm: CertificateManagerSection, findings: Findings
) -> None:
    """CONF-002 The CA's General tab (description, enabled), its CM connection and its
    certificate types are as the site declares."""
    where = f"CA '{declared_cm.ca_name}'"
    ca = idm_readings.certificate_authorities.get(declared_cm.ca_name)
    if ca is None:
        findings.add("exists", "does not exist", "the CA that the package installs", where)
        return
    seam.attach_json("certificate authority", ca.model_dump())
    if ca.description != declared_cm.description:
        findings.add(
            "description",
            f"General tab description is '{ca.description}'",
            f"'{declared_cm.description}'",
            where,
        )
    if not ca.enabled:
        findings.add("enabled", "is disabled", "enabled", where)
    if ca.connection is None:
        findings.add("connection", "has no CM connection zip", "the CM connection zip", where)
    elif declared_cm.url is not None and ca.connection.url != declared_cm.url:
        findings.add(
            "connection",
            f"the connection zip points at {ca.connection.url}",
            f"CM at {declared_cm.url}",
            where,
        )
    missing = [t for t in declared_cm.certificate_types if t not in ca.certificate_types]
    if missing:
        findings.add(
            "certificate-types",
            f"lacks the certificate types {', '.join(repr(t) for t in missing)} "
            f"(has: {', '.join(ca.certificate_types) or 'none'})",
            "every declared certificate type, imported from CM",
            where,
        )
    elif not ca.certificate_types:
        findings.add(
            "certificate-types",
            "has no certificate types",
            "the certificate types imported from CM",
            where,
        )


@pytest.mark.severity("normal")
def test_messaging_server_as_declared(
    idm_readings: IdmReadings, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """CONF-003 The messaging server in IDM has Hermod's command URL (the site's messaging url
    followed by /command) and the site's lifespan."""
    where = f"messaging server '{declared_messaging.server}'"
    server = idm_readings.messaging_servers.get(declared_messaging.server)
    if server is None:
        findings.add("exists", "does not exist", "the messaging server the package lists", where)
        return
    seam.attach_json("messaging server", server.model_dump())
    url = f"{declared_messaging.url}/command"
    if server.url != url:
        findings.add("url", f"URL is '{server.url or 'empty'}'", url, where)
    if server.lifespan != declared_messaging.lifespan:
        findings.add(
            "lifespan",
            f"lifespan is {server.lifespan} s",
            f"{declared_messaging.lifespan} s",
            where,
        )


@pytest.mark.severity("critical")
def test_task_bound(
    idm_processes: Mapping[str, Process], binding: Binding, findings: Findings
) -> None:
    """CONF-004 The process task is bound to the declared data pool and sub-process."""
    where = f"process '{binding.process}' task '{binding.task}'"
    process = idm_processes.get(binding.process)
    if process is None:
        findings.add("process", "the process does not exist", "the process", where)
        return
    task = process.task(binding.task)
    if task is None:
        findings.add("task", "the process has no such task", "the task", where)
        return
    seam.attach_json("task", task.model_dump())
    if task.data_pool != binding.data_pool:
        findings.add(
            "data-pool",
            f"data pool is '{task.data_pool or 'none'}'",
            f"data pool '{binding.data_pool}'",
            where,
        )
    if task.sub_process != binding.sub_process:
        findings.add(
            "sub-process",
            f"sub-process is '{task.sub_process or 'none'}'",
            f"sub-process '{binding.sub_process}'",
            where,
        )


@pytest.mark.severity("critical")
def test_idm_trusts_hermod(
    idm_readings: IdmReadings, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """CONF-005 IDM's truststore holds every CA certificate that verifies Hermod's server
    certificate (the site's [messaging] ca_bundle)."""
    if declared_messaging.ca_bundle is None:
        pytest.skip("no [messaging] ca_bundle: Hermod's certificate chains to a public CA")
    bundle = Path(declared_messaging.ca_bundle)
    entries = idm_readings.truststore
    seam.attach_json("IDM truststore", [e.model_dump() for e in entries])
    present = {entry.sha256 for entry in entries}
    for cert in bundle_certificates(bundle):
        if cert.sha256 not in present:
            findings.add(
                "trust",
                f"lacks '{cert.subject}' (sha256 {_short(cert.sha256)}...)",
                f"every certificate of {bundle}",
                "IDM truststore",
            )
