"""The configuration judgements (CONF-001 to CONF-005) as pure functions over an IDM snapshot
(smartid.idm.snapshot) and what the site declares. Each returns its gaps, one per finding, in
the order a reader checks them; the checks in `checks/` only fetch, attach and report. Where a
check judges several snapshots (IDM Admin's and IDM Operator's download), `gaps_by_source` names
the source of each gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from smartid.idm.export import Configuration
from smartid.idm.models import CertificateAuthority, MessagingServer, Process
from smartid.idm.snapshot import IdmSnapshot
from smartid.site import Binding, CertificateManagerSection, MessagingSection, PackageSection
from smartid.verify.readings import BundleCertificate

__all__ = [
    "Gap",
    "binding_gaps",
    "certificate_authority_gaps",
    "gaps_by_source",
    "hermod_user_gaps",
    "messaging_server_gaps",
    "missing_objects",
    "package_gaps",
    "truststore_gaps",
    "unreadable_binding",
]


class Gap(NamedTuple):
    """One finding: its key, what was observed, what is required, and where."""

    key: str
    observed: str
    required: str
    target: str


def gaps_by_source(judged: Sequence[tuple[str, Sequence[Gap]]]) -> list[Gap]:
    """The gaps of every (source, gaps) judged, in order. Where more than one source is judged,
    each gap's target names the source it was seen in, unless its observation names it already:
    a requirement holds only if it holds in every source, and a reader must know which failed."""
    named = len(judged) > 1
    return [
        gap._replace(target=f"{gap.target}, in {source}")
        if named and source not in gap.observed
        else gap
        for source, gaps in judged
        for gap in gaps
    ]


def _short(digest: str) -> str:
    return digest[:16]


def missing_objects(package: Configuration, snapshot: IdmSnapshot) -> list[str]:
    """The package's objects the snapshot lacks, as "kind 'name'", for every kind both show."""
    pairs = [
        (
            "certificate authority",
            package.certificate_authorities,
            snapshot.certificate_authorities,
        ),
        ("messaging server", package.messaging_servers, snapshot.messaging_servers),
        ("user", package.users, snapshot.users),
        ("data pool", package.data_pools, snapshot.data_pools),
        ("sub-process", package.sub_processes, snapshot.sub_processes),
        ("process", package.processes, snapshot.processes),
    ]
    missing: list[str] = []
    for kind, wanted, present in pairs:
        if wanted is None or present is None:
            continue
        missing.extend(f"{kind} '{name}'" for name in sorted(wanted) if name not in present)
    return missing


def package_gaps(
    snapshot: IdmSnapshot,
    declared: PackageSection,
    *,
    expected_sha256: str | None,
    sha256_source: str,
    contents: Configuration | None,
    contents_source: str,
) -> list[Gap]:
    """CONF-001: installed under its name, version and sha256 where the snapshot lists packages;
    else every object of the package file present (`contents`, the package file as read)."""
    where = f"package {declared.name}"
    if snapshot.packages is None:
        if contents is None:
            return []
        missing = missing_objects(contents, snapshot)
        if not missing:
            return []
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        return [
            Gap(
                "objects",
                f"{len(missing)} of its objects are missing from {snapshot.source}: {shown}",
                f"every object of {contents_source}",
                where,
            )
        ]
    package = snapshot.packages.get(declared.name)
    if package is None:
        shown = ", ".join(sorted(snapshot.packages)) or "none"
        return [Gap("installed", f"is not installed (installed: {shown})", "installed", where)]
    gaps: list[Gap] = []
    if declared.version is not None and package.version != declared.version:
        gaps.append(
            Gap(
                "version",
                f"is installed in version {package.version}",
                f"version {declared.version}",
                where,
            )
        )
    if expected_sha256 is not None and package.sha256 != expected_sha256:
        gaps.append(
            Gap(
                "sha256",
                f"is installed with sha256 {_short(package.sha256)}...",
                f"sha256 {_short(expected_sha256)}... of {sha256_source}",
                where,
            )
        )
    return gaps


