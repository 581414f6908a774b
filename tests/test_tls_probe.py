"""The TLS probe observes real handshakes against servers on 127.0.0.1: it reports what a server
presented and negotiated, why a verifying handshake failed (in OpenSSL's words, which the judge
tests rely on), which legacy versions a server accepts, whether it demands a client certificate,
and it never hangs."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smartid.errors import PackageError
from smartid.site import TlsPolicy
from smartid.tls import HandshakeFacts, ProbeTarget, judge_handshake, observe, observe_many, probe
from tests.certs import REASONS, Cert, Pki, make_leaf, sha1_leaf, write_chain
from tests.hostile import handshake_drip
from tests.servers import closed_port, https_server, silent_listener
from tests.tlsservers import tls_server

TLS10_AND_UP = ("TLSv1", "TLSv1.3")


@dataclass(frozen=True)
class Lab:
    folder: Path
    pki: Pki
    bundle: Path
    good: tuple[Path, Path]
    client_ca: Path
    client: tuple[Path, Path]
    foreign_client: tuple[Path, Path]

    def target(
        self,
        port: int,
        name: str = "server",
        *,
        ca_bundle: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 5.0,
    ) -> ProbeTarget:
        return ProbeTarget(
            name=name,
            host="127.0.0.1",
            port=port,
            server_name="localhost",
            ca_bundle=ca_bundle or self.bundle,
            client_cert=client_cert,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    folder = tmp_path_factory.mktemp("tls")
    pki = Pki()
    bundle = folder / "bundle.pem"
    bundle.write_bytes(pki.root.pem)
    clients = Pki("Clients")
    client_ca = folder / "client-ca.pem"
    client_ca.write_bytes(clients.root.pem)
    officer = make_leaf(clients.root, "officer", hosts=(), client=True)
    intruder = make_leaf(Pki("Intruders").root, "intruder", hosts=(), client=True)
    return Lab(
        folder=folder,
        pki=pki,
        bundle=bundle,
        good=write_chain(folder, "good", pki.leaf(), pki.issuing),
        client_ca=client_ca,
        client=write_chain(folder, "officer", officer),
        foreign_client=write_chain(folder, "intruder", intruder),
    )


@pytest.fixture(scope="module")
def good_port(lab: Lab) -> Iterator[int]:
    with tls_server(*lab.good) as port:
        yield port


def test_good_server_is_verified_with_protocol_cipher_and_presented_chain(
    lab: Lab, good_port: int
) -> None:
    facts = observe(lab.target(good_port))
    assert facts.ok, facts.error
    assert (facts.error, facts.error_kind) == (None, None)
    assert facts.target == f"127.0.0.1:{good_port}"
    assert facts.server_name == "localhost"
    assert facts.protocol == "TLSv1.3"
    assert facts.cipher
    assert [c.subject for c in facts.chain] == ["CN=localhost", "CN=Test Issuing CA"]
    assert facts.chain[0].dns_names == ("localhost",)
    assert facts.chain[0].ip_addresses == ("127.0.0.1",)
    assert facts.chain[0].issuer == "CN=Test Issuing CA"
    assert facts.client_cert_demanded is None
    assert dict(facts.legacy) == {"TLSv1": False, "TLSv1.1": False}
    assert 0 < facts.duration_ms < 2000
    assert facts.observed_at.tzinfo is not None


def _expired(pki: Pki) -> tuple[Cert, ...]:
    return pki.leaf(days=-1, not_before_days=-30), pki.issuing


def _not_yet_valid(pki: Pki) -> tuple[Cert, ...]:
    return pki.leaf(days=30, not_before_days=2), pki.issuing


def _wrong_host(pki: Pki) -> tuple[Cert, ...]:
    return pki.leaf("other.example", hosts=("other.example",)), pki.issuing


def _self_signed(pki: Pki) -> tuple[Cert, ...]:
    return (make_leaf(None),)


def _foreign_root_sent_along(pki: Pki) -> tuple[Cert, ...]:
    foreign = Pki("Foreign")
    return foreign.leaf(), foreign.issuing, foreign.root


def _foreign_chain(pki: Pki) -> tuple[Cert, ...]:
    foreign = Pki("Foreign")
    return foreign.leaf(), foreign.issuing


def _leaf_without_intermediate(pki: Pki) -> tuple[Cert, ...]:
    return (pki.leaf(),)


def _rsa_1024(pki: Pki) -> tuple[Cert, ...]:
    return pki.leaf(rsa_bits=1024), pki.issuing


@pytest.mark.parametrize(
    ("make_chain", "reason", "key", "leaf_subject"),
    [
        pytest.param(_expired, "expired", "expired", "CN=localhost", id="expired"),
        pytest.param(_not_yet_valid, "not-yet-valid", "not-yet-valid", "CN=localhost", id="early"),
        pytest.param(_wrong_host, "hostname", "hostname", "CN=other.example", id="wrong host"),
        pytest.param(_self_signed, "self-signed", "self-signed", "CN=localhost", id="self-signed"),
        pytest.param(
            _foreign_root_sent_along, "untrusted", "untrusted", "CN=localhost", id="foreign root"
        ),
        pytest.param(
            _foreign_chain, "unknown-issuer", "untrusted", "CN=localhost", id="foreign CA"
        ),
        pytest.param(
            _leaf_without_intermediate,
            "unknown-issuer",
            "incomplete-chain",
            "CN=localhost",
            id="incomplete chain",
        ),
        pytest.param(_rsa_1024, "weak-key", "key-size", "CN=localhost", id="RSA-1024"),
    ],
)
def test_failed_verification_gives_openssl_reason_and_still_describes_the_chain(
    lab: Lab,
    make_chain: Callable[[Pki], tuple[Cert, ...]],
    reason: str,
    key: str,
    leaf_subject: str,
) -> None:
    chain = make_chain(lab.pki)
    files = write_chain(lab.folder, f"bad-{key}", *chain)
    with tls_server(*files, weak=True) as port:
        facts = observe(lab.target(port), legacy=False)
    assert not facts.ok
    assert facts.error == REASONS[reason]
    assert facts.error_kind == "tls"
    assert [c.sha256_fingerprint for c in facts.chain] == [_fingerprint(c) for c in chain]
    assert facts.chain[0].subject == leaf_subject
    assert [f.key for f in judge_handshake(facts, TlsPolicy())] == [key]


def test_sha1_signed_certificate_fails_verification_and_is_described(lab: Lab) -> None:
    der, key = sha1_leaf(lab.folder, lab.pki.issuing)
    cert = lab.folder / "sha1-chain.pem"
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    cert.write_bytes(pem + lab.pki.issuing.pem)
    with tls_server(cert, key, weak=True) as port:
        facts = observe(lab.target(port), legacy=False)
    assert facts.error == REASONS["sha1"]
    assert facts.chain[0].signature_hash == "sha1"
    assert [f.key for f in judge_handshake(facts, TlsPolicy())] == ["signature:sha1"]


def test_certificate_without_san_passes_openssl_on_its_cn_and_fails_the_judge(lab: Lab) -> None:
    # OpenSSL matches the CN when there is no subjectAltName; RFC 9525 clients do not.
    cn_only = write_chain(lab.folder, "cn-only", lab.pki.leaf(hosts=()), lab.pki.issuing)
    with tls_server(*cn_only) as port:
        facts = observe(lab.target(port), legacy=False)
    assert facts.ok, facts.error
    assert facts.chain[0].has_subject_alt_name is False
    [finding] = judge_handshake(facts, TlsPolicy())
    assert finding.key == "hostname"
    assert "has no subjectAltName; 'CN=localhost' names the host only in the CN" in (
        finding.observed
    )


# TLS 1.2 cipher families (TLS-007): one TLS 1.2 handshake offers every family not yet settled;
# a refusal settles them all, an agreed suite settles the families it belongs to

CBC_FS = "ECDHE+SHA1:ECDHE+SHA256:ECDHE+SHA384:!eNULL"
FAMILIES = ("kRSA", "NULL", "aNULL", "RC4", "EXPORT", CBC_FS)


@pytest.fixture(scope="module")
def rsa_chain(lab: Lab) -> tuple[Path, Path]:
    return write_chain(lab.folder, "rsa", lab.pki.leaf(rsa_bits=2048), lab.pki.issuing)


@pytest.mark.parametrize(
    ("server_ciphers", "rsa", "accepted", "suite"),
    [
        pytest.param("ECDHE+AESGCM:kRSA+AESGCM", True, "kRSA", "AES256-GCM-SHA384", id="kRSA"),
        pytest.param(
            "ECDHE+AESGCM:eNULL:!aNULL:@SECLEVEL=0",
            False,
            "NULL",
            "ECDHE-ECDSA-NULL-SHA",
            id="NULL",
        ),
        pytest.param("ECDHE+AESGCM:aNULL:!eNULL:@SECLEVEL=0", False, "aNULL", None, id="anonymous"),
        pytest.param("ECDHE+AESGCM:ECDHE+SHA1", False, CBC_FS, "ECDHE-ECDSA-AES256-SHA", id="CBC"),
        pytest.param("ECDHE+AESGCM", False, None, None, id="AEAD only"),
        pytest.param("kRSA+AESGCM:ECDHE+SHA1", True, "kRSA+CBC", None, id="two families"),
    ],
)
@pytest.mark.parametrize("apart", [(), (CBC_FS,)], ids=["together", "CBC apart"])
def test_each_cipher_family_is_seen_accepted_or_refused(
    lab: Lab,
    rsa_chain: tuple[Path, Path],
    server_ciphers: str,
    rsa: bool,
    accepted: str | None,
    suite: str | None,
    apart: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handshakes = _count_handshakes(monkeypatch)
    with tls_server(*(rsa_chain if rsa else lab.good), ciphers=server_ciphers) as port:
        facts = observe(lab.target(port), legacy=False, ciphers=FAMILIES, ciphers_apart=apart)
    assert facts.ok, facts.error
    assert facts.tls12 is True
    probes = {p.family: p for p in facts.ciphers}
    assert list(probes) == list(FAMILIES)
    expected = {"kRSA+CBC": ["kRSA", CBC_FS], None: []}.get(accepted, [accepted])
    assert [f for f, p in probes.items() if p.accepted] == expected
    # The verifying handshake, then one per accepted family and one that every other family's
    # suites are refused in, and beside them one offering every suite (does TLS 1.2 work at
    # all?). A family apart has its own offer, accepted or refused, beside the others' (the
    # same answers).
    together = [family for family in expected if family not in apart]
    assert len(handshakes) == 1 + len(together) + 1 + len(apart) + 1
    if accepted is not None and suite is not None:
        assert probes[accepted].suite == suite
    if accepted == "aNULL":
        assert (probes["aNULL"].suite or "").startswith(("AECDH-", "ADH-"))
    # OpenSSL 3 has no RC4 or EXPORT suite to offer: not probed, never "refused".
    assert (probes["RC4"].offered, probes["EXPORT"].offered) == (False, False)
    assert all(p.offered for f, p in probes.items() if f not in ("RC4", "EXPORT"))


def _count_handshakes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The handshakes observe() makes, whole ("handshake") or ended at the server's first flight
    ("hello"), in the order they end."""
    made: list[str] = []
    for name, kind in (("_handshake", "handshake"), ("_hello", "hello")):
        original = getattr(probe, name)

        def counting(*args: Any, _original: Any = original, _kind: str = kind, **kw: Any) -> Any:
            outcome = _original(*args, **kw)
            made.append(_kind)
            return outcome

        monkeypatch.setattr(probe, name, counting)
    return made


