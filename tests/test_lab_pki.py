"""The lab's PKI is made once, kept across restarts, and its certificates pass (or, for the fault
variants, fail) real TLS handshakes on loopback."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smartid.errors import LabError
from smartid.lab.pki import COMPONENTS, LabPKI, ServerCredentials

PASSWORD = "officer-secret-1"
KEY_FILES = [
    f"{stem}.key" for stem in ("root-ca", "issuing-ca", *COMPONENTS, "officer", "config-signer")
]
CERT_FILES = [f"{stem}.pem" for stem in ("root-ca", "issuing-ca", "ca-bundle", *COMPONENTS)]
ALL_FILES = {*KEY_FILES, *CERT_FILES, "officer.pem", "officer.p12", "config-signer.pem"}
# DER-encoded OIDs of the keystore's encryption: AES-256-CBC and PBES1 with SHA-1 and 3DES.
AES256_CBC_OID = bytes.fromhex("060960864801650304012a")
SHA1_3DES_OID = bytes.fromhex("060a2a864886f70d010c0103")
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    lab = LabPKI(tmp_path_factory.mktemp("lab") / "pki")
    lab.ensure(PASSWORD)
    return lab


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def _chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _client_context(pki: LabPKI, client: ServerCredentials | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=pki.ca_bundle)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def _server_context(creds: ServerCredentials, client_ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(creds.cert, creds.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


@dataclass
class Served:
    """What the one-connection server saw: the client's certificate or why the connection ended."""

    peer: dict[str, Any] | None = None
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[tuple[int, Served]]:
    """A loopback server that completes one handshake and echoes the client's first bytes."""
    served = Served()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                with context.wrap_socket(conn, server_side=True) as tls:
                    served.peer = tls.getpeercert()
                    tls.sendall(tls.recv(4))
        except OSError as exc:  # handshake refusals and timeouts are what some tests expect
            served.errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], served
    finally:
        thread.join(TIMEOUT)
        listener.close()


def _exchange(port: int, context: ssl.SSLContext, server_hostname: str = "localhost") -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(b"ping")
        return tls.recv(4)


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """Under TLS 1.3 a refused client certificate shows on the first read, not in the handshake."""
    try:
        return _exchange(port, context) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def _verification_error(pki: LabPKI, creds: ServerCredentials) -> ssl.SSLCertVerificationError:
    with (
        tls_server(_server_context(creds)) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError) as caught,
    ):
        _exchange(port, _client_context(pki))
    return caught.value


def test_ensure_creates_every_file_with_private_keys_and_folder(tmp_path: Path) -> None:
    lab = LabPKI(tmp_path / "pki")
    lab.ensure(PASSWORD)
    names = {p.name for p in lab.folder.iterdir()}
    assert names == ALL_FILES
    assert stat.S_IMODE(lab.folder.stat().st_mode) == 0o700
    for name in [*KEY_FILES, "officer.p12"]:
        assert stat.S_IMODE((lab.folder / name).stat().st_mode) == 0o600, name


def test_second_ensure_changes_no_file(tmp_path: Path) -> None:
    lab = LabPKI(tmp_path / "pki")
    lab.ensure(PASSWORD)
    before = _snapshot(lab.folder)
    lab.ensure(PASSWORD)
    assert _snapshot(lab.folder) == before


def test_ensure_with_another_password_keeps_the_officer_keystore(tmp_path: Path) -> None:
    lab = LabPKI(tmp_path / "pki")
    lab.ensure(PASSWORD)
    before = _snapshot(lab.folder)
    lab.ensure("another-password")
    assert _snapshot(lab.folder) == before
    pkcs12.load_key_and_certificates(lab.officer.p12.read_bytes(), PASSWORD.encode())


def test_ensure_reissues_only_a_missing_pair(tmp_path: Path) -> None:
    lab = LabPKI(tmp_path / "pki")
    lab.ensure(PASSWORD)
    before = _snapshot(lab.folder)
    lab.server("cm").key.unlink()
    lab.ensure(PASSWORD)
    after = _snapshot(lab.folder)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"cm.pem", "cm.key"}


def test_ensure_rebuilds_a_lost_officer_keystore_from_the_kept_certificate(tmp_path: Path) -> None:
    lab = LabPKI(tmp_path / "pki")
    lab.ensure(PASSWORD)
    officer_pem = lab.officer.cert.read_bytes()
    lab.officer.p12.unlink()
    lab.ensure(PASSWORD)
    assert lab.officer.cert.read_bytes() == officer_pem
    _, cert, _ = pkcs12.load_key_and_certificates(lab.officer.p12.read_bytes(), PASSWORD.encode())
    assert cert == _chain(lab.officer.cert)[0]


