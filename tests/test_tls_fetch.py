"""smartid.tls.fetch: each chain's CRLs and OCSP answers asked as soon as a handshake has the
chain, each question once across endpoints; `observe(on_chain=...)` hands the chain over early."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from fixtures.checks import wants_revocation
from smartid.lab.faults import FaultSet
from smartid.lab.revocation import PkiServer, RevocationAuthority, revoke
from smartid.lab.state import LabState
from smartid.site import TlsPolicy, load_site
from smartid.tls import ProbeTarget, observe
from smartid.tls import fetch as fetch_module
from smartid.tls.fetch import ChainSource, RevocationFetcher
from smartid.tls.revocation import judge_revocation
from tests.certs import make_ca, make_leaf
from tests.lab import pki_only
from tests.tlsservers import tls_server


@pytest.fixture(scope="module")
def cm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    """A lab PKI whose certificates name a running CM CRL/OCSP listener."""
    state, sock = pki_only(tmp_path_factory.mktemp("fetch") / "lab", "officer-password")
    server = PkiServer(sock, RevocationAuthority(state, FaultSet(state.path)))
    server.start()
    try:
        yield state
    finally:
        server.stop()


def _chain(state: LabState, component: str) -> tuple[bytes, ...]:
    """The component's certificate and its issuer's, as DER (what a handshake presents)."""
    pem = state.pki.server(component).cert.read_bytes()
    return tuple(c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem))


def test_chains_added_from_threads_share_their_ca_questions(
    cm: LabState, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: Counter[tuple[str, bool]] = Counter()
    original = fetch_module._fetch

    def counting(session: object, job: fetch_module._Job) -> object:
        asked[(job.url, job.ocsp_request is None)] += 1
        return original(session, job)  # type: ignore[arg-type]

    monkeypatch.setattr(fetch_module, "_fetch", counting)
    components = ("idm", "hermod", "cm")
    with RevocationFetcher() as fetcher:
        threads = [
            threading.Thread(
                target=fetcher.add,
                args=(c, ChainSource(f"localhost:{n}", _chain(cm, c), cm.pki.ca_bundle)),
            )
            for n, c in enumerate(components)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        facts = fetcher.result()
    assert set(facts) == set(components)
    crls = {url: n for (url, is_crl), n in asked.items() if is_crl}
    # One issuing CA for all three leaves, one root for the issuing CA: two CRLs, once each.
    assert sorted(crls) == sorted(
        f"{cm.revocation_base}/{name}.crl" for name in ("issuing-ca", "root-ca")
    )
    assert set(crls.values()) == {1}
    # OCSP: one question per distinct certificate (three leaves and the issuing CA).
    assert sum(n for (_, is_crl), n in asked.items() if not is_crl) == 4
    for component in components:
        assert judge_revocation(facts[component], TlsPolicy()) == [], component


def test_a_chain_that_cannot_be_read_fails_the_result_in_the_callers_thread(cm: LabState) -> None:
    with RevocationFetcher() as fetcher:
        worker = threading.Thread(
            target=fetcher.add, args=("bad", ChainSource("localhost:1", (b"not DER",), None))
        )
        worker.start()
        worker.join()
        with pytest.raises(ValueError, match="asn1"):
            fetcher.result()


def test_observe_hands_over_the_presented_chain_before_it_returns(
    cm: LabState, tmp_path: Path
) -> None:
    creds = cm.pki.server("hermod")
    seen: list[tuple[bytes, ...]] = []
    with tls_server(creds.cert, creds.key) as port:
        target = ProbeTarget("hermod", "127.0.0.1", port, "localhost", cm.pki.ca_bundle)
        facts = observe(target, legacy=True, on_chain=seen.append)
    assert facts.ok, facts.error
    assert seen == [tuple(c.der for c in facts.chain)]
    assert len(seen[0]) >= 1
    # Nothing listening: no chain, no call.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    missed: list[tuple[bytes, ...]] = []
    target = ProbeTarget("gone", "127.0.0.1", closed, "localhost", cm.pki.ca_bundle)
    assert not observe(target, on_chain=missed.append).ok
    assert missed == []


class _Item:
    def __init__(self, *fixtures: str) -> None:
        self.fixturenames = list(fixtures)


@pytest.mark.parametrize(
    ("revocation", "selected", "fetched"),
    [
        ("prefer", (("tls_observations",), ("revocation_observations", "tls_observations")), True),
        ("require", (("revocation_observations",),), True),
        ("prefer", (("tls_observations",), ("site",)), False),  # -k TLS-001: no TLS-009 case
        ("off", (("revocation_observations",),), False),
    ],
)
def test_a_run_fetches_revocation_only_when_a_selected_check_reads_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    revocation: str,
    selected: tuple[tuple[str, ...], ...],
    fetched: bool,
) -> None:
    monkeypatch.setenv("SMARTID_TEST_UNUSED", "not a real password")
    site_file = tmp_path / "site.toml"
    site_file.write_text(
        'target = "remote"\n[idm]\nadmin_url = "https://idm.test:8443/idm-admin"\n'
        'operator_url = "https://idm.test:8443/idm-operator"\n'
        'admin_password = { env = "SMARTID_TEST_UNUSED" }\n'
        f'[tls]\nrevocation = "{revocation}"\n'
    )
    site = load_site(site_file)
    items = [_Item(*fixtures) for fixtures in selected]
    assert wants_revocation(site, items) is fetched  # type: ignore[arg-type]


def test_the_lab_cm_reuses_a_signed_answer_until_what_it_says_changes(tmp_path: Path) -> None:
    state, sock = pki_only(tmp_path / "lab", "officer-password")
    sock.close()
    authority = RevocationAuthority(state, FaultSet(state.path))
    chain = _chain(state, "idm")
    (leaf, *_) = fetch_module._plan(ChainSource("localhost:1", chain, state.pki.ca_bundle))
    asked = leaf.ocsp[0].ocsp_request
    assert asked is not None
    crl, answer = authority.crl("issuing"), authority.ocsp(asked)
    # Asked again with nothing changed: the same signed bytes (as a CA's scheduled CRL is).
    assert (authority.crl("issuing"), authority.ocsp(asked)) == (crl, answer)
    assert ocsp.load_der_ocsp_response(answer).certificate_status == ocsp.OCSPCertStatus.GOOD

    serial = x509.load_der_x509_certificate(chain[0]).serial_number
    revoke(state, serial)
    revoked = ocsp.load_der_ocsp_response(authority.ocsp(asked))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    listed = x509.load_der_x509_crl(authority.crl("issuing"))
    assert listed.get_revoked_certificate_by_serial_number(serial) is not None

    FaultSet(state.path).switch("cm-crl-stale", True)
    stale = x509.load_der_x509_crl(authority.crl("issuing"))
    assert stale.next_update_utc is not None
    assert stale.next_update_utc < datetime.now(UTC)


def test_each_answers_signature_is_checked_once_as_it_arrives(
    cm: LabState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smartid.tls import revocation

    checked: list[tuple[str, str]] = []
    for name in ("_crl_signature_valid", "_ocsp_signature_valid"):
        original = getattr(revocation, name)

        def counting(*args: object, _name: str = name, _original: object = original) -> bool:
            checked.append((_name, threading.current_thread().name))
            return _original(*args)  # type: ignore[operator, no-any-return]

        monkeypatch.setattr(revocation, name, counting)
    revocation.forget_signature_checks()
    with RevocationFetcher() as fetcher:
        for n, component in enumerate(("idm", "hermod")):
            source = ChainSource(f"localhost:{n}", _chain(cm, component), cm.pki.ca_bundle)
            fetcher.add(component, source)
        facts = fetcher.result()
    early = list(checked)
    for component in ("idm", "hermod"):
        assert judge_revocation(facts[component], TlsPolicy()) == [], component
    # Two CRLs (issuing CA, root) and three OCSP answers (two leaves, the issuing CA), each
    # checked in a fetch thread as it arrived; the judge found every check already made.
    assert (
        sorted(n for n, _ in early) == ["_crl_signature_valid"] * 2 + ["_ocsp_signature_valid"] * 3
    )
    assert all(thread.startswith("revocation") for _, thread in early)
    assert checked == early


def _until_opened(ahead: list[str], count: int) -> None:
    """Wait (5 s at most) until `count` connections were opened ahead: the fetcher opens them
    from its own threads."""
    deadline = time.monotonic() + 5
    while len(ahead) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def _recorded_not_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the fetcher opens connections ahead to, each taken as opened and none made."""
    ahead: list[str] = []
    monkeypatch.setattr(
        fetch_module.PublicClient, "open_ahead", lambda _, url, **__: ahead.append(url) or True
    )
    return ahead