def test_cipher_probes_present_the_client_certificate_to_a_server_that_demands_one(
    lab: Lab, rsa_chain: tuple[Path, Path]
) -> None:
    with tls_server(
        *rsa_chain, client_ca=lab.client_ca, ciphers="ECDHE+AESGCM:kRSA+AESGCM"
    ) as port:
        facts = observe(lab.target(port, client_cert=lab.client), legacy=False, ciphers=("kRSA",))
    assert [(p.family, p.accepted) for p in facts.ciphers] == [("kRSA", True)]


def test_server_speaking_only_tls13_is_not_probed_per_family(lab: Lab) -> None:
    with tls_server(*lab.good, versions=("TLSv1.3", "TLSv1.3")) as port:
        facts = observe(lab.target(port), legacy=False, ciphers=FAMILIES)
    assert facts.ok, facts.error
    assert (facts.tls12, facts.ciphers) == (False, ())


def test_cipher_families_are_not_probed_unless_asked(lab: Lab, good_port: int) -> None:
    facts = observe(lab.target(good_port), legacy=False)
    assert (facts.tls12, facts.ciphers) == (None, ())


def test_server_accepting_tls10_is_seen_to_accept_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    handshakes = _count_handshakes(monkeypatch)
    with tls_server(*lab.good, versions=TLS10_AND_UP, weak=True) as port:
        facts = observe(lab.target(port))
    assert facts.ok
    assert dict(facts.legacy) == {"TLSv1": True, "TLSv1.1": True}
    # The hello offering both was agreed to; then each version alone tells which.
    assert sorted(handshakes) == ["handshake"] + ["hello"] * 3