def test_lost_root_key_reissues_everything_it_signed(tmp_path: Path) -> None:
    lab = LabPKI(tmp_path / "pki")
    lab.ensure(PASSWORD)
    before = _snapshot(lab.folder)
    (lab.folder / "root-ca.key").unlink()
    lab.ensure(PASSWORD)
    after = _snapshot(lab.folder)
    assert all(after[name] != before[name] for name in ALL_FILES)
    root, issuing = _chain(lab.ca_bundle)
    issuing.verify_directly_issued_by(root)
    _chain(lab.server("idm").cert)[0].verify_directly_issued_by(issuing)


def test_ca_bundle_holds_root_and_issuing_ca(pki: LabPKI) -> None:
    root, issuing = _chain(pki.ca_bundle)
    assert root == _chain(pki.root_cert)[0]
    assert issuing == _chain(pki.issuing_cert)[0]
    assert root.subject.rfc4514_string() == "CN=Smart ID Lab Root CA"
    assert issuing.subject.rfc4514_string() == "CN=Smart ID Lab Issuing CA"
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    assert issuing.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    issuing.verify_directly_issued_by(root)


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_certificate_names_its_component_and_loopback(
    pki: LabPKI, component: str
) -> None:
    leaf, issuer = _chain(pki.server(component).cert)
    assert issuer == _chain(pki.issuing_cert)[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == component
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=825)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_component_server_is_verified_with_only_the_ca_bundle(
    pki: LabPKI, component: str, host: str
) -> None:
    with tls_server(_server_context(pki.server(component))) as (port, served):
        assert _exchange(port, _client_context(pki), server_hostname=host) == b"ping"
    assert served.errors == []


def test_unknown_component_is_refused(pki: LabPKI) -> None:
    with pytest.raises(ValueError, match="unknown lab component 'ldap'"):
        pki.server("ldap")


def test_officer_keystore_opens_with_its_password_and_holds_the_chain(pki: LabPKI) -> None:
    key, cert, cas = pkcs12.load_key_and_certificates(
        pki.officer.p12.read_bytes(), PASSWORD.encode()
    )
    assert key is not None
    assert cert is not None
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=IDM Officer"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cas == _chain(pki.ca_bundle)[::-1]


def test_officer_keystore_refuses_a_wrong_password(pki: LabPKI) -> None:
    with pytest.raises(ValueError, match="Invalid password"):
        pkcs12.load_key_and_certificates(pki.officer.p12.read_bytes(), b"wrong-password")


@pytest.mark.parametrize(
    ("legacy", "oid"), [(False, AES256_CBC_OID), (True, SHA1_3DES_OID)], ids=["aes", "legacy"]
)
def test_keystore_opens_with_the_encryption_asked_for(
    pki: LabPKI, legacy: bool, oid: bytes
) -> None:
    data = pki.pkcs12(pki.server("hermod"), "keystore-pass", legacy=legacy)
    assert oid in data
    key, cert, cas = pkcs12.load_key_and_certificates(data, b"keystore-pass")
    assert key is not None
    assert cert == _chain(pki.server("hermod").cert)[0]
    assert len(cas) == 2


def test_cm_style_server_accepts_the_officer_certificate(pki: LabPKI) -> None:
    context = _server_context(pki.server("cm"), client_ca=pki.ca_bundle)
    officer = ServerCredentials(pki.officer.cert, pki.officer.key)
    with tls_server(context) as (port, served):
        assert _exchange(port, _client_context(pki, officer)) == b"ping"
    assert served.peer is not None
    assert served.peer["subject"] == ((("commonName", "IDM Officer"),),)


def test_cm_style_server_refuses_a_foreign_client_certificate(pki: LabPKI) -> None:
    foreign = pki.issue_client("foreign-officer", common_name="IDM Officer", issuer="foreign")
    context = _server_context(pki.server("cm"), client_ca=pki.ca_bundle)
    with tls_server(context) as (port, served):
        assert _refused(port, _client_context(pki, foreign))
    assert served.peer is None
    assert served.errors


def test_client_refuses_an_expired_server_certificate(pki: LabPKI) -> None:
    expired = pki.issue_server("expired", not_after=datetime.now(UTC) - timedelta(days=1))
    assert _verification_error(pki, expired).verify_message == "certificate has expired"


