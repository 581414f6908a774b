"""Every verify check is shown to fail (docs/lab.md, docs/checks.md): a lab set up by the suite's
own setup passes every check; then, for each check id, a lab fault or a configuration change breaks
what the check guards, the suite's verify run (in a subprocess, as a user runs it) fails exactly the
cases of that check that should fail, and each failure names the endpoint or object and what was
observed.

Wrong configuration is written through the admin contract (or the deploy API, or Hermod's
application.yml, wherever the guide puts it), and undone afterwards. One exception: the contract
refuses passwords shorter than 8 characters, so "admin/admin" can only come back by a factory reset
of the lab, which the setup run then repairs.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smartid.hermod import HermodClient, generate_key, merge_client, parse_clients
from smartid.idm import IdmClient
from smartid.lab.store import Store
from smartid.masking import Secret
from tests.lab import refresh_hermod
from tests.setuplab import CATALOGUE, SetUpLab, explain, faults_on, set_up_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

CA = "Smart ID Certificate Manager"
MESSAGING = "Smart ID Messaging"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SetUpLab]:
    with set_up_lab(tmp_path_factory.mktemp("checks")) as ready:
        yield ready


# --- configuration changes ----------------------------------------------------------------------


GUIDE_BINDINGS = [
    (f"{verb} user", task, pool, sub)
    for verb in ("Deactivate", "Reactivate", "Lock")
    for task, pool, sub in (
        (f"{verb} related credentials", "Batch order", "set credential status"),
        ("Load related credentials", "Credentials", "load credential(s)"),
    )
]


def _bind_guide_tasks(idm: IdmClient) -> None:
    for process_name, task, pool, sub in GUIDE_BINDINGS:
        process = idm.process(process_name)
        idm.bind_task(process_name, task, version=process.version, data_pool=pool, sub_process=sub)


@contextmanager
def wrong_binding(lab: SetUpLab) -> Iterator[None]:
    with lab.idm() as idm:
        process = idm.process("Lock user")
        idm.bind_task(
            "Lock user",
            "Load related credentials",
            version=process.version,
            data_pool="Batch order",
            sub_process="set credential status",
        )
    try:
        yield
    finally:
        with lab.idm() as idm:
            _bind_guide_tasks(idm)


@contextmanager
def wrong_ca_description(lab: SetUpLab) -> Iterator[None]:
    with lab.idm() as idm:
        ca = idm.certificate_authority(CA)
        idm.update_certificate_authority(
            CA, version=ca.version, description="Not the CA the site declares"
        )
    try:
        yield
    finally:
        with lab.idm() as idm:
            now = idm.certificate_authority(CA)
            idm.update_certificate_authority(CA, version=now.version, description=ca.description)


def _site_api_key(lab: SetUpLab) -> Secret:
    key = (Path(lab.env["SMARTID_STATE"]) / "lab" / "hermod-client.key").read_text().strip()
    return HermodClient(client_id="idm", key=Secret(key, "site state")).api_key


@contextmanager
def wrong_token_and_lifespan(lab: SetUpLab) -> Iterator[None]:
    wrong = HermodClient(client_id="idm", key=Secret(generate_key(), "another key")).api_key
    with lab.idm() as idm:
        server = idm.messaging_server(MESSAGING)
        idm.update_messaging_server(
            MESSAGING, version=server.version, authentication_token=wrong, lifespan=600
        )
    try:
        yield
    finally:
        with lab.idm() as idm:
            now = idm.messaging_server(MESSAGING)
            idm.update_messaging_server(
                MESSAGING,
                version=now.version,
                authentication_token=_site_api_key(lab),
                lifespan=server.lifespan,
            )


@contextmanager
def hermod_ca_untrusted(lab: SetUpLab) -> Iterator[None]:
    pem = lab.state.pki.root_cert.read_text()
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest()
    with lab.idm() as idm:
        entry = next(e for e in idm.truststore() if e.sha256 == digest)
        idm.remove_trust(entry.alias)
    try:
        yield
    finally:
        with lab.idm() as idm:
            idm.add_trust(entry.alias, pem)


@contextmanager
def hermod_password_changed(lab: SetUpLab) -> Iterator[None]:
    with lab.idm() as idm:
        user = idm.user("hermod")
        other = Secret("Another-hermod-Passw0rd", "another password")
        idm.set_password("hermod", other, version=user.version)
    try:
        yield
    finally:
        with lab.idm() as idm:
            user = idm.user("hermod")
            right = Secret(lab.state.secrets()["hermod_password"], "lab hermod password")
            idm.set_password("hermod", right, version=user.version)


@contextmanager
def hermod_client_changed(lab: SetUpLab) -> Iterator[None]:
    path = lab.state.hermod_config
    original = path.read_text(encoding="utf-8")
    client = next(c for c in parse_clients(original) if c.client_id == "idm")
    changed = HermodClient(
        client_id="idm",
        key=Secret(generate_key(), "another key"),
        callback_url=client.callback_url,
        callback_basic_auth=Secret("intruder:Intruder-Passw0rd", "another user"),
    )
    path.write_text(merge_client(original, changed), encoding="utf-8")
    refresh_hermod(lab.state)
    try:
        yield
    finally:
        path.write_text(original, encoding="utf-8")
        refresh_hermod(lab.state)


def _with_version(package: bytes, version: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "META-INF/package.json":
                manifest = json.loads(data)
                manifest["version"] = version
                data = json.dumps(manifest).encode()
            target.writestr(info, data)
    return out.getvalue()


@contextmanager
def other_package(lab: SetUpLab) -> Iterator[None]:
    original = lab.state.package_file.read_bytes()
    with lab.idm() as idm:
        # Overwrite: IDM refuses a package whose objects differ from the configured ones.
        idm.upload_configuration(_with_version(original, "9.9.9"), overwrite=True)
    try:
        yield
    finally:
        # The overwrite reset what setup configured; setup uploads the site's package and
        # configures it again.
        lab.setup()


@contextmanager
def factory_reset(lab: SetUpLab) -> Iterator[None]:
    subprocess.run(
        [sys.executable, "-m", "smartid.lab", "--state-dir", str(lab.state.path), "reset"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield
    finally:
        lab.setup()


# --- what each mutation must fail --------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """`check` fails exactly in `cases` (its other cases pass), each failure naming `words`
    ("{case}" stands for the case)."""

    check: str
    words: tuple[str, ...]
    cases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mutation:
    id: str
    expect: tuple[Expect, ...]
    faults: tuple[str, ...] = ()
    change: Callable[[SetUpLab], AbstractContextManager[None]] | None = None


ENDPOINT = "{case} (localhost:"
MUTATIONS = [
    Mutation(
        "Hermod and CM do not listen",
        faults=("hermod-down", "cm-down"),
        expect=(Expect("CONN-001", (ENDPOINT, "connection refused"), ("hermod", "cm")),),
    ),
    # Run with CONN-001 the checks below are blocked by it (tests/test_checks_faults.py); run
    # without it they meet the cause themselves, and each fails naming what it tried.
    Mutation(
        "Hermod and CM do not listen, the checks that talk to them alone",
        faults=("hermod-down", "cm-down"),
        expect=(
            Expect("CONN-003", ("/hermod/rest/command/ping", "connection refused")),
            Expect("CONN-004", ("/cm/api/v1/ping", "connection refused")),
            Expect("CONN-006", (f"CA '{CA}'", "connection refused")),
        ),
    ),
    Mutation(
        "IDM Operator refuses Hermod's callbacks",
        faults=("hermod-callback-refused",),
        expect=(Expect("CONN-005", (f"messaging server '{MESSAGING}'", "HTTP 403")),),
    ),
    Mutation(
        "IDM Operator takes anonymous callbacks",
        faults=("idm-callback-anonymous",),
        expect=(
            Expect("AUTH-002", ("IDM Operator https://", "/ws/hermod/callback/ping", "anonymous")),
        ),
    ),
    Mutation(
        "IDM certificate for another host, Hermod's SHA-1 signed, CM without client certificates",
        faults=("idm-cert-wrong-host", "hermod-cert-sha1", "cm-client-auth-not-required"),
        expect=(
            Expect("TLS-001", (ENDPOINT,), ("idm", "hermod")),
            Expect("TLS-005", (ENDPOINT, "signed with sha1"), ("hermod",)),
            Expect("TLS-006", (ENDPOINT, "accepts a client without a certificate"), ("cm",)),
        ),
    ),
    Mutation(
        "CM has revoked Hermod's server certificate",
        faults=("hermod-cert-revoked",),
        expect=(
            Expect(
                "TLS-009",
                (ENDPOINT, "'CN=localhost,O=hermod' is revoked", "/cm/pki/issuing-ca.crl"),
                ("hermod",),
            ),
        ),
    ),
    Mutation(
        "IDM certificate expired, Hermod's with a 1024-bit key",
        faults=("idm-cert-expired", "hermod-cert-weak-key"),
        expect=(
            Expect("TLS-003", (ENDPOINT, "expired on"), ("idm",)),
            Expect("TLS-004", (ENDPOINT, "1024-bit RSA key"), ("hermod",)),
        ),
    ),
    Mutation(
        "Hermod accepts static RSA key exchange in TLS 1.2",
        faults=("hermod-static-rsa-accepted",),
        expect=(
            Expect("TLS-007", (ENDPOINT, "in a TLS 1.2 handshake offering only kRSA"), ("hermod",)),
        ),
    ),
    Mutation(
        "IDM Admin and IDM Operator answer without HSTS",
        faults=("idm-hsts-missing",),
        expect=(
            Expect(
                "TLS-008",
                ("IDM ", "/: the answer (HTTP 200) carries no Strict-Transport-Security header"),
                ("idm", "idm-operator"),
            ),
        ),
    ),
    Mutation(
        "Hermod and CM accept TLS 1.0 and 1.1",
        faults=("hermod-tls1-accepted", "cm-tls1-accepted"),
        expect=(
            Expect(
                "TLS-002",
                (ENDPOINT, "offering only TLSv1", "offering only TLSv1.1"),
                ("hermod", "cm"),
            ),
        ),
    ),
    Mutation(
        "Lock user's Load related credentials bound to the wrong data pool",
        change=wrong_binding,
        expect=(
            Expect(
                "CONF-004",
                ("process 'Lock user' task 'Load related credentials'", "'Batch order'"),
                ("Lock user/Load related credentials",),
            ),
            Expect("DRIFT-001", ('"Load related credentials".data_pool = "Batch order"',)),
        ),
    ),
    Mutation(
        "CA description changed",
        change=wrong_ca_description,
        expect=(
            Expect("CONF-002", (f"CA '{CA}'", "description is 'Not the CA the site declares'")),
            Expect("DRIFT-001", ('.description = "Not the CA the site declares"',)),
        ),
    ),
    Mutation(
        "Messaging server with another token and lifespan",
        change=wrong_token_and_lifespan,
        expect=(
            Expect("AUTH-004", (f"messaging server '{MESSAGING}'", "another token")),
            Expect("CONF-003", (f"messaging server '{MESSAGING}'", "lifespan is 600 s")),
            Expect("CONN-005", (f"messaging server '{MESSAGING}'", "HTTP 401")),
        ),
    ),
    Mutation(
        "Hermod's root CA removed from IDM's truststore",
        change=hermod_ca_untrusted,
        expect=(
            Expect("CONF-005", ("IDM truststore", "lacks 'CN=Smart ID Lab Root CA'")),
            Expect("CONN-005", (f"messaging server '{MESSAGING}'", "certificate verification")),
        ),
    ),
    Mutation(
        "IDM hermod user's password changed",
        change=hermod_password_changed,
        expect=(Expect("AUTH-002", ("IDM Operator https://", "user 'hermod'", "HTTP 401")),),
    ),
    Mutation(
        "IDM client in Hermod's application.yml with another key and callback user",
        change=hermod_client_changed,
        expect=(
            Expect("CONN-003", ("refuses the key of client 'idm'", "HTTP 401")),
            Expect("AUTH-003", ("application.yml client 'idm'", "for user 'intruder'")),
            Expect("AUTH-004", (f"messaging server '{MESSAGING}'", "application.yml")),
        ),
    ),
    Mutation(
        "Another SharedCredentials.zip installed",
        change=other_package,
        expect=(
            Expect("CONF-001", ("package SharedCredentials", "is installed with sha256")),
            Expect("DRIFT-001", ("package.SharedCredentials.sha256",)),
        ),
    ),
    Mutation(
        "An entry of IDM's configuration download changed after signing",
        faults=("idm-config-signature-broken",),
        expect=(
            Expect(
                "CONF-006",
                (
                    "IDM Admin's configuration download (https://localhost:",
                    "does not match its SHA-256 digest in META-INF/MANIFEST.MF",
                ),
            ),
        ),
    ),
    Mutation(
        "Factory reset brings the default admin password back",
        change=factory_reset,
        expect=(
            Expect("AUTH-001", ("IDM Admin https://", "accepts user 'admin'", "default password")),
            Expect("CONN-002", ("IDM Admin https://", "refuses user 'admin'", "site's password")),
        ),
    ),
]


# --- the tests -----------------------------------------------------------------------------------


def test_every_check_id_has_a_mutation() -> None:
    ids = {entry.id for entry in CATALOGUE}
    covered = {expect.check for mutation in MUTATIONS for expect in mutation.expect}
    assert ids, "no checks found under checks/"
    assert sorted(ids - covered) == []
    assert sorted(covered - ids) == []


def test_baseline_passes_every_check_and_writes_nothing(lab: SetUpLab) -> None:
    writes = Store(lab.state.database).audit_count()
    result = lab.verify()
    assert result.run.returncode == 0, result.run.output
    assert {o.check for o in result.outcomes} == {e.id for e in CATALOGUE}
    assert [o.label for o in result.outcomes if o.status != "passed"] == []
    # Read-only: IDM's audit log records every write, and there is none.
    assert Store(lab.state.database).audit_count() == writes


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_mutation_fails_the_checks_that_guard_it(lab: SetUpLab, mutation: Mutation) -> None:
    checks = sorted({expect.check for expect in mutation.expect})
    change = mutation.change(lab) if mutation.change is not None else nullcontext()
    with faults_on(lab, mutation.faults), change:
        result = lab.verify(*checks)
    print(explain(result.outcomes))  # shown with -rP: what each check said
    assert result.run.returncode == 1, result.run.output
    assert "Traceback" not in result.run.output
    for expect in mutation.expect:
        outcomes = result.of(expect.check)
        assert outcomes, f"{expect.check} did not run:\n{result.run.output}"
        failed = {o.case for o in outcomes if o.status == "failed"}
        assert failed == (set(expect.cases) or {None}), explain(outcomes)
        for outcome in outcomes:
            if outcome.status != "failed":
                assert outcome.status == "passed", explain(outcomes)
                continue
            for words in expect.words:
                wanted = words.format(case=outcome.case)
                assert wanted in outcome.message, explain([outcome])


def test_after_every_mutation_the_deployment_verifies_again(lab: SetUpLab) -> None:
    result = lab.verify()
    assert result.run.returncode == 0, explain(result.outcomes)
