"""What the verify checks share apart from pytest (DESIGN §6): the findings of one check and the
one failure they make, waivers, the TLS endpoints a site declares, and the officer certificate.

A check collects every finding it sees (`Findings`) and fails once, at its end, with one line per
finding naming the endpoint or object, what was observed and what is required. A finding of
severity "warning" does not fail the check. A waiver from the site file turns a failure of its
check into a skip until its date has passed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from defusedxml import ElementTree

from smartid.cm import keystore_password, read_connection_zip
from smartid.deployment import Deployment
from smartid.errors import PackageError
from smartid.idm import (
    CertificateAuthority,
    IdmClient,
    InstalledPackage,
    MessagingServer,
    Process,
    TrustEntry,
)
from smartid.masking import Secret
from smartid.site import CertificateManagerSection, MessagingSection, Site, TlsPolicy, Waiver
from smartid.tls.judge import Finding, Severity
from smartid.tls.probe import ProbeTarget

__all__ = [
    "CHECK_ID",
    "BundleCertificate",
    "CheckEntry",
    "CheckOutcome",
    "Findings",
    "IdmReadings",
    "Officer",
    "TlsEndpoint",
    "WaiverStatus",
    "bundle_certificates",
    "check_catalogue",
    "check_id",
    "failure_text",
    "file_sha256",
    "finding_line",
    "hermod_key",
    "officer_keystore",
    "read_junit",
    "tls_endpoints",
    "waiver_status",
]

CHECK_ID = re.compile(r"^([A-Z]+-\d{3})\b")


def check_id(doc: str | None) -> str | None:
    """The id a check's docstring starts with (`TLS-003 The leaf ...`), or None."""
    match = CHECK_ID.match((doc or "").strip())
    return match.group(1) if match else None


class Findings:
    """Every finding of one check, in the order seen; the check fails once, at its end."""

    def __init__(self, check: str, severity: Severity) -> None:
        self.check = check
        self.severity = severity
        self._found: list[Finding] = []
        self._details: list[str] = []

    def add(
        self,
        key: str,
        observed: str,
        required: str,
        target: str,
        *,
        severity: Severity | None = None,
    ) -> None:
        """One finding; its severity is the check's unless given ("warning" passes)."""
        self._found.append(Finding(key, severity or self.severity, observed, required, target))

    def extend(self, findings: Iterable[Finding], *, target: str | None = None) -> None:
        """Findings a judge made, under another target name if given."""
        for finding in findings:
            self._found.append(replace(finding, target=target) if target else finding)

    def detail(self, text: str) -> None:
        """Text shown below the findings when the check fails (a diff, say)."""
        self._details.append(text)

    @property
    def all(self) -> tuple[Finding, ...]:
        return tuple(self._found)

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self._found if f.severity != "warning")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self._found if f.severity == "warning")

    @property
    def details(self) -> tuple[str, ...]:
        return tuple(self._details)


def finding_line(finding: Finding) -> str:
    return (
        f"[{finding.severity}] {finding.target}: {finding.observed} (required: {finding.required})"
    )


def failure_text(
    check: str,
    failures: Sequence[Finding],
    *,
    errors: Sequence[str] = (),
    details: Sequence[str] = (),
    note: str | None = None,
) -> str:
    """The one failure of a check: a single finding as one line, several as a headline and one
    line each; then the note and the details."""
    shown = [finding_line(f) for f in failures] + list(errors)
    if len(shown) == 1:
        lines = [f"{check}: {shown[0]}"]
    else:
        lines = [f"{check}: {len(shown)} findings", *(f"- {line}" for line in shown)]
    if note:
        lines.append(note)
    lines += [text.rstrip("\n") for text in details]
    return "\n".join(lines)


# --- waivers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaiverStatus:
    """The waiver that applies to a check today, and the latest one that no longer does."""

    active: Waiver | None
    expired: Waiver | None

    @property
    def skip_reason(self) -> str | None:
        w = self.active
        return None if w is None else f"waived: {w.reason} ({w.owner}, until {w.until})"

    @property
    def expired_note(self) -> str | None:
        w = self.expired
        if w is None or self.active is not None:
            return None
        return f"the waiver of {w.owner} ({w.reason}) expired after {w.until} and no longer applies"


def waiver_status(waivers: Sequence[Waiver], check: str, today: date) -> WaiverStatus:
    """A waiver applies up to and including its `until` day."""
    mine = [w for w in waivers if w.check == check]
    active = [w for w in mine if today <= w.until]
    expired = [w for w in mine if today > w.until]
    return WaiverStatus(
        active=max(active, key=lambda w: w.until) if active else None,
        expired=max(expired, key=lambda w: w.until) if expired else None,
    )


