"""The lab's components talking to each other (IDM -> CM, IDM -> Hermod -> IDM) and faults."""

from __future__ import annotations

import gc
import json
import os
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from smartid.cm import build_connection_zip
from smartid.hermod import HermodClient, generate_key, merge_client
from smartid.idm import IdmClient
from smartid.idm.export import read_configuration
from smartid.idm.signature import verify_jar
from smartid.lab.faults import FAULTS, FaultSet
from smartid.lab.state import LabState
from smartid.masking import Secret
from tests.lab import basic, lab_session, new_state, refresh_hermod, running_lab

pytestmark = pytest.mark.lab

CA = "Smart ID Certificate Manager"
MESSAGING = "Smart ID Messaging"
ADMIN = Secret("admin", "factory default")


def _idm(state: LabState) -> IdmClient:
    return IdmClient(
        state.endpoints()["idm_admin"], user="admin", password=ADMIN, ca_bundle=state.pki.ca_bundle
    )


def _connection_zip(state: LabState, keystore: bytes, password: str) -> bytes:
    return build_connection_zip(
        url=state.endpoints()["cm"],
        keystore=keystore,
        keystore_password=Secret(password, "test"),
        trust_certs=[state.pki.ca_bundle.read_bytes()],
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    state = new_state(tmp_path_factory.mktemp("lab"))
    with running_lab(state), _idm(state) as idm:
        idm.upload_configuration(state.package_file.read_bytes())
        lock = idm.process("Lock user")
        idm.bind_task(
            "Lock user",
            "Lock related credentials",
            version=lock.version,
            data_pool="Batch order",
            sub_process="set credential status",
        )
        yield state


def _configure_hermod_client(state: LabState, password: str) -> HermodClient:
    client = HermodClient(
        client_id="idm",
        key=Secret(generate_key(), "test"),
        callback_url=f"{state.endpoints()['idm_operator']}/ws/hermod",
        callback_basic_auth=Secret(f"hermod:{password}", "test"),
    )
    config = state.hermod_config
    config.write_text(merge_client(config.read_text(), client))
    assert "idm" in refresh_hermod(state)
    return client


def test_messaging_round_trip_names_each_missing_piece_then_passes(lab: LabState) -> None:
    password = lab.secrets()["hermod_password"]
    with _idm(lab) as idm:
        result = idm.test_messaging_connection(MESSAGING)
        assert not result.ok
        assert "no URL" in (result.error or "")

        client = _configure_hermod_client(lab, password)
        server = idm.messaging_server(MESSAGING)
        idm.update_messaging_server(
            MESSAGING,
            version=server.version,
            url=f"{lab.endpoints()['hermod']}/command",
            authentication_token=client.api_key,
            lifespan=300,
        )
        result = idm.test_messaging_connection(MESSAGING)
        assert not result.ok
        assert "truststore" in (result.error or "")

        lab.pki.issue_server("unrelated", issuer="foreign")
        idm.add_trust("unrelated", (lab.pki.folder / "foreign-root-ca.pem").read_text())
        result = idm.test_messaging_connection(MESSAGING)
        assert not result.ok
        assert "issued by 'CN=Smart ID Lab Issuing CA'" in (result.error or "")
        idm.remove_trust("unrelated")

        idm.add_trust("lab-root", lab.pki.root_cert.read_text())
        result = idm.test_messaging_connection(MESSAGING)
        assert not result.ok
        assert "HTTP 401" in (result.error or "")
        assert "hermod user" in (result.error or "")
        assert result.legs[0]["ok"] is True

        hermod = idm.user("hermod")
        idm.set_password("hermod", Secret(password, "test"), version=hermod.version)
        started = time.monotonic()
        result = idm.test_messaging_connection(MESSAGING)
        elapsed = time.monotonic() - started
        assert result.ok, result.error
        assert [leg["ok"] for leg in result.legs] == [True, True]
        assert "hermod" in result.legs[1]["detail"]
    print(f"messaging round trip: {elapsed * 1000:.0f} ms")


def test_ca_test_connection_passes_with_officer_and_fails_without(lab: LabState) -> None:
    password = lab.secrets()["officer_keystore_password"]
    foreign = lab.pki.issue_client("foreign-officer", common_name="IDM Officer", issuer="foreign")
    with _idm(lab) as idm:
        assert "no CM connection zip" in (idm.test_ca_connection(CA).error or "")

        ca = idm.certificate_authority(CA)
        bad = _connection_zip(lab, lab.pki.pkcs12(foreign, password), password)
        idm.upload_connection_zip(CA, bad, version=ca.version)
        refused = idm.test_ca_connection(CA)
        assert not refused.ok
        assert "localhost" in (refused.error or "")
        types = idm.import_certificate_types(CA)
        assert not types.ok

        ca = idm.certificate_authority(CA)
        good = _connection_zip(lab, lab.pki.officer.p12.read_bytes(), password)
        idm.upload_connection_zip(CA, good, version=ca.version)
        passed = idm.test_ca_connection(CA)
        assert passed.ok, passed.error
        assert passed.officer == "IDM Officer"
        assert passed.protocol in ("TLSv1.2", "TLSv1.3")
        imported = idm.import_certificate_types(CA)
        assert imported.ok
        assert "Smart ID user card" in imported.certificate_types
        assert "Smart ID user card" in idm.certificate_authority(CA).certificate_types


# --- faults ------------------------------------------------------------------------------------


def _handshake(state: LabState, component: str) -> str:
    """What a verifying client sees of a component's server certificate."""
    port = state.ports()[component]
    context = ssl.create_default_context(cafile=str(state.pki.ca_bundle))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
            context.wrap_socket(
                raw, server_hostname="localhost", do_handshake_on_connect=False
            ) as tls,
        ):
            tls.do_handshake()
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        return f"refused: {exc.verify_message}"
    except (OSError, ssl.SSLError) as exc:
        return f"error: {type(exc).__name__}"
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    days = (leaf.not_valid_after_utc - datetime.now(UTC)).days
    return f"ok, {'expiring' if days < 30 else 'valid'}"