@pytest.mark.parametrize(
    ("version", "legacy"),
    [
        pytest.param("TLSv1", {"TLSv1": True, "TLSv1.1": False}, id="TLS 1.0 only"),
        pytest.param("TLSv1.1", {"TLSv1": False, "TLSv1.1": True}, id="TLS 1.1 only"),
    ],
)
def test_server_speaking_only_a_legacy_version_fails_verification_but_is_described(
    lab: Lab, version: str, legacy: dict[str, bool]
) -> None:
    with tls_server(*lab.good, versions=(version, version), weak=True) as port:
        facts = observe(lab.target(port))
    assert not facts.ok
    assert facts.error == REASONS["legacy-only"]
    assert facts.protocol is None
    assert dict(facts.legacy) == legacy
    # The observe-only handshake, which offers TLS 1.0 and up, still saw the certificate.
    assert [c.subject for c in facts.chain] == ["CN=localhost", "CN=Test Issuing CA"]


def test_server_demanding_client_cert_is_still_seen_to_accept_tls10(lab: Lab) -> None:
    with tls_server(*lab.good, versions=TLS10_AND_UP, weak=True, client_ca=lab.client_ca) as port:
        facts = observe(lab.target(port, client_cert=lab.client))
    assert facts.ok, facts.error
    assert dict(facts.legacy) == {"TLSv1": True, "TLSv1.1": True}