# --- TLS endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsEndpoint:
    """One endpoint the TLS checks observe; `id` is its pytest id and its observation's key."""

    id: str
    label: str
    url: str
    server_name: str | None
    ca_bundle: Path | None
    client_auth_required: bool
    client_cert: tuple[Path, Path] | None = None
    officer: bool = False  # presents the CM officer's certificate

    @property
    def address(self) -> tuple[str, int, str]:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        return host, parts.port or 443, self.server_name or host

    def named(self, address: str) -> str:
        """How findings name the endpoint: its id and the address observed."""
        return f"{self.id} ({address})"

    def target(self, policy: TlsPolicy, client_cert: tuple[Path, Path] | None) -> ProbeTarget:
        return ProbeTarget.from_url(
            self.id,
            self.url,
            server_name=self.server_name,
            ca_bundle=self.ca_bundle,
            client_cert=client_cert,
            connect_timeout=policy.connect_timeout,
            read_timeout=policy.read_timeout,
        )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def tls_endpoints(site: Site) -> list[TlsEndpoint]:
    """IDM (Admin, and Operator when it listens elsewhere), Hermod, CM and every [[endpoints]]
    entry, in that order; components the site does not declare are left out."""
    found: list[TlsEndpoint] = []
    idm = site.idm
    if idm is not None and idm.admin_url:
        bundle = _path(idm.ca_bundle)
        found.append(TlsEndpoint("idm", "IDM Admin", idm.admin_url, idm.server_name, bundle, False))
        if idm.operator_url:
            operator = TlsEndpoint(
                "idm-operator", "IDM Operator", idm.operator_url, idm.server_name, bundle, False
            )
            # One listener serves both context paths in a usual install: observed once.
            if operator.address != found[0].address:
                found.append(operator)
    messaging = site.messaging
    if messaging is not None and messaging.url:
        found.append(
            TlsEndpoint(
                "hermod",
                "Smart ID Messaging",
                messaging.url,
                messaging.server_name,
                _path(messaging.ca_bundle),
                False,
            )
        )
    cm = site.certificate_manager
    if cm is not None and cm.url:
        found.append(
            TlsEndpoint(
                "cm",
                "Certificate Manager",
                cm.url,
                cm.server_name,
                _path(cm.ca_bundle),
                True,
                officer=True,
            )
        )
    for endpoint in site.endpoints:
        client = None
        if endpoint.client_cert and endpoint.client_key:
            client = (Path(endpoint.client_cert), Path(endpoint.client_key))
        found.append(
            TlsEndpoint(
                f"endpoint-{endpoint.name}",
                f"endpoint '{endpoint.name}'",
                endpoint.url,
                endpoint.server_name,
                _path(endpoint.ca_bundle),
                endpoint.client_auth == "required",
                client,
            )
        )
    return found


# --- the CM officer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Officer:
    """The CM officer certificate the site gives IDM, as files for TLS, or why there are none."""

    files: tuple[Path, Path] | None
    common_name: str | None = None
    serial: str | None = None  # lowercase hex, as CM shows it
    source: str | None = None
    problem: str | None = None

    @classmethod
    def from_chain(cls, files: tuple[Path, Path], source: str) -> Officer:
        cert = x509.load_pem_x509_certificates(files[0].read_bytes())[0]
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return cls(
            files,
            str(names[0].value) if names else "",
            format(cert.serial_number, "x"),
            source,
        )


def officer_keystore(section: CertificateManagerSection) -> tuple[bytes, Secret, str]:
    """The officer's PKCS#12 keystore, its password and where it came from: the site's
    officer_keystore, else the keystore inside the site's connection_zip. PackageError if none."""
    if section.officer_keystore is not None and section.officer_keystore_password is not None:
        path = Path(section.officer_keystore)
        try:
            return path.read_bytes(), section.officer_keystore_password.get(), str(path)
        except OSError as exc:
            raise PackageError(str(path), f"cannot be read ({exc.strerror})") from None
    if section.connection_zip is not None:
        path = Path(section.connection_zip)
        try:
            parsed = read_connection_zip(path.read_bytes())
        except OSError as exc:
            raise PackageError(str(path), f"cannot be read ({exc.strerror})") from None
        except ValueError as exc:
            raise PackageError(str(path), str(exc)) from None
        return parsed.keystore, keystore_password(parsed), f"{path} ({parsed.keystore_name})"
    raise PackageError(
        "certificate_manager", "the site gives neither officer_keystore nor connection_zip"
    )


# --- files the site names -----------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCertificate:
    subject: str
    sha256: str  # of the DER, as IDM's truststore lists it


def bundle_certificates(path: Path) -> list[BundleCertificate]:
    """The certificates of a PEM bundle (the site loader has made sure it is one)."""
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PackageError(str(path), f"is not a readable PEM certificate bundle ({exc})") from None
    return [
        BundleCertificate(
            cert.subject.rfc4514_string(),
            hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        )
        for cert in certificates
    ]


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise PackageError(str(path), f"cannot be read ({exc.strerror})") from None