def _leaf(state: LabState, component: str) -> x509.Certificate | None:
    """The component's leaf certificate as presented, verification off; None without one."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        with (
            socket.create_connection(("127.0.0.1", state.ports()[component]), timeout=3) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _observe_cert(state: LabState, component: str) -> str:
    """The leaf as presented, verification off: key size, signature hash, whether it has a
    subjectAltName."""
    leaf = _leaf(state, component)
    if leaf is None:
        return "error: no certificate"
    algorithm = leaf.signature_hash_algorithm
    try:
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        san = ""
    except x509.ExtensionNotFound:
        san = ", no SAN"
    return f"{leaf.public_key().key_size} bits, {algorithm.name if algorithm else '?'}{san}"


def _legacy(state: LabState, component: str) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
    if component == "cm":
        # CM refuses any handshake without a client certificate, whatever the version offered.
        officer = state.pki.officer
        context.load_cert_chain(officer.cert, officer.key)
    try:
        with (
            socket.create_connection(("127.0.0.1", state.ports()[component]), timeout=3) as raw,
            context.wrap_socket(raw, do_handshake_on_connect=False) as tls,
        ):
            tls.do_handshake()
            return "TLSv1 accepted"
    except (OSError, ssl.SSLError):
        return "TLSv1 refused"


def _static_rsa(state: LabState, component: str) -> str:
    """Whether a TLS 1.2 handshake offering only static-RSA suites is accepted."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("kRSA:@SECLEVEL=0")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with (
            socket.create_connection(("127.0.0.1", state.ports()[component]), timeout=3) as raw,
            context.wrap_socket(raw, do_handshake_on_connect=False) as tls,
        ):
            tls.do_handshake()
            return "kRSA accepted"
    except (OSError, ssl.SSLError):
        return "kRSA refused"


def _cm_without_certificate(state: LabState) -> str:
    context = ssl.create_default_context(cafile=str(state.pki.ca_bundle))
    request = b"GET /cm/api/v1/ping HTTP/1.0\r\nHost: localhost\r\n\r\n"
    try:
        with (
            socket.create_connection(("127.0.0.1", state.ports()["cm"]), timeout=3) as raw,
            context.wrap_socket(
                raw, server_hostname="localhost", do_handshake_on_connect=False
            ) as tls,
        ):
            tls.do_handshake()
            tls.sendall(request)
            answer = tls.recv(64)
    except (OSError, ssl.SSLError):
        return "refused"
    return answer.split(b"\r\n", 1)[0].decode() or "refused"


def _callback(state: LabState, user: str | None) -> str:
    headers = basic(user, state.secrets()["hermod_password"]) if user else {}
    url = f"{state.endpoints()['idm_operator']}/ws/hermod/callback/ping"
    with lab_session(state) as http:
        try:
            response = http.post(url, json={"commandId": "observe"}, headers=headers)
        except Exception as exc:  # any failure is an observation here
            return f"error: {type(exc).__name__}"
    return str(response.status_code)


def _hsts(state: LabState) -> str:
    """IDM Operator's Strict-Transport-Security header at its root."""
    with lab_session(state) as http:
        try:
            response = http.get(f"{state.endpoints()['idm_operator']}/")
        except Exception as exc:  # any failure is an observation here
            return f"error: {type(exc).__name__}"
    return response.headers.get("Strict-Transport-Security", "none")