@contextlib.contextmanager
def _recording_mtls_server(lab: Lab) -> Iterator[tuple[int, list[tuple[str, bool]]]]:
    """Demands a client certificate, accepts TLS 1.0 and up, and records (version, whether a
    client certificate was presented) for every handshake it completes, ("", False) for every
    other connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 on 3.11
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.load_cert_chain(*lab.good)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(lab.client_ca)
    seen: list[tuple[str, bool]] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def serve_one(conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                seen.append((tls.version() or "", tls.getpeercert(binary_form=True) is not None))
                while tls.recv(1024):  # until the client leaves, as a server does
                    pass
        except (OSError, ssl.SSLError):
            seen.append(("", False))
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            worker = threading.Thread(target=serve_one, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        for worker in workers:
            worker.join(timeout=3)


def test_the_probes_end_at_the_servers_first_flight(lab: Lab) -> None:
    """The legacy and cipher probes learn the server's answer from its hello and close: the
    server, which demands a client certificate, completes only the verdict's handshake, and no
    probe sends it a certificate (or makes it wait a round trip for one)."""
    with _recording_mtls_server(lab) as (port, seen):
        facts = observe(lab.target(port, client_cert=lab.client), ciphers=(CBC_FS,))
    assert facts.ok, facts.error
    assert dict(facts.legacy) == {"TLSv1": True, "TLSv1.1": True}
    assert [(p.family, p.accepted) for p in facts.ciphers] == [(CBC_FS, True)]
    # The verdict (TLS 1.3, with the site's certificate); then the legacy hello offering both
    # versions, each version alone, the CBC offer and the offer of every TLS 1.2 suite.
    assert sorted(seen) == [("", False)] * 5 + [("TLSv1.3", True)]


def test_default_server_refuses_both_legacy_versions_in_one_hello(
    lab: Lab, good_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    handshakes = _count_handshakes(monkeypatch)
    facts = observe(lab.target(good_port))
    assert dict(facts.legacy) == {"TLSv1": False, "TLSv1.1": False}
    assert sorted(handshakes) == ["handshake", "hello"]


@pytest.fixture(params=["TLSv1.3", "TLSv1.2"])
def mtls_port(request: pytest.FixtureRequest, lab: Lab) -> Iterator[int]:
    version = request.param
    with tls_server(*lab.good, versions=(version, version), client_ca=lab.client_ca) as port:
        yield port


def test_server_demanding_client_cert_is_seen_to_demand_it(lab: Lab, mtls_port: int) -> None:
    facts = observe(lab.target(mtls_port), legacy=False, client_auth=True)
    assert facts.client_cert_demanded is True
    # Without a certificate the verifying handshake cannot succeed, under TLS 1.3 as under 1.2.
    assert not facts.ok
    assert facts.error in (REASONS["no-client-cert-tls13"], REASONS["no-client-cert-tls12"])
    assert facts.chain[0].subject == "CN=localhost"


def test_server_demanding_client_cert_accepts_the_sites_certificate(
    lab: Lab, mtls_port: int
) -> None:
    facts = observe(lab.target(mtls_port, client_cert=lab.client), legacy=False, client_auth=True)
    assert facts.ok, facts.error
    assert facts.client_cert_demanded is True


def test_server_demanding_client_cert_refuses_a_foreign_certificate(
    lab: Lab, mtls_port: int
) -> None:
    target = lab.target(mtls_port, client_cert=lab.foreign_client)
    facts = observe(target, legacy=False, client_auth=True)
    assert not facts.ok
    assert facts.error == REASONS["foreign-client-cert"]
    assert facts.client_cert_demanded is True


@pytest.mark.parametrize(
    ("version", "tickets"), [("TLSv1.3", None), ("TLSv1.3", 0), ("TLSv1.2", None)]
)
def test_normal_server_is_seen_not_to_demand_a_client_cert_without_waiting(
    lab: Lab, version: str, tickets: int | None
) -> None:
    with tls_server(*lab.good, versions=(version, version), tickets=tickets) as port:
        facts = observe(lab.target(port), legacy=False, client_auth=True)
    assert facts.ok, facts.error
    assert facts.client_cert_demanded is False
    # A server that asked for no client certificate has none to refuse: the handshake is its
    # answer, and the verdict does not wait for its tickets (a server may send none).
    assert facts.duration_ms < probe._SETTLE_SECONDS * 1000 / 2


def test_without_the_message_callback_the_verdict_waits_for_the_servers_word(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where this Python offers no message callback (it is CPython's private
    SSLContext._msg_callback), the verdict cannot tell whether the server asked for a
    certificate, and waits for its word as it did before: a server that sends no ticket
    holds the wait at its longest."""
    monkeypatch.setattr(probe, "_CAN_WATCH", False)
    with tls_server(*lab.good, versions=("TLSv1.3", "TLSv1.3"), tickets=0) as port:
        facts = observe(lab.target(port), legacy=False, client_auth=True)
    assert facts.ok, facts.error
    assert facts.client_cert_demanded is False
    assert facts.duration_ms >= probe._SETTLE_SECONDS * 1000 * 0.8