def certificate_authority_gaps(
    cas: Mapping[str, CertificateAuthority], declared: CertificateManagerSection
) -> list[Gap]:
    """CONF-002: the CA's General tab, its CM connection and its certificate types."""
    where = f"CA '{declared.ca_name}'"
    ca = cas.get(declared.ca_name)
    if ca is None:
        return [Gap("exists", "does not exist", "the CA that the package installs", where)]
    gaps: list[Gap] = []
    if ca.description != declared.description:
        gaps.append(
            Gap(
                "description",
                f"General tab description is '{ca.description}'",
                f"'{declared.description}'",
                where,
            )
        )
    if not ca.enabled:
        gaps.append(Gap("enabled", "is disabled", "enabled", where))
    if ca.connection is None:
        gaps.append(Gap("connection", "has no CM connection zip", "the CM connection zip", where))
    elif declared.url is not None and ca.connection.url != declared.url:
        gaps.append(
            Gap(
                "connection",
                f"the connection zip points at {ca.connection.url}",
                f"CM at {declared.url}",
                where,
            )
        )
    missing = [t for t in declared.certificate_types if t not in ca.certificate_types]
    if missing:
        gaps.append(
            Gap(
                "certificate-types",
                f"lacks the certificate types {', '.join(repr(t) for t in missing)} "
                f"(has: {', '.join(ca.certificate_types) or 'none'})",
                "every declared certificate type, imported from CM",
                where,
            )
        )
    elif not ca.certificate_types:
        gaps.append(
            Gap(
                "certificate-types",
                "has no certificate types",
                "the certificate types imported from CM",
                where,
            )
        )
    return gaps


def messaging_server_gaps(
    servers: Mapping[str, MessagingServer], declared: MessagingSection
) -> list[Gap]:
    """CONF-003: the messaging server's URL (Hermod's command endpoint) and lifespan."""
    where = f"messaging server '{declared.server}'"
    server = servers.get(declared.server)
    if server is None:
        return [Gap("exists", "does not exist", "the messaging server the package lists", where)]
    gaps: list[Gap] = []
    url = f"{declared.url}/command"
    if server.url != url:
        gaps.append(Gap("url", f"URL is '{server.url or 'empty'}'", url, where))
    if server.lifespan != declared.lifespan:
        gaps.append(
            Gap("lifespan", f"lifespan is {server.lifespan} s", f"{declared.lifespan} s", where)
        )
    return gaps


def hermod_user_gaps(users: frozenset[str], declared: MessagingSection) -> list[Gap]:
    """CONF-003: the IDM user Messaging calls back as exists."""
    if declared.hermod_user in users:
        return []
    return [
        Gap(
            "user",
            "does not exist",
            "the user Smart ID Messaging calls back as, from the package",
            f"IDM user '{declared.hermod_user}'",
        )
    ]


def unreadable_binding(processes: Mapping[str, Process], binding: Binding) -> str | None:
    """Why the task's binding cannot be judged from BPMN: a field is missing and its
    extensionElements hold what the suite does not read (another engine's fields, say), so
    "unbound" could be wrong. None when it can be judged."""
    process = processes.get(binding.process)
    task = process.task(binding.task) if process is not None else None
    if task is None or not task.unread:
        return None
    return (
        f"process '{binding.process}' task '{binding.task}' has no data pool or sub-process "
        f"field the suite reads, but its extensionElements hold {', '.join(task.unread)}: "
        "the suite reads the activiti: or flowable: fields 'value' and 'param1' of Nexus's "
        "batch-order example"
    )


def binding_gaps(processes: Mapping[str, Process], binding: Binding) -> list[Gap]:
    """CONF-004: the task is bound to the declared data pool and sub-process."""
    where = f"process '{binding.process}' task '{binding.task}'"
    process = processes.get(binding.process)
    if process is None:
        return [Gap("process", "the process does not exist", "the process", where)]
    task = process.task(binding.task)
    if task is None:
        return [Gap("task", "the process has no such task", "the task", where)]
    gaps: list[Gap] = []
    if task.data_pool != binding.data_pool:
        gaps.append(
            Gap(
                "data-pool",
                f"data pool is '{task.data_pool or 'none'}'",
                f"data pool '{binding.data_pool}'",
                where,
            )
        )
    if task.sub_process != binding.sub_process:
        gaps.append(
            Gap(
                "sub-process",
                f"sub-process is '{task.sub_process or 'none'}'",
                f"sub-process '{binding.sub_process}'",
                where,
            )
        )
    return gaps


def truststore_gaps(
    present: frozenset[str], bundle: Sequence[BundleCertificate], bundle_name: str
) -> list[Gap]:
    """CONF-005: IDM's truststore (sha256 of each entry) holds every certificate of the bundle."""
    return [
        Gap(
            "trust",
            f"lacks '{cert.subject}' (sha256 {_short(cert.sha256)}...)",
            f"every certificate of {bundle_name}",
            "IDM truststore",
        )
        for cert in bundle
        if cert.sha256 not in present
    ]