def _download(state: LabState) -> str:
    """How the configuration download's signature and signer look."""
    try:
        with _idm(state) as idm:
            data = idm.download_configuration()
    except Exception as exc:  # any failure is an observation here
        return f"error: {type(exc).__name__}"
    result = verify_jar(data, "the download")
    if result.problems or result.signer is None:
        return "; ".join(result.problems) or "no signer"
    days = (result.signer.not_after - datetime.now(UTC)).days
    return "signer expired" if days < 0 else "signer expiring" if days < 30 else "signer valid"


def _operator_binding(state: LabState) -> str:
    """Lock user's 'Lock related credentials' data pool in IDM Operator's download."""
    operator = IdmClient(
        state.endpoints()["idm_operator"],
        user="admin",
        password=ADMIN,
        ca_bundle=state.pki.ca_bundle,
        contract=False,
    )
    try:
        with operator:
            data = operator.download_configuration()
    except Exception as exc:  # any failure is an observation here
        return f"error: {type(exc).__name__}"
    process = read_configuration(data, "IDM Operator's download").processes["Lock user"]
    task = process.task("Lock related credentials")
    return f"data pool {task.data_pool if task is not None else 'no task'}"


def _crl(state: LabState) -> str:
    """The issuing CA's CRL as CM serves it: fresh or stale."""
    base = state.revocation_base
    try:
        answer = requests.get(f"{base}/issuing-ca.crl", timeout=3)
        crl = x509.load_der_x509_crl(answer.content)
    except (OSError, ValueError, requests.RequestException) as exc:
        return f"error: {type(exc).__name__}"
    due = crl.next_update_utc
    return "stale" if due is not None and due < datetime.now(UTC) else "fresh"


def _ocsp(state: LabState, component: str) -> str:
    """What CM's OCSP responder says of the component's presented certificate."""
    leaf = _leaf(state, component)
    if leaf is None:
        return "no certificate"
    issuer = x509.load_pem_x509_certificate(state.pki.issuing_cert.read_bytes())
    # SHA-1 CertIDs: what every OCSP responder must understand (RFC 5019), not a signature.
    sha1 = hashes.SHA1()  # noqa: S303
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, sha1).build()
    try:
        answer = requests.post(
            f"{state.revocation_base}/ocsp",
            data=request.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
            timeout=3,
        )
        parsed = ocsp.load_der_ocsp_response(answer.content)
    except (OSError, ValueError, requests.RequestException) as exc:
        return f"error: {type(exc).__name__}"
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return f"error: {parsed.response_status.name}"
    return parsed.certificate_status.name.lower()


def _observers() -> dict[str, Callable[[LabState], str]]:
    """Each observation a client can make, by name."""
    seen: dict[str, Callable[[LabState], str]] = {}
    for component in ("idm", "hermod", "cm"):
        seen[f"{component} handshake"] = lambda state, c=component: _handshake(state, c)
        seen[f"{component} certificate"] = lambda state, c=component: _observe_cert(state, c)
        seen[f"{component} legacy"] = lambda state, c=component: _legacy(state, c)
    seen["hermod kRSA"] = lambda state: _static_rsa(state, "hermod")
    seen["cm without certificate"] = _cm_without_certificate
    seen["callback as hermod"] = lambda state: _callback(state, "hermod")
    seen["callback anonymous"] = lambda state: _callback(state, None)
    seen["idm hsts"] = _hsts
    seen["crl"] = _crl
    for component in ("idm", "hermod", "cm"):
        seen[f"{component} ocsp"] = lambda state, c=component: _ocsp(state, c)
    seen["idm download"] = _download
    seen["operator binding"] = _operator_binding
    return seen


OBSERVERS = _observers()


def _observe(state: LabState, keys: tuple[str, ...] = tuple(OBSERVERS)) -> dict[str, str]:
    # The raw probes race listeners that a fault switch is stopping; a socket the peer cut off
    # mid-handshake can outlive its probe. It is collected here, quietly, instead of surfacing as
    # an "unclosed socket" warning in whichever test the garbage collector happens to run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        seen = {key: OBSERVERS[key](state) for key in keys}
        gc.collect()
    return seen


@pytest.fixture(scope="module")
def baseline(lab: LabState) -> dict[str, str]:
    with _idm(lab) as idm:
        hermod = idm.user("hermod")
        if not hermod.has_password:
            idm.set_password(
                "hermod", Secret(lab.secrets()["hermod_password"], "test"), version=hermod.version
            )
    seen = _observe(lab)
    assert seen["idm handshake"] == "ok, valid"
    assert seen["cm without certificate"] == "refused"
    assert seen["callback as hermod"] == "200"
    assert seen["callback anonymous"] == "401"
    assert seen["idm download"] == "signer valid"
    assert seen["idm hsts"].startswith("max-age=")
    assert seen["crl"] == "fresh"
    assert {seen[f"{c} ocsp"] for c in ("idm", "hermod", "cm")} == {"good"}
    assert seen["operator binding"] == "data pool Batch order"
    return seen


