"""The TLS judge turns handshake facts and the site's TLS policy into findings, without a network:
each problem under a stable key, with what was observed and what the policy requires, all at once.

Facts are built from certificates made here; the failure reasons are the exact words OpenSSL gives
in real handshakes (test_tls_probe proves each of them against a live server)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smartid.site import TlsPolicy
from smartid.tls import (
    CertificateFacts,
    CipherProbe,
    Finding,
    HandshakeFacts,
    cipher_notes,
    judge_all,
    judge_ciphers,
    judge_client_auth,
    judge_expiry,
    judge_handshake,
    judge_keys,
    judge_protocol,
    judge_signatures,
)
from smartid.tls.facts import ErrorKind
from tests.certs import REASONS, Cert, Pki, make_ca, make_leaf, sha1_leaf, sha1_self_signed

POLICY = TlsPolicy()
TARGET = "idm.example:8443"
PKI = Pki()
FOREIGN = Pki("Foreign")


def _facts(
    *chain: Cert | CertificateFacts,
    error: str | None = None,
    kind: ErrorKind | None = None,
    protocol: str | None = "TLSv1.3",
    legacy: dict[str, bool] | None = None,
    demanded: bool | None = None,
    observed_at: datetime | None = None,
) -> HandshakeFacts:
    certs = tuple(
        c if isinstance(c, CertificateFacts) else CertificateFacts.from_der(c.der) for c in chain
    )
    if error is not None and kind is None:
        kind = "tls"
    return HandshakeFacts(
        target=TARGET,
        server_name="localhost",
        observed_at=observed_at or datetime.now(UTC),
        ok=error is None,
        error=error,
        error_kind=kind,
        protocol=protocol if error is None else None,
        cipher="TLS_AES_256_GCM_SHA384" if error is None else None,
        chain=certs,
        client_cert_demanded=demanded,
        legacy={"TLSv1": False, "TLSv1.1": False} if legacy is None else legacy,
        duration_ms=3.0,
    )


def _keys(findings: Sequence[Finding]) -> list[str]:
    return [f.key for f in findings]


@pytest.fixture(scope="module")
def sha1_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateFacts, ...]:
    der, _ = sha1_leaf(tmp_path_factory.mktemp("sha1"), PKI.issuing)
    return CertificateFacts.from_der(der), CertificateFacts.from_der(PKI.issuing.der)


# Certificate facts


def test_certificate_facts_describe_a_server_certificate() -> None:
    leaf = PKI.leaf()
    facts = CertificateFacts.from_der(leaf.der)
    assert facts.subject == "CN=localhost"
    assert facts.issuer == "CN=Test Issuing CA"
    assert facts.serial == format(leaf.cert.serial_number, "x")
    assert facts.not_after == leaf.cert.not_valid_after_utc
    assert facts.not_before == leaf.cert.not_valid_before_utc
    assert facts.dns_names == ("localhost",)
    assert facts.ip_addresses == ("127.0.0.1",)
    assert (facts.key_type, facts.key_bits) == ("EC", 256)
    assert facts.signature_hash == "sha256"
    assert facts.self_signed is False
    assert facts.sha256_fingerprint == hashlib.sha256(leaf.der).hexdigest()


@pytest.mark.parametrize(
    ("cert", "self_signed"),
    [
        pytest.param(PKI.root, True, id="root"),
        pytest.param(PKI.issuing, False, id="intermediate"),
        pytest.param(make_leaf(None), True, id="self-signed leaf"),
        pytest.param(PKI.leaf(), False, id="issued leaf"),
    ],
)
def test_certificate_facts_tell_self_signed_certificates(cert: Cert, self_signed: bool) -> None:
    assert CertificateFacts.from_der(cert.der).self_signed is self_signed


def test_certificate_facts_give_rsa_key_size() -> None:
    facts = CertificateFacts.from_der(PKI.leaf(rsa_bits=1024).der)
    assert (facts.key_type, facts.key_bits) == ("RSA", 1024)


def test_certificate_facts_read_a_real_sha1_signature(
    sha1_chain: tuple[CertificateFacts, ...],
) -> None:
    assert sha1_chain[0].signature_hash == "sha1"
    assert sha1_chain[0].self_signed is False


def test_certificate_facts_know_a_sha1_root_is_self_signed(tmp_path: Path) -> None:
    # cryptography no longer verifies SHA-1 signatures; the key identifiers still tell.
    facts = CertificateFacts.from_der(sha1_self_signed(tmp_path))
    assert (facts.signature_hash, facts.self_signed) == ("sha1", True)


def test_handshake_facts_refuse_an_ok_with_an_error() -> None:
    with pytest.raises(ValueError, match="disagree"):
        dataclasses.replace(_facts(PKI.leaf()), error="TLS handshake failed: x")


# A healthy endpoint


def test_healthy_endpoint_has_no_findings() -> None:
    assert judge_all(_facts(PKI.leaf(), PKI.issuing), POLICY, client_auth_required=False) == []


def test_finding_reads_as_one_sentence_with_target_observed_and_required() -> None:
    finding = Finding("protocol", "critical", "negotiated TLSv1.2", "TLSv1.3 or newer", TARGET)
    assert str(finding) == "idm.example:8443: negotiated TLSv1.2 (required: TLSv1.3 or newer)"


# Handshake failures, described from the chain the server presented


@pytest.mark.parametrize(
    ("chain", "reason", "key", "described"),
    [
        pytest.param(
            (PKI.leaf(days=-1, not_before_days=-30), PKI.issuing),
            "expired",
            "expired",
            "'CN=localhost' expired on",
            id="expired",
        ),
        pytest.param(
            (PKI.leaf(days=30, not_before_days=2), PKI.issuing),
            "not-yet-valid",
            "not-yet-valid",
            "'CN=localhost' is valid only from",
            id="not yet valid",
        ),
        pytest.param(
            (PKI.leaf("other.example", hosts=("other.example",)), PKI.issuing),
            "hostname",
            "hostname",
            "'CN=other.example' is valid for other.example",
            id="wrong host",
        ),
        pytest.param(
            (make_leaf(None),),
            "self-signed",
            "self-signed",
            "'CN=localhost' is signed by itself",
            id="self-signed",
        ),
        pytest.param(
            (FOREIGN.leaf(), FOREIGN.issuing, FOREIGN.root),
            "untrusted",
            "untrusted",
            "ends at the root 'CN=Foreign Root CA'",
            id="untrusted root sent along",
        ),
        pytest.param(
            (FOREIGN.leaf(), FOREIGN.issuing),
            "unknown-issuer",
            "untrusted",
            "ends at 'CN=Foreign Issuing CA', issued by 'CN=Foreign Root CA'",
            id="untrusted CA",
        ),
        pytest.param(
            (PKI.leaf(),),
            "unknown-issuer",
            "incomplete-chain",
            "its issuer 'CN=Test Issuing CA' is neither presented nor in the CA bundle",
            id="incomplete chain",
        ),
        pytest.param(
            (PKI.leaf(rsa_bits=1024), PKI.issuing),
            "weak-key",
            "key-size",
            "'CN=localhost' has a 1024-bit RSA key",
            id="RSA-1024",
        ),
    ],
)
def test_failed_verification_is_one_blocker_keyed_by_reason_and_describing_the_certificate(
    chain: tuple[Cert, ...], reason: str, key: str, described: str
) -> None:
    facts = _facts(*chain, error=REASONS[reason])
    [finding] = judge_handshake(facts, POLICY)
    assert (finding.key, finding.severity, finding.target) == (key, "blocker", TARGET)
    assert finding.observed.startswith(REASONS[reason].rstrip("."))
    assert described in finding.observed


# Host names: the subjectAltName only (RFC 9525), whatever OpenSSL let through


def _named(server_name: str, *chain: Cert) -> HandshakeFacts:
    return dataclasses.replace(_facts(*chain), server_name=server_name)


def test_certificate_without_san_fails_though_openssl_matched_its_cn() -> None:
    # OpenSSL (Python's ssl) falls back to the CN when there is no subjectAltName: ok=True.
    facts = _named("localhost", PKI.leaf("localhost", hosts=()), PKI.issuing)
    [finding] = judge_handshake(facts, POLICY)
    assert (finding.key, finding.severity) == ("hostname", "blocker")
    assert finding.observed == (
        "'CN=localhost' has no subjectAltName; 'CN=localhost' names the host only in the CN, "
        "which clients ignore (RFC 9525)"
    )
    assert finding.required == "a certificate whose subjectAltName names 'localhost'"


def test_certificate_facts_tell_a_missing_san_and_the_cn() -> None:
    facts = CertificateFacts.from_der(PKI.leaf("host.example", hosts=()).der)
    assert (facts.has_subject_alt_name, facts.common_names) == (False, ("host.example",))
    assert CertificateFacts.from_der(PKI.leaf().der).has_subject_alt_name is True


@pytest.mark.parametrize(
    ("server_name", "hosts", "named"),
    [
        pytest.param("localhost", ("localhost",), True, id="dns name"),
        pytest.param("LocalHost.", ("localhost",), True, id="case and trailing dot"),
        pytest.param("127.0.0.1", ("127.0.0.1",), True, id="ip in iPAddress"),
        pytest.param("127.0.0.1", ("localhost",), False, id="ip against dns names only"),
        pytest.param("localhost", ("127.0.0.1",), False, id="dns name against an iPAddress only"),
        pytest.param("::1", ("0:0:0:0:0:0:0:1",), True, id="ipv6 in another spelling"),
        pytest.param("a.example.com", ("*.example.com",), True, id="wildcard over one label"),
        pytest.param("a.b.example.com", ("*.example.com",), False, id="wildcard over two labels"),
        pytest.param("example.com", ("*.example.com",), False, id="wildcard over none"),
        pytest.param("foo.example.com", ("f*.example.com",), False, id="partial wildcard"),
        pytest.param("example", ("*",), False, id="bare wildcard"),
    ],
)
def test_host_names_are_matched_against_the_san_only(
    server_name: str, hosts: tuple[str, ...], named: bool
) -> None:
    # The CN names the server every time: it must never count.
    facts = _named(server_name, PKI.leaf(server_name, hosts=hosts), PKI.issuing)
    findings = judge_handshake(facts, POLICY)
    assert findings == [] if named else _keys(findings) == ["hostname"]
    if not named:
        assert f"not '{server_name}' in its subjectAltName" in findings[0].observed


def test_san_without_host_entries_is_told_as_such() -> None:
    facts = _named("localhost", PKI.leaf(hosts=()))
    cert = dataclasses.replace(facts.chain[0], has_subject_alt_name=True)
    [finding] = judge_handshake(dataclasses.replace(facts, chain=(cert,)), POLICY)
    assert "has a subjectAltName without dNSName or iPAddress entries" in finding.observed


def test_failed_hostname_check_of_a_san_less_certificate_says_it_has_no_san() -> None:
    facts = _facts(PKI.leaf("other.example", hosts=()), PKI.issuing, error=REASONS["hostname"])
    [finding] = judge_handshake(facts, POLICY)
    assert finding.key == "hostname"
    assert "has no subjectAltName; 'CN=other.example' names the host only in the CN" in (
        finding.observed
    )


def test_sha1_signature_that_fails_verification_is_keyed_by_the_hash(
    sha1_chain: tuple[CertificateFacts, ...],
) -> None:
    facts = _facts(*sha1_chain, error=REASONS["sha1"])
    assert _keys(judge_all(facts, POLICY)) == ["signature:sha1"]


@pytest.mark.parametrize(
    ("kind", "error", "key"),
    [
        pytest.param(
            "connect", "TCP connection failed: connection refused", "connect", id="refused"
        ),
        pytest.param("timeout", "no TLS handshake answer within 0.5 s", "timeout", id="timeout"),
        pytest.param(
            "protocol",
            "TLS handshake failed: WRONG_VERSION_NUMBER (the peer does not speak TLS)",
            "protocol",
            id="plain HTTP",
        ),
        pytest.param(
            "tls", "TLS handshake failed: UNEXPECTED_EOF_WHILE_READING", "handshake", id="eof"
        ),
    ],
)
def test_failed_connection_is_one_blocker_keyed_by_its_kind(
    kind: ErrorKind, error: str, key: str
) -> None:
    facts = _facts(error=error, kind=kind, legacy={})
    [finding] = judge_all(facts, POLICY)
    assert (finding.key, finding.severity) == (key, "blocker")
    assert str(finding).startswith(f"{TARGET}: {error} (required: ")


def test_expired_certificate_that_failed_the_handshake_is_reported_once() -> None:
    facts = _facts(PKI.leaf(days=-1, not_before_days=-30), PKI.issuing, error=REASONS["expired"])
    assert judge_expiry(facts, POLICY)[0].key == "expired"
    findings = judge_all(facts, POLICY)
    assert [(f.key, f.severity) for f in findings] == [("expired", "blocker")]


# Protocol versions


@pytest.mark.parametrize(
    ("legacy", "keys"),
    [
        pytest.param({"TLSv1": True, "TLSv1.1": False}, ["legacy:TLSv1"], id="TLS 1.0 accepted"),
        pytest.param({"TLSv1": False, "TLSv1.1": True}, ["legacy:TLSv1.1"], id="TLS 1.1 accepted"),
        pytest.param(
            {"TLSv1.1": True, "TLSv1": True}, ["legacy:TLSv1", "legacy:TLSv1.1"], id="both accepted"
        ),
        pytest.param({"TLSv1": False, "TLSv1.1": False}, [], id="both refused"),
        pytest.param({}, [], id="not probed"),
    ],
)
def test_accepted_legacy_versions_are_critical_findings(
    legacy: dict[str, bool], keys: list[str]
) -> None:
    findings = judge_protocol(_facts(PKI.leaf(), PKI.issuing, legacy=legacy), POLICY)
    assert _keys(findings) == keys
    assert all(f.severity == "critical" for f in findings)


@pytest.mark.parametrize(
    ("legacy", "key", "version"),
    [
        pytest.param({"TLSv1": True, "TLSv1.1": False}, "legacy:TLSv1", "TLSv1", id="TLS 1.0 only"),
        pytest.param(
            {"TLSv1": False, "TLSv1.1": True}, "legacy:TLSv1.1", "TLSv1.1", id="TLS 1.1 only"
        ),
    ],
)
def test_server_speaking_only_a_legacy_version_fails_the_handshake_and_is_found_accepting_it(
    legacy: dict[str, bool], key: str, version: str
) -> None:
    facts = _facts(PKI.leaf(), PKI.issuing, error=REASONS["legacy-only"], legacy=legacy)
    findings = judge_all(facts, POLICY)
    assert _keys(findings) == ["handshake", key]
    assert findings[1].observed == f"accepts a handshake offering only {version}"
    assert findings[1].required == f"{version} refused, as every version below TLSv1.2"


@pytest.mark.parametrize(
    ("negotiated", "minimum", "keys"),
    [
        pytest.param("TLSv1.2", "TLSv1.3", ["protocol"], id="1.2 below 1.3"),
        pytest.param("TLSv1.3", "TLSv1.3", [], id="1.3 meets 1.3"),
        pytest.param("TLSv1.2", "TLSv1.2", [], id="1.2 meets 1.2"),
    ],
)
def test_negotiated_version_below_the_site_minimum_is_a_finding(
    negotiated: str, minimum: str, keys: list[str]
) -> None:
    policy = TlsPolicy(min_version=minimum)  # type: ignore[arg-type]
    findings = judge_protocol(_facts(PKI.leaf(), PKI.issuing, protocol=negotiated), policy)
    assert _keys(findings) == keys


# Expiry, judged at the moment of observation unless told otherwise


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [
        pytest.param(-2.5, [("expired", "critical")], id="expired"),
        pytest.param(3.5, [("expiring", "critical")], id="inside fail window"),
        pytest.param(20.5, [("expiring", "warning")], id="inside warning window"),
        pytest.param(60.5, [], id="plenty left"),
    ],
)
def test_leaf_expiry_is_judged_by_days_left(
    days_left: float, expected: list[tuple[str, str]]
) -> None:
    leaf = PKI.leaf()
    now = leaf.cert.not_valid_after_utc - timedelta(days=days_left)
    findings = judge_expiry(_facts(leaf, PKI.issuing), POLICY, now=now)
    assert [(f.key, f.severity) for f in findings] == expected


def test_certificate_inside_the_warning_window_passes_with_a_warning() -> None:
    leaf = PKI.leaf(days=20)
    findings = judge_all(_facts(leaf, PKI.issuing), POLICY)
    assert [(f.key, f.severity) for f in findings] == [("expiring", "warning")]
    assert findings[0].observed.startswith("'CN=localhost' expires on ")
    assert findings[0].observed.endswith("in 19 days")
    assert findings[0].required == "at least 30 days of validity left"
    assert [f for f in findings if f.severity != "warning"] == []


def test_expiry_thresholds_come_from_the_policy() -> None:
    facts = _facts(PKI.leaf(days=20), PKI.issuing)
    strict = TlsPolicy(expiry_warn_days=60, expiry_fail_days=30)
    assert [(f.key, f.severity) for f in judge_expiry(facts, strict)] == [("expiring", "critical")]


def test_expiry_defaults_to_the_moment_of_observation() -> None:
    leaf = PKI.leaf(days=20)
    later = leaf.cert.not_valid_after_utc + timedelta(days=1)
    assert _keys(judge_expiry(_facts(leaf, PKI.issuing, observed_at=later), POLICY)) == ["expired"]


def test_expiring_intermediate_is_found_too() -> None:
    short_lived = make_ca("Short Issuing CA", PKI.root, days=5)
    leaf = make_leaf(short_lived)
    findings = judge_expiry(_facts(leaf, short_lived), POLICY)
    assert [(f.key, f.severity) for f in findings] == [("expiring", "critical")]
    assert findings[0].observed.startswith("'CN=Short Issuing CA' expires on")


def test_not_yet_valid_certificate_is_critical() -> None:
    facts = _facts(PKI.leaf(days=30, not_before_days=2), PKI.issuing)
    assert [(f.key, f.severity) for f in judge_expiry(facts, POLICY)] == [
        ("not-yet-valid", "critical")
    ]


# Keys and signatures


def test_rsa_1024_leaf_is_a_key_size_finding() -> None:
    [finding] = judge_keys(_facts(PKI.leaf(rsa_bits=1024), PKI.issuing), POLICY)
    assert (finding.key, finding.severity) == ("key-size", "critical")
    assert finding.observed == "'CN=localhost' has a 1024-bit RSA key"
    assert finding.required == "RSA keys of at least 2048 bits"


def test_rsa_2048_leaf_meets_the_default_policy() -> None:
    assert judge_keys(_facts(PKI.leaf(rsa_bits=2048), PKI.issuing), POLICY) == []


def test_key_sizes_of_leaf_and_intermediate_are_judged_but_not_the_root_sent_along() -> None:
    policy = TlsPolicy(min_ec_bits=384)
    findings = judge_keys(_facts(PKI.leaf(), PKI.issuing, PKI.root), policy)
    assert [f.observed for f in findings] == [
        "'CN=localhost' has a 256-bit EC key",
        "'CN=Test Issuing CA' has a 256-bit EC key",
    ]


def test_sha1_signed_leaf_is_a_signature_finding(
    sha1_chain: tuple[CertificateFacts, ...],
) -> None:
    [finding] = judge_signatures(_facts(*sha1_chain), POLICY)
    assert (finding.key, finding.severity) == ("signature:sha1", "critical")
    assert finding.observed == "'CN=localhost' is signed with sha1"
    assert finding.required == "no signature made with md5 or sha1"


@pytest.mark.parametrize(
    ("signature_hash", "forbidden", "keys"),
    [
        pytest.param("md5", ["md5", "sha1"], ["signature:md5"], id="md5"),
        pytest.param("sha1", ["SHA-1"], ["signature:sha1"], id="policy spells SHA-1"),
        pytest.param("sha1", ["md5"], [], id="sha1 allowed by policy"),
        pytest.param("sha256", ["md5", "sha1"], [], id="sha256"),
    ],
)
def test_forbidden_signature_hashes_come_from_the_policy(
    signature_hash: str, forbidden: list[str], keys: list[str]
) -> None:
    leaf = dataclasses.replace(
        CertificateFacts.from_der(PKI.leaf().der), signature_hash=signature_hash
    )
    policy = TlsPolicy(forbidden_signature_hashes=forbidden)
    assert _keys(judge_signatures(_facts(leaf, PKI.issuing), policy)) == keys


def test_sha1_self_signed_root_sent_along_is_not_a_finding(tmp_path: Path) -> None:
    root = CertificateFacts.from_der(sha1_self_signed(tmp_path))
    assert judge_signatures(_facts(PKI.leaf(), PKI.issuing, root), POLICY) == []


# Client certificates


@pytest.mark.parametrize(
    ("required", "demanded", "expected"),
    [
        pytest.param(True, True, [], id="required and demanded"),
        pytest.param(True, False, [("client-auth", "critical")], id="required, not demanded"),
        pytest.param(True, None, [("client-auth", "critical")], id="required, unknown"),
        pytest.param(False, True, [("client-auth", "normal")], id="not declared, demanded"),
        pytest.param(False, False, [], id="not declared, not demanded"),
        pytest.param(False, None, [], id="not declared, not probed"),
    ],
)
def test_client_certificate_demand_matches_the_site(
    required: bool, demanded: bool | None, expected: list[tuple[str, str]]
) -> None:
    findings = judge_client_auth(_facts(PKI.leaf(), PKI.issuing, demanded=demanded), required)
    assert [(f.key, f.severity) for f in findings] == expected


def test_server_that_accepts_clients_without_certificate_is_told_so() -> None:
    [finding] = judge_client_auth(_facts(PKI.leaf(), demanded=False), required=True)
    assert str(finding) == (
        f"{TARGET}: accepts a client without a certificate"
        " (required: a client certificate demanded)"
    )


def test_server_demanding_a_client_cert_passes_with_the_sites_certificate() -> None:
    facts = _facts(PKI.leaf(), PKI.issuing, demanded=True)
    assert judge_all(facts, POLICY, client_auth_required=True) == []


@pytest.mark.parametrize(
    ("reason", "demanded"),
    [
        pytest.param("no-client-cert-tls13", True, id="without one, TLS 1.3"),
        pytest.param("no-client-cert-tls12", True, id="without one, TLS 1.2"),
        pytest.param("foreign-client-cert", True, id="foreign one"),
        pytest.param("foreign-client-cert", None, id="foreign one, demand not probed"),
    ],
)
def test_server_refusing_our_client_certificate_is_a_client_certificate_blocker(
    reason: str, demanded: bool | None
) -> None:
    facts = _facts(PKI.leaf(), PKI.issuing, error=REASONS[reason], demanded=demanded)
    findings = judge_all(facts, POLICY, client_auth_required=True if demanded else None)
    assert [(f.key, f.severity) for f in findings] == [("client-certificate", "blocker")]
    assert findings[0].required == "a client certificate the server accepts"


# Cipher families in TLS 1.2 (TLS-007)

CBC = POLICY.warn_ciphers[0]


def _probed(*probes: CipherProbe, tls12: bool = True) -> HandshakeFacts:
    asked = {p.family: p for p in probes}
    every = tuple(asked.get(f, CipherProbe(f, True)) for f in POLICY.cipher_families)
    return dataclasses.replace(_facts(PKI.leaf()), tls12=tls12, ciphers=every if tls12 else ())


@pytest.mark.parametrize(
    ("probe", "key", "severity"),
    [
        pytest.param(
            CipherProbe("kRSA", True, True, "AES256-GCM-SHA384"), "cipher:kRSA", "critical",
            id="static RSA",
        ),
        pytest.param(
            CipherProbe("aNULL", True, True, "AECDH-AES256-SHA"), "cipher:aNULL", "critical",
            id="anonymous",
        ),
        pytest.param(
            CipherProbe(CBC, True, True, "ECDHE-RSA-AES128-SHA256"), f"cipher:{CBC}", "warning",
            id="CBC with forward secrecy",
        ),
    ],
)  # fmt: skip
def test_an_accepted_family_is_a_finding_naming_the_suite(
    probe: CipherProbe, key: str, severity: str
) -> None:
    [finding] = judge_ciphers(_probed(probe), POLICY)
    assert (finding.key, finding.severity) == (key, severity)
    assert finding.observed == (
        f"accepts {probe.suite} in a TLS 1.2 handshake offering only {probe.family}"
    )


def test_refused_families_have_no_findings_and_unofferable_ones_are_not_probed() -> None:
    facts = _probed(CipherProbe("RC4", False), CipherProbe("EXPORT", False))
    assert judge_ciphers(facts, POLICY) == []
    assert cipher_notes(facts, POLICY) == [
        "not probed: this OpenSSL cannot offer RC4",
        "not probed: this OpenSSL cannot offer EXPORT",
    ]


def test_a_site_that_forbids_cbc_fails_on_it() -> None:
    policy = TlsPolicy(forbidden_ciphers=["kRSA", CBC])
    facts = _probed(CipherProbe(CBC, True, True, "ECDHE-RSA-AES128-SHA"))
    facts = dataclasses.replace(
        facts, ciphers=tuple(p for p in facts.ciphers if p.family in policy.cipher_families)
    )
    assert policy.cipher_families == ("kRSA", CBC, POLICY.warn_ciphers[1])
    assert [(f.key, f.severity) for f in judge_ciphers(facts, policy)] == [
        (f"cipher:{CBC}", "critical")
    ]


def test_a_server_speaking_only_tls13_passes_with_a_note() -> None:
    facts = _probed(tls12=False)
    assert judge_ciphers(facts, POLICY) == []
    [note] = cipher_notes(facts, POLICY)
    assert note.startswith("negotiates only TLS 1.3")


def test_unprobed_ciphers_are_noted_not_passed() -> None:
    facts = _facts(PKI.leaf())
    assert cipher_notes(facts, POLICY) == ["not probed: no cipher family was probed"]


def test_a_cipher_probe_cannot_accept_what_it_never_offered() -> None:
    with pytest.raises(ValueError, match="never offered"):
        CipherProbe("RC4", offered=False, accepted=True)


def test_cipher_families_are_strings_of_openssl_and_set_no_security_level() -> None:
    with pytest.raises(ValueError, match="forbidden_ciphers"):
        TlsPolicy(forbidden_ciphers=["kRSA:@SECLEVEL=0"])


# All at once


def test_judge_all_reports_every_problem_at_once(
    sha1_chain: tuple[CertificateFacts, ...],
) -> None:
    weak = CertificateFacts.from_der(PKI.leaf(rsa_bits=1024, days=3).der)
    leaf = dataclasses.replace(weak, signature_hash="sha1")
    facts = _facts(
        leaf,
        sha1_chain[1],
        protocol="TLSv1.2",
        legacy={"TLSv1": True, "TLSv1.1": True},
        demanded=False,
    )
    policy = TlsPolicy(min_version="TLSv1.3")
    findings = judge_all(facts, policy, client_auth_required=True)
    assert _keys(findings) == [
        "protocol",
        "legacy:TLSv1",
        "legacy:TLSv1.1",
        "expiring",
        "key-size",
        "signature:sha1",
        "client-auth",
    ]
    assert all(f.target == TARGET for f in findings)