@pytest.mark.parametrize(("far", "opened"), [(0.0, 6), (float("inf"), 1)])
def test_connections_are_opened_ahead_to_the_host_the_bundles_cas_name(
    cm: LabState, monkeypatch: pytest.MonkeyPatch, far: float, opened: int
) -> None:
    # Three endpoints: a leaf's OCSP answer each, their issuer's CRL, and the issuing CA's own
    # CRL and OCSP answer: six questions, so six connections where a connect shows a network
    # (`_FAR` 0), one where it does not.
    ahead: list[str] = []
    original = fetch_module.PublicClient.open_ahead

    def recording(self: fetch_module.PublicClient, url: str, *, timeout: float) -> bool:
        assert timeout <= 1.0  # sooner than a question's connect
        ahead.append(url)
        return original(self, url, timeout=timeout)

    monkeypatch.setattr(fetch_module.PublicClient, "open_ahead", recording)
    monkeypatch.setattr(fetch_module, "_FAR", far)
    components = ("idm", "hermod", "cm")
    with RevocationFetcher() as fetcher:
        fetcher.open_ahead([cm.pki.ca_bundle, None, cm.pki.ca_bundle], len(components))
        _until_opened(ahead, opened)
        for n, component in enumerate(components):
            source = ChainSource(f"localhost:{n}", _chain(cm, component), cm.pki.ca_bundle)
            fetcher.add(component, source)
        facts = fetcher.result()
    assert len(ahead) == opened
    assert {url.split("/cm/")[0] for url in ahead} == {cm.revocation_base.split("/cm/")[0]}
    for component in components:
        assert judge_revocation(facts[component], TlsPolicy()) == [], component


