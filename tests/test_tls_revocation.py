"""The revocation judge (TLS-009) on certificates, CRLs and OCSP answers made here: no network."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from smartid.site import TlsPolicy
from smartid.tls.revocation import (
    ChainCertificate,
    Fetched,
    RevocationFacts,
    judge_revocation,
    revocation_urls,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CRL_URL = "http://127.0.0.1:18445/cm/pki/issuing-ca.crl"
ROOT_CRL_URL = "http://127.0.0.1:18445/cm/pki/root-ca.crl"
OCSP_URL = "http://127.0.0.1:18445/cm/ocsp"
DER = serialization.Encoding.DER


@dataclass(frozen=True)
class Made:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(DER)


def _cert(
    name: str, issuer: Made | None, *, ca: bool, urls: bool = True, ocsp_signer: bool = False
) -> Made:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if urls and issuer is not None:
        crl = ROOT_CRL_URL if ca else CRL_URL
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    if ocsp_signer:
        usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
        builder = builder.add_extension(usage, critical=False)
    signer = issuer.key if issuer else key
    return Made(builder.sign(signer, hashes.SHA256()), key)


ROOT = _cert("Test Root CA", None, ca=True)
ISSUING = _cert("Test Issuing CA", ROOT, ca=True)
LEAF = _cert("localhost", ISSUING, ca=False)
OTHER = _cert("Other CA", None, ca=True)


def _crl(
    issuer: Made,
    revoked: tuple[x509.Certificate, ...] = (),
    *,
    signer: Made | None = None,
    next_update: datetime | None = None,
) -> bytes:
    after = next_update or NOW + timedelta(days=1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(min(NOW - timedelta(hours=1), after - timedelta(days=1)))
        .next_update(after)
    )
    for cert in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(NOW - timedelta(days=2))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign((signer or issuer).key, hashes.SHA256()).public_bytes(DER)


def _ocsp(
    cert: Made,
    issuer: Made,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    *,
    signer: Made | None = None,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
) -> bytes:
    responder = signer or issuer
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert.cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA1(),  # noqa: S303 - the CertID hash every responder speaks
            cert_status=status,
            this_update=this_update or NOW - timedelta(minutes=5),
            next_update=next_update or NOW + timedelta(hours=12),
            revocation_time=NOW - timedelta(days=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert)
    )
    if signer is not None:
        builder = builder.certificates([signer.cert])
    return builder.sign(responder.key, hashes.SHA256()).public_bytes(DER)


def _got(url: str, body: bytes) -> Fetched:
    return Fetched(url, body, None, NOW)


def _failed(url: str, error: str = "connection refused") -> Fetched:
    return Fetched(url, None, error, NOW)


def _entry(
    made: Made, issuer: Made | None, crl: Fetched | None, answer: Fetched | None
) -> ChainCertificate:
    return ChainCertificate(
        subject=made.cert.subject.rfc4514_string(),
        der=made.der,
        issuer_der=issuer.der if issuer else None,
        crls=(crl,) if crl else (),
        ocsp=(answer,) if answer else (),
    )


def _good_intermediate() -> ChainCertificate:
    return _entry(
        ISSUING, ROOT, _got(ROOT_CRL_URL, _crl(ROOT)), _got(OCSP_URL, _ocsp(ISSUING, ROOT))
    )


def _facts(*entries: ChainCertificate) -> RevocationFacts:
    return RevocationFacts("localhost:18443", NOW, entries)


def _leaf(crl: bytes | Fetched | None, answer: bytes | Fetched | None) -> ChainCertificate:
    crl_f = _got(CRL_URL, crl) if isinstance(crl, bytes) else crl
    ocsp_f = _got(OCSP_URL, answer) if isinstance(answer, bytes) else answer
    return _entry(LEAF, ISSUING, crl_f, ocsp_f)


GOOD_CRL = _crl(ISSUING)
GOOD_OCSP = _ocsp(LEAF, ISSUING)
DELEGATE = _cert("Test OCSP Responder", ISSUING, ca=False, urls=False, ocsp_signer=True)
NOT_DELEGATED = _cert("Test Web Server", ISSUING, ca=False, urls=False)

CASES = [
    pytest.param(_leaf(GOOD_CRL, GOOD_OCSP), "prefer", [], id="good-by-crl-and-ocsp"),
    pytest.param(
        _leaf(GOOD_CRL, _ocsp(LEAF, ISSUING, signer=DELEGATE)),
        "prefer",
        [],
        id="ocsp-good-from-a-delegated-responder",
    ),
    pytest.param(
        _leaf(_crl(ISSUING, (LEAF.cert,)), GOOD_OCSP),
        "prefer",
        [("revoked", "critical", "CN=localhost", CRL_URL)],
        id="leaf-revoked-in-crl",
    ),
    pytest.param(
        _leaf(GOOD_CRL, _ocsp(LEAF, ISSUING, ocsp.OCSPCertStatus.REVOKED)),
        "prefer",
        [("revoked", "critical", "says revoked since", OCSP_URL)],
        id="ocsp-revoked",
    ),
    pytest.param(
        _leaf(GOOD_CRL, _ocsp(LEAF, ISSUING, ocsp.OCSPCertStatus.UNKNOWN)),
        "prefer",
        [("ocsp-unknown", "critical", "does not know the certificate", OCSP_URL)],
        id="ocsp-unknown",
    ),
    pytest.param(
        _leaf(GOOD_CRL, _ocsp(LEAF, ISSUING, next_update=NOW - timedelta(hours=1))),
        "prefer",
        [("ocsp-stale", "critical", "next update was due on", OCSP_URL)],
        id="ocsp-stale-past-next-update",
    ),
    pytest.param(
        _leaf(
            GOOD_CRL,
            _ocsp(
                LEAF,
                ISSUING,
                this_update=NOW - timedelta(days=10),
                next_update=NOW + timedelta(days=1),
            ),
        ),
        "prefer",
        [("ocsp-stale", "critical", "produced 240 hours ago", OCSP_URL)],
        id="ocsp-stale-this-update-too-old",
    ),
    pytest.param(
        _leaf(GOOD_CRL, _ocsp(LEAF, ISSUING, signer=NOT_DELEGATED)),
        "prefer",
        [("ocsp-signature", "critical", "signed by neither its issuer", OCSP_URL)],
        id="ocsp-signed-by-a-certificate-not-delegated",
    ),
    pytest.param(
        _leaf(_crl(ISSUING, next_update=NOW - timedelta(hours=2)), GOOD_OCSP),
        "prefer",
        [("crl-stale", "critical", "is stale: next update due on", CRL_URL)],
        id="crl-stale",
    ),
    pytest.param(
        _leaf(_crl(ISSUING, signer=OTHER), GOOD_OCSP),
        "prefer",
        [("crl-signature", "critical", "is not signed by its issuer", CRL_URL)],
        id="crl-signed-by-another-key",
    ),
    pytest.param(
        _leaf(b"<html>not a CRL</html>", GOOD_OCSP),
        "prefer",
        [("crl-invalid", "critical", "is not a CRL", CRL_URL)],
        id="crl-not-a-crl",
    ),
    pytest.param(
        _leaf(GOOD_CRL, _failed(OCSP_URL)),
        "prefer",
        [("ocsp-unavailable", "warning", "could not be fetched: connection refused", OCSP_URL)],
        id="ocsp-down-prefer-warns",
    ),
    pytest.param(
        _leaf(GOOD_CRL, _failed(OCSP_URL)),
        "require",
        [("ocsp-unavailable", "critical", "could not be fetched: connection refused", OCSP_URL)],
        id="ocsp-down-require-fails",
    ),
    pytest.param(
        _leaf(_failed(CRL_URL, "HTTP 404"), GOOD_OCSP),
        "prefer",
        [("crl-unavailable", "warning", "could not be fetched: HTTP 404", CRL_URL)],
        id="crl-missing-prefer-warns",
    ),
    pytest.param(
        _entry(_cert("bare", ISSUING, ca=False, urls=False), ISSUING, None, None),
        "prefer",
        [("no-revocation-url", "warning", "names no CRL distribution point", "CN=bare")],
        id="no-revocation-url-prefer-warns",
    ),
    pytest.param(
        _entry(_cert("bare", ISSUING, ca=False, urls=False), ISSUING, None, None),
        "require",
        [("no-revocation-url", "critical", "names no CRL distribution point", "CN=bare")],
        id="no-revocation-url-require-fails",
    ),
    pytest.param(
        _entry(LEAF, None, _got(CRL_URL, GOOD_CRL), None),
        "prefer",
        [
            (
                "issuer-unknown",
                "warning",
                "is neither presented nor in the CA bundle",
                "CN=localhost",
            )
        ],
        id="issuer-not-found-prefer-warns",
    ),
]


@pytest.mark.parametrize(("leaf", "revocation", "expected"), CASES)
def test_judge_revocation(
    leaf: ChainCertificate, revocation: str, expected: list[tuple[str, str, str, str]]
) -> None:
    policy = TlsPolicy.model_validate({"revocation": revocation})
    found = judge_revocation(_facts(leaf, _good_intermediate()), policy)
    assert [(f.key, f.severity) for f in found] == [(k, s) for k, s, _, _ in expected], found
    for finding, (_, _, words, named) in zip(found, expected, strict=True):
        assert words in finding.observed
        assert named in finding.observed
        assert finding.target == "localhost:18443"


def test_a_revoked_intermediate_is_a_finding_naming_it_and_its_crl() -> None:
    intermediate = _entry(
        ISSUING,
        ROOT,
        _got(ROOT_CRL_URL, _crl(ROOT, (ISSUING.cert,))),
        _got(OCSP_URL, _ocsp(ISSUING, ROOT)),
    )
    found = judge_revocation(_facts(_leaf(GOOD_CRL, GOOD_OCSP), intermediate), TlsPolicy())
    assert [f.key for f in found] == ["revoked"]
    assert "'CN=Test Issuing CA' is revoked" in found[0].observed
    assert ROOT_CRL_URL in found[0].observed


def test_an_ocsp_answer_about_another_certificate_does_not_prove_this_one() -> None:
    other_leaf = _cert("other", ISSUING, ca=False)
    found = judge_revocation(_facts(_leaf(GOOD_CRL, _ocsp(other_leaf, ISSUING))), TlsPolicy())
    assert [f.key for f in found] == ["ocsp-mismatch"]


def test_revocation_off_is_a_policy_value_and_prefer_the_default() -> None:
    assert TlsPolicy().revocation == "prefer"
    assert TlsPolicy.model_validate({"revocation": "off"}).revocation == "off"
    with pytest.raises(ValueError, match="revocation"):
        TlsPolicy.model_validate({"revocation": "sometimes"})


def test_revocation_urls_come_from_the_crl_distribution_points_and_the_aia() -> None:
    assert revocation_urls(LEAF.cert) == ((CRL_URL,), (OCSP_URL,))
    assert revocation_urls(ROOT.cert) == ((), ())


def test_facts_refuse_a_fetch_with_both_a_body_and_an_error() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Fetched(CRL_URL, b"x", "HTTP 500", NOW)


def test_a_responder_that_is_down_is_one_finding_naming_every_certificate_it_leaves_unproven() -> (
    None
):
    intermediate = _entry(ISSUING, ROOT, _got(ROOT_CRL_URL, _crl(ROOT)), _failed(OCSP_URL))
    facts = _facts(_leaf(GOOD_CRL, _failed(OCSP_URL)), intermediate)
    found = judge_revocation(facts, TlsPolicy())
    assert [(f.key, f.severity) for f in found] == [("ocsp-unavailable", "warning")]
    assert "'CN=localhost' and 'CN=Test Issuing CA' are unproven" in found[0].observed