def hermod_key(deployment: Deployment, messaging: MessagingSection) -> tuple[Secret | None, str]:
    """The key Hermod holds for the IDM client and where it was read: Hermod's application.yml
    when the site names it (what Hermod itself checks), else the key the suite knows (the site's,
    or the site state's)."""
    path = deployment.application_yml()
    if path is not None:
        for client in deployment.configured_hermod_clients():
            if client.client_id == messaging.client_id:
                return client.key, f"Hermod's {path.name}"
    key, source = deployment.hermod_key()
    return key, f"the {source}"


class IdmReadings:
    """IDM's objects as the admin contract lists them, each list read once and shared by every
    check of the run (observe once, judge many): the verify run is read-only, so they cannot
    change under it."""

    def __init__(self, client: IdmClient) -> None:
        self.client = client

    @functools.cached_property
    def login_works(self) -> bool:
        return self.client.login_works()

    @functools.cached_property
    def packages(self) -> dict[str, InstalledPackage]:
        return {p.name: p for p in self.client.packages()}

    @functools.cached_property
    def certificate_authorities(self) -> dict[str, CertificateAuthority]:
        return {c.name: c for c in self.client.certificate_authorities()}

    @functools.cached_property
    def messaging_servers(self) -> dict[str, MessagingServer]:
        return {m.name: m for m in self.client.messaging_servers()}

    @functools.cached_property
    def truststore(self) -> tuple[TrustEntry, ...]:
        return tuple(self.client.truststore())

    @functools.cached_property
    def processes(self) -> dict[str, Process]:
        return {p.name: p for p in self.client.processes()}


# --- the catalogue of checks and their outcomes in a JUnit report -------------------------------


@dataclass(frozen=True)
class CheckEntry:
    """One check as its module declares it."""

    id: str
    module: str  # "test_tls"
    function: str  # "test_handshake_verifies"
    severity: str
    health: bool
    requirement: str  # the docstring's first sentence, after the id


def _is_mark(node: ast.expr, name: str) -> bool:
    """`pytest.mark.<name>` or `pytest.mark.<name>(...)`, as written in the source."""
    target = node.func if isinstance(node, ast.Call) else node
    return (
        isinstance(target, ast.Attribute)
        and target.attr == name
        and isinstance(target.value, ast.Attribute)
        and target.value.attr == "mark"
    )


def _severity_mark(node: ast.FunctionDef) -> str:
    for decorator in node.decorator_list:
        if _is_mark(decorator, "severity") and isinstance(decorator, ast.Call):
            arguments = decorator.args
            if arguments and isinstance(arguments[0], ast.Constant):
                return str(arguments[0].value)
    return ""


def _module_marks(tree: ast.Module) -> list[ast.expr]:
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in statement.targets
        ):
            value = statement.value
            return list(value.elts) if isinstance(value, ast.List | ast.Tuple) else [value]
    return []


def check_catalogue(folder: Path) -> list[CheckEntry]:
    """Every check of the `test_*.py` modules in `folder`, read from the source without importing
    it: id and requirement from the docstring, severity and health from the markers."""
    entries: list[CheckEntry] = []
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        health = any(_is_mark(mark, "health") for mark in _module_marks(tree))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            doc = " ".join((ast.get_docstring(node) or "").split())
            found = check_id(doc)
            if found is None:
                continue
            requirement = doc.removeprefix(found).strip()
            severity = _severity_mark(node)
            entries.append(CheckEntry(found, path.stem, node.name, severity, health, requirement))
    return entries


Status = Literal["passed", "failed", "skipped", "error"]


@dataclass(frozen=True)
class CheckOutcome:
    """How one check (one parametrized case of it) ended in a run, with its message."""

    check: str
    case: str | None
    status: Status
    message: str

    @property
    def label(self) -> str:
        return f"{self.check}[{self.case}]" if self.case else self.check


def read_junit(path: Path, catalogue: Sequence[CheckEntry]) -> list[CheckOutcome]:
    """The outcome of every check case a pytest JUnit XML report holds."""
    by_function = {(e.module, e.function): e.id for e in catalogue}
    outcomes: list[CheckOutcome] = []
    for case in ElementTree.parse(path).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "")
        function, _, rest = name.partition("[")
        found = by_function.get((module, function))
        if found is None:
            continue
        status: Status = "passed"
        message = ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = "skipped" if child.tag == "skipped" else "failed"
                if child.tag == "error":
                    status = "error"
                # The text is the whole report; the message attribute only its first part.
                message = child.text or child.get("message") or ""
        outcomes.append(CheckOutcome(found, rest[:-1] if rest else None, status, message))
    return outcomes