def test_nothing_is_opened_ahead_for_a_bundle_of_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead = _recorded_not_opened(monkeypatch)
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(make_ca("Only Root CA").pem)
    with RevocationFetcher() as fetcher:
        fetcher.open_ahead([bundle, tmp_path / "missing.pem", None], 4)
    assert ahead == []


def test_no_host_of_a_bundle_of_many_cas_is_contacted_ahead(
    cm: LabState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A system store's intermediates name CAs a run may never ask: only a deployment's own
    # bundle (a root and an issuing CA or two) is read for hosts to open connections to.
    ahead = _recorded_not_opened(monkeypatch)
    monkeypatch.setattr(fetch_module, "_FAR", 0.0)
    lab_bundle = cm.pki.ca_bundle.read_bytes()
    issuing = [c for c in x509.load_pem_x509_certificates(lab_bundle) if c.issuer != c.subject]
    store = tmp_path / "store.pem"
    store.write_bytes(lab_bundle + issuing[0].public_bytes(Encoding.PEM) * 4)
    with RevocationFetcher() as fetcher:
        fetcher.open_ahead([store], 4)
    assert ahead == []
    with RevocationFetcher() as fetcher:
        fetcher.open_ahead([cm.pki.ca_bundle], 4)
        _until_opened(ahead, 7)
    assert len(ahead) == 7


@pytest.mark.parametrize("key_ids", [True, False], ids=["by-key-identifier", "by-signature"])
def test_a_certificates_issuer_is_the_ca_whose_key_issued_it_not_another_of_its_name(
    tmp_path: Path, key_ids: bool
) -> None:
    # Two CAs of one name (a CA renewed with a new key): the leaf's CRL and OCSP answers are
    # judged against the key that issued it, wherever that CA stands in the bundle.
    old, new = make_ca("Twin CA", key_id=key_ids), make_ca("Twin CA", key_id=key_ids)
    leaf = make_leaf(new, authority_key_id=key_ids)
    bundle = tmp_path / "twins.pem"
    bundle.write_bytes(old.pem + new.pem)
    (planned,) = fetch_module._plan(ChainSource("localhost:1", (leaf.der,), bundle))
    assert planned.issuer_der == new.der