def test_client_refuses_a_server_certificate_for_another_host(pki: LabPKI) -> None:
    wrong = pki.issue_server("wrong-host", common_name="other.example", hosts=("other.example",))
    assert "Hostname mismatch" in _verification_error(pki, wrong).verify_message


def test_client_refuses_a_server_certificate_from_the_foreign_root(pki: LabPKI) -> None:
    untrusted = pki.issue_server("untrusted", issuer="foreign")
    error = _verification_error(pki, untrusted)
    assert "self-signed certificate in certificate chain" in error.verify_message
    assert _chain(untrusted.cert)[1] not in _chain(pki.ca_bundle)


def test_rsa_bits_gives_an_rsa_key_of_that_size(pki: LabPKI) -> None:
    weak = pki.issue_server("weak-key", rsa_bits=1024)
    public_key = _chain(weak.cert)[0].public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == 1024
    assert stat.S_IMODE(weak.key.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["root-ca", "issuing-ca", "officer", "ca-bundle", "../escape"])
def test_extra_certificate_cannot_replace_lab_files(pki: LabPKI, name: str) -> None:
    with pytest.raises(ValueError, match="cannot name an extra certificate"):
        pki.issue_server(name)


def test_extra_certificate_before_ensure_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"call LabPKI\.ensure\(\) first"):
        LabPKI(tmp_path / "pki").issue_server("early")


def test_the_lab_signer_is_an_rsa_signing_certificate_of_the_issuing_ca(pki: LabPKI) -> None:
    leaf, issuer = x509.load_pem_x509_certificates(pki.config_signer.cert.read_bytes())
    assert issuer.subject == x509.load_pem_x509_certificate(pki.issuing_cert.read_bytes()).subject
    leaf.verify_directly_issued_by(issuer)
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_encipherment
    purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(purposes) == [ExtendedKeyUsageOID.CODE_SIGNING]


def test_a_lab_from_before_the_signer_gets_only_the_signer(tmp_path: Path) -> None:
    pki = LabPKI(tmp_path / "pki")
    pki.ensure("officer-secret-1")
    pki.config_signer.cert.unlink()
    pki.config_signer.key.unlink()
    before = {p.name: p.read_bytes() for p in pki.folder.iterdir()}
    pki.ensure("officer-secret-1")
    after = {p.name: p.read_bytes() for p in pki.folder.iterdir()}
    assert set(after) - set(before) == {"config-signer.pem", "config-signer.key"}
    assert {name: after[name] for name in before} == before


def _first_pem(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _cdp(cert: x509.Certificate) -> list[str]:
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return [name.value for point in points for name in point.full_name or ()]


def test_a_state_made_for_other_revocation_urls_is_upgraded_keeping_the_keys(
    tmp_path: Path,
) -> None:
    old_base, new_base = "http://127.0.0.1:1111/cm/pki", "http://127.0.0.1:2222/cm/pki"
    folder = tmp_path / "pki"
    LabPKI(folder, old_base).ensure("officer-password")
    old = LabPKI(folder, old_base)
    old_issuing, old_server = _first_pem(old.issuing_cert), _first_pem(old.server("idm").cert)
    old_issuing_key = old.issuing_key.read_bytes()
    assert _cdp(old_server) == [f"{old_base}/issuing-ca.crl"]

    new = LabPKI(folder, new_base)
    new.ensure("officer-password")
    issuing, server = _first_pem(new.issuing_cert), _first_pem(new.server("idm").cert)
    assert (folder / "revocation-base.txt").read_text() == new_base
    # The issuing CA is certified again with its own key: what it signed before stays valid.
    assert new.issuing_key.read_bytes() == old_issuing_key
    assert issuing.serial_number != old_issuing.serial_number
    assert _cdp(issuing) == [f"{new_base}/root-ca.crl"]
    old_server.verify_directly_issued_by(issuing)
    # The servers' certificates name the new URLs; the bundle holds the new issuing CA.
    assert _cdp(server) == [f"{new_base}/issuing-ca.crl"]
    assert issuing in x509.load_pem_x509_certificates(new.ca_bundle.read_bytes())
    assert old_issuing not in x509.load_pem_x509_certificates(new.ca_bundle.read_bytes())
    # Once upgraded, nothing changes on the next start.
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    LabPKI(folder, new_base).ensure("officer-password")
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