def test_refused_port_is_a_connect_error(lab: Lab) -> None:
    facts = observe(lab.target(closed_port()))
    assert (facts.ok, facts.error_kind) == (False, "connect")
    assert facts.error == "TCP connection failed: connection refused"
    assert facts.chain == ()
    assert dict(facts.legacy) == {}


def test_connection_reset_before_the_handshake_is_a_connect_error(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A listener that goes away (a server restarting) resets the connections it had not accepted
    # yet: Python sees it while wrapping the socket, before any handshake.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    connect = socket.create_connection

    def connect_then_reset(*args: object, **kwargs: object) -> socket.socket:
        sock = connect(*args, **kwargs)  # type: ignore[arg-type]
        listener.close()
        time.sleep(0.05)
        return sock

    monkeypatch.setattr(socket, "create_connection", connect_then_reset)
    facts = observe(lab.target(listener.getsockname()[1]), legacy=False)
    assert (facts.ok, facts.error_kind) == (False, "connect")
    assert facts.error == "TCP connection failed: the peer reset it before the TLS handshake"


class _ResetAfterCheck(socket.socket):
    """A connected socket whose peer resets it just after the probe has checked it."""

    def __init__(self, connected: socket.socket, listener: socket.socket) -> None:
        super().__init__(fileno=connected.detach())
        self._listener = listener

    def getpeername(self) -> object:
        address = super().getpeername()
        self._listener.close()
        time.sleep(0.05)
        return address


def test_connection_reset_while_wrapping_is_a_connect_error_without_a_leak(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's wrap_socket raises for a reset it meets itself and leaves its socket open; warnings
    # are errors here, so a leaked socket would fail this test.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    connect = socket.create_connection

    def connect_then_reset(*args: object, **kwargs: object) -> socket.socket:
        return _ResetAfterCheck(connect(*args, **kwargs), listener)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", connect_then_reset)
    facts = observe(lab.target(listener.getsockname()[1]), legacy=False)
    assert (facts.ok, facts.error_kind) == (False, "connect")
    assert facts.error == "TCP connection failed: the peer reset it before the TLS handshake"


def test_silent_listener_times_out_within_the_configured_timeout(lab: Lab) -> None:
    with silent_listener() as port:
        started = time.monotonic()
        facts = observe(lab.target(port, connect_timeout=0.5, read_timeout=0.5))
        elapsed = time.monotonic() - started
    assert (facts.ok, facts.error_kind) == (False, "timeout")
    assert facts.error == "no TLS handshake answer within 0.5 s"
    assert 0.4 < elapsed < 1.5


def test_a_probe_ends_within_one_deadline_against_a_server_that_drips(lab: Lab) -> None:
    """A probe's hello has one deadline after its connect, not one per read: a server that sends
    a byte of its handshake record every 0.1 s would otherwise hold it for half an hour."""
    with handshake_drip(0.1) as port:
        target = lab.target(port, connect_timeout=0.5, read_timeout=0.5)
        started = time.monotonic()
        outcome = probe._hello(target, probe._legacy_context("TLSv1", "TLSv1"), "localhost")
        elapsed = time.monotonic() - started
    assert (outcome.ok, outcome.error_kind) == (False, "timeout")
    assert outcome.error == "no TLS handshake answer within 0.5 s"
    assert 0.4 < elapsed < 1.5


def test_a_probe_reads_a_bounded_flight(
    lab: Lab, good_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's first flight is about 1.1 kB; with the bound below it, the probe stops.
    monkeypatch.setattr(probe, "_FLIGHT_LIMIT", 600)
    context = probe._tls12_context(CBC_FS)
    assert context is not None
    outcome = probe._hello(lab.target(good_port), context, "localhost")
    assert (outcome.ok, outcome.error_kind) == (False, "tls")
    assert outcome.error == (
        "TLS handshake failed: the server sent over 600 bytes without finishing its hello"
    )


def test_plain_http_on_the_port_is_a_protocol_error_not_a_hang(lab: Lab) -> None:
    with https_server(*lab.good, tls=False) as port:
        started = time.monotonic()
        facts = observe(lab.target(port, read_timeout=3.0))
        elapsed = time.monotonic() - started
    assert (facts.ok, facts.error_kind) == (False, "protocol")
    assert facts.error is not None
    assert "WRONG_VERSION_NUMBER" in facts.error
    assert "does not speak TLS" in facts.error
    assert elapsed < 2.0


def test_observe_many_returns_facts_for_every_target_by_name(lab: Lab, good_port: int) -> None:
    expired = write_chain(lab.folder, "many-expired", *_expired(lab.pki))
    with tls_server(*expired) as expired_port, silent_listener() as silent_port:
        targets = [
            lab.target(silent_port, "silent", read_timeout=0.5),
            lab.target(good_port, "good"),
            lab.target(expired_port, "expired"),
            lab.target(closed_port(), "refused"),
        ]
        started = time.monotonic()
        facts = observe_many(targets)
        elapsed = time.monotonic() - started
    assert set(facts) == {"silent", "good", "expired", "refused"}
    assert all(isinstance(f, HandshakeFacts) for f in facts.values())
    assert [facts[n].error_kind for n in ("silent", "good", "expired", "refused")] == [
        "timeout",
        None,
        "tls",
        "connect",
    ]
    # In parallel: the whole run takes about as long as its slowest probe.
    assert elapsed < 1.0


def test_observe_many_refuses_two_targets_with_one_name(lab: Lab) -> None:
    target = lab.target(closed_port(), "same")
    with pytest.raises(ValueError, match="unique names"):
        observe_many([target, target])


def test_unusable_ca_bundle_is_a_package_error_naming_the_file(lab: Lab, good_port: int) -> None:
    bundle = lab.folder / "not-a-bundle.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(PackageError, match="not a usable CA bundle") as caught:
        observe(lab.target(good_port, ca_bundle=bundle))
    assert str(bundle) in str(caught.value)


@pytest.mark.parametrize(
    ("url", "server_name", "expected"),
    [
        pytest.param(
            "https://idm.example:8443/idm-admin",
            None,
            ("idm.example", 8443, "idm.example"),
            id="port",
        ),
        pytest.param(
            "https://idm.example", None, ("idm.example", 443, "idm.example"), id="default"
        ),
        pytest.param(
            "https://127.0.0.1:9443", "cm.example", ("127.0.0.1", 9443, "cm.example"), id="SNI"
        ),
        pytest.param("https://[::1]:8443/", None, ("::1", 8443, "::1"), id="IPv6"),
    ],
)
def test_target_from_url_takes_host_port_and_server_name(
    url: str, server_name: str | None, expected: tuple[str, int, str]
) -> None:
    target = ProbeTarget.from_url("x", url, server_name=server_name)
    assert (target.host, target.port, target.server_name) == expected


def test_target_from_url_refuses_a_url_that_is_not_https() -> None:
    with pytest.raises(ValueError, match="not an https:// URL"):
        ProbeTarget.from_url("x", "http://idm.example")


def test_ipv6_target_is_named_with_brackets() -> None:
    assert ProbeTarget.from_url("x", "https://[::1]:8443").address == "[::1]:8443"


def _fingerprint(cert: Cert) -> str:
    return hashlib.sha256(cert.der).hexdigest()


@contextlib.contextmanager
def _silent_listener() -> Iterator[tuple[int, list[list[float]]]]:
    """A port that accepts and never answers, and each connection's [opened, closed] times, all
    complete once the block has ended (each holder notes the end once it sees the client leave)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    spans: list[list[float]] = []
    holders: list[threading.Thread] = []

    def hold(conn: socket.socket) -> None:
        span = [time.monotonic()]
        spans.append(span)
        with conn:
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                while conn.recv(1024):
                    pass
        span.append(time.monotonic())

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                holder = threading.Thread(target=hold, args=(conn,), daemon=True)
                holders.append(holder)
                holder.start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], spans
    finally:
        listener.close()
        for holder in holders:
            holder.join(10)


def test_the_probes_run_beside_the_verdict_and_count_only_where_it_reached_tls(lab: Lab) -> None:
    """Each probe has its own connection, all open at once: across a network an endpoint costs
    its longest probe's round trips, not their sum. A listener that never answers shows it (one
    after the other, each connection would end before the next one opened), and what the probes
    saw there is dropped with the verdict's timeout."""
    with _silent_listener() as (port, spans):
        target = lab.target(port, connect_timeout=1.0, read_timeout=1.0)
        facts = observe(target, legacy=True, client_auth=True, ciphers=("kRSA", "3DES:RC4"))
    assert (facts.ok, facts.error_kind) == (False, "timeout")
    assert (facts.legacy, facts.tls12, facts.ciphers) == ({}, None, ())
    # The verdict, the legacy versions' first offer, the cipher families' and the offer of every
    # TLS 1.2 suite.
    assert len(spans) == 4
    assert all(len(span) == 2 for span in spans)
    assert max(opened for opened, _ in spans) < min(closed for _, closed in spans)


def test_a_family_apart_is_offered_beside_the_others(lab: Lab) -> None:
    """The warned families (TLS-007's `cipher_families_apart`) each have their own offer, open at
    the same time as the forbidden ones': a server that takes a CBC suite then needs no second
    offer, one round trip later, to show that it refuses the forbidden ones."""
    with _silent_listener() as (port, spans):
        target = lab.target(port, connect_timeout=1.0, read_timeout=1.0)
        facts = observe(target, legacy=False, ciphers=("kRSA", CBC_FS), ciphers_apart=(CBC_FS,))
    assert (facts.tls12, facts.ciphers) == (None, ())
    # The verdict, the forbidden families' offer, the CBC family's and the offer of every TLS 1.2
    # suite, all open at once.
    assert len(spans) == 4
    assert all(len(span) == 2 for span in spans)
    assert max(opened for opened, _ in spans) < min(closed for _, closed in spans)


def test_the_chain_is_announced_before_the_wait_for_the_servers_word(lab: Lab) -> None:
    """After a TLS 1.3 handshake the verdict waits for the server's word on the client
    certificate (its session tickets, or its refusal). The chain is announced before that wait:
    the revocation questions start a round trip earlier. A server that sends no ticket keeps the
    wait at its longest, and shows the order."""
    announced: list[float] = []
    with tls_server(*lab.good, tickets=0, client_ca=lab.client_ca) as port:
        facts = observe(
            lab.target(port, client_cert=lab.client),
            legacy=False,
            client_auth=True,
            on_chain=lambda chain: announced.append(time.monotonic()),
        )
        ended = time.monotonic()
    assert facts.ok, facts.error
    assert facts.protocol == "TLSv1.3"
    assert len(announced) == 1
    assert ended - announced[0] >= probe._SETTLE_SECONDS * 0.8