def _settled(
    state: LabState,
    done: Callable[[dict[str, str]], bool],
    keys: tuple[str, ...] = tuple(OBSERVERS),
    timeout: float = 8.0,
) -> dict[str, str]:
    """The first observation of `keys` that `done` accepts and that the next one repeats (a
    listener a fault switch restarts can answer once more the old way)."""
    deadline = time.monotonic() + timeout
    previous = _observe(state, keys)
    while True:
        seen = _observe(state, keys)
        if (seen == previous and done(seen)) or time.monotonic() > deadline:
            return seen
        previous = seen
        time.sleep(0.1)


def _expected(fault: str) -> tuple[str, str]:
    """(observation, words it must contain) for each fault."""
    component, _, kind = fault.partition("-")
    by_kind = {
        "cert-expired": ("handshake", "certificate has expired"),
        "cert-expiring-soon": ("handshake", "ok, expiring"),
        "cert-wrong-host": ("handshake", "Hostname mismatch"),
        "cert-untrusted": ("handshake", "refused: "),
        "cert-weak-key": ("certificate", "1024 bits"),
        "cert-sha1": ("certificate", "sha1"),
        "cert-cn-only": ("certificate", "no SAN"),
        "tls1-accepted": ("legacy", "TLSv1 accepted"),
        "down": ("handshake", "error: ConnectionRefusedError"),
        "cert-revoked": ("ocsp", "revoked"),
    }
    specific = {
        "cm-client-auth-not-required": ("cm without certificate", "401"),
        "hermod-static-rsa-accepted": ("hermod kRSA", "kRSA accepted"),
        "idm-hsts-missing": ("idm hsts", "none"),
        "cm-crl-stale": ("crl", "stale"),
        "cm-ocsp-down": ("idm ocsp", "error: "),
        "hermod-callback-refused": ("callback as hermod", "403"),
        "idm-callback-anonymous": ("callback anonymous", "200"),
        "idm-config-signer-expired": ("idm download", "signer expired"),
        "idm-config-signer-expiring-soon": ("idm download", "signer expiring"),
        "idm-config-signature-broken": ("idm download", "does not match its SHA-256 digest"),
        "idm-operator-stale-configuration": ("operator binding", "data pool None"),
    }
    if fault in specific:
        return specific[fault]
    observation, words = by_kind[kind]
    return f"{component} {observation}", words


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_changes_what_a_client_observes(
    lab: LabState, baseline: dict[str, str], fault: str
) -> None:
    key, words = _expected(fault)
    faults = FaultSet(lab.path)
    faults.switch(fault, True)
    try:
        changed = _settled(lab, lambda seen: words in seen[key], keys=(key,))
    finally:
        faults.switch(fault, False)
    assert words in changed[key], f"{fault}: {key} is {changed[key]!r}"
    # Switched off, the observation the fault changed settles back first; then every other
    # observation shows the baseline too, once the listeners have settled.
    _settled(lab, lambda seen: seen[key] == baseline[key], keys=(key,))
    deadline = time.monotonic() + 8.0
    while (seen := _observe(lab)) != baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen == baseline


def test_fault_cli_lists_and_switches(lab: LabState, tmp_path: Path) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "smartid.lab", "--state-dir", str(lab.path), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    listing = cli("faults").splitlines()
    assert len(listing) == len(FAULTS)
    assert listing[0].split()[0] in FAULTS
    for word in ("expired", "wrong-host", "untrusted", "client-auth", "callback", "tls1"):
        assert any(word in line.split()[0] for line in listing), word
    cli("fault", "on", "idm-callback-anonymous")
    assert "idm-callback-anonymous" in json.loads(cli("status", "--json"))["faults"]
    cli("fault", "off", "idm-callback-anonymous")
    assert json.loads(cli("status", "--json"))["faults"] == []


def test_a_fault_set_sees_every_switch_even_within_one_clock_tick(tmp_path: Path) -> None:
    # Two faults with names of one length give files of one size; with the file time pinned, as
    # on a file system whose clock ticks in seconds, only the content tells them apart.
    by_length: dict[int, list[str]] = {}
    for name in FAULTS:
        by_length.setdefault(len(name), []).append(name)
    first, second = next(names for names in by_length.values() if len(names) >= 2)[:2]
    switches, reader = FaultSet(tmp_path), FaultSet(tmp_path)
    path, tick = tmp_path / "faults.json", 1_700_000_000 * 10**9

    def switch(name: str, on: bool) -> None:
        switches.switch(name, on)
        os.utime(path, ns=(tick, tick))

    for _ in range(3):
        switch(first, True)
        assert reader.active() == {first}
        switch(first, False)
        switch(second, True)
        assert reader.active() == {second}
        switch(second, False)
    assert reader.active() == frozenset()
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["faults.json"]
