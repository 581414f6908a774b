"""The JAR signature of IDM's configuration download is verified as the JAR File Specification
defines it, from JARs built here with `cryptography` (not by the lab): every entry's manifest
digest, the signature file's digest of the manifest (or of each of its sections, as jarsigner falls
back), the PKCS#7 block over the signature file; each problem one sentence naming the download and
the entry. The signer certificate is judged like a TLS certificate, from a table."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from smartid.idm.manifest import ManifestError, read_manifest
from smartid.idm.signature import JarSignature, Signer, issued_by_bundle, judge_signer, verify_jar
from smartid.site import TlsPolicy
from tests.certs import Cert, Pki, make_leaf

WHERE = "IDM Admin's configuration download (https://idm.test/idm-admin)"
ENTRIES = {
    "META-INF/package.json": b'{"name": "configuration"}\n',
    "processes/lock-user.bpmn20.xml": b"<definitions/>\n",
    "users/admin.json": b'{"name": "admin"}\n',
}
SF_NAME = "META-INF/SIGNER.SF"
POLICY = TlsPolicy()  # fail below 7 days, warn below 30
NOW = datetime(2027, 6, 1, tzinfo=UTC)


@cache
def _pki() -> Pki:
    return Pki("Signing")


@cache
def _signer(kind: str = "rsa") -> Cert:
    bits = None if kind == "ec" else 2048
    if kind == "expired":
        return make_leaf(_pki().issuing, "Config Signer", hosts=(), days=-2, not_before_days=-400)
    return make_leaf(_pki().issuing, "Config Signer", hosts=(), rsa_bits=bits)


def _b64(data: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def _section(name: str, body: bytes, algorithm: str = "SHA-256") -> bytes:
    digest = _b64(body, algorithm.replace("-", "").lower())
    return f"Name: {name}\r\n{algorithm}-Digest: {digest}\r\n\r\n".encode()


def _block(sf: bytes, signer: Cert) -> bytes:
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    builder = pkcs7.PKCS7SignatureBuilder().set_data(sf)
    key = signer.key
    return builder.add_signer(signer.cert, key, hashes.SHA256()).sign(
        serialization.Encoding.DER, options
    )


@dataclass
class Jar:
    """A signed JAR as files, to spoil one part of before zipping it."""

    entries: dict[str, bytes]
    manifest: bytes
    sections: dict[str, bytes]
    sf: bytes
    block: bytes
    signer: Cert
    extra: dict[str, bytes] = field(default_factory=dict)

    def resign(self) -> Jar:
        return replace(self, block=_block(self.sf, self.signer))

    def zip(self, *, block_name: str | None = None) -> bytes:
        suffix = ".EC" if not isinstance(self.signer.key, rsa.RSAPrivateKey) else ".RSA"
        files = {
            "META-INF/MANIFEST.MF": self.manifest,
            SF_NAME: self.sf,
            block_name or f"META-INF/SIGNER{suffix}": self.block,
            **self.entries,
            **self.extra,
        }
        return _zip(files)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def _sf(manifest: bytes, main: bytes, sections: dict[str, bytes]) -> bytes:
    head = (
        "Signature-Version: 1.0\r\n"
        f"SHA-256-Digest-Manifest: {_b64(manifest)}\r\n"
        f"SHA-256-Digest-Manifest-Main-Attributes: {_b64(main)}\r\n\r\n"
    ).encode()
    return head + b"".join(
        f"Name: {name}\r\nSHA-256-Digest: {_b64(raw)}\r\n\r\n".encode()
        for name, raw in sections.items()
    )


def signed(
    entries: dict[str, bytes] | None = None, *, signer: str = "rsa", algorithm: str = "SHA-256"
) -> Jar:
    files = dict(ENTRIES if entries is None else entries)
    main = b"Manifest-Version: 1.0\r\nCreated-By: tests\r\n\r\n"
    sections = {name: _section(name, body, algorithm) for name, body in files.items()}
    manifest = main + b"".join(sections.values())
    cert = _signer(signer)
    sf = _sf(manifest, main, sections)
    return Jar(files, manifest, sections, sf, _block(sf, cert), cert)


# --- spoiled JARs --------------------------------------------------------------------------------


def _entry_changed() -> bytes:
    jar = signed()
    jar.entries["processes/lock-user.bpmn20.xml"] = b"<definitions>changed</definitions>\n"
    return jar.zip()


def _whole_manifest_digest_wrong() -> bytes:
    jar = signed()
    sf = jar.sf.replace(_b64(jar.manifest).encode(), _b64(b"another manifest").encode())
    return replace(jar, sf=sf).resign().zip()


def _manifest_section_changed() -> bytes:
    # Entry and its manifest digest changed together; the signature file still has the old ones.
    jar = signed()
    name, body = "users/admin.json", b'{"name": "intruder"}\n'
    jar.entries[name] = body
    manifest = jar.manifest.replace(jar.sections[name], _section(name, body))
    return replace(jar, manifest=manifest).zip()


def _block_over_another_sf() -> bytes:
    jar = signed()
    return replace(jar, block=_block(jar.sf + b"Name: more\r\n\r\n", jar.signer)).zip()


def _entry_not_in_manifest() -> bytes:
    jar = signed()
    jar.extra["users/extra.json"] = b'{"name": "extra"}\n'
    return jar.zip()


def _manifest_names_missing_entry() -> bytes:
    jar = signed()
    del jar.entries["users/admin.json"]
    return jar.zip()


def _no_block() -> bytes:
    return signed().zip(block_name="META-INF/OTHER.RSA")


def _two_signers() -> bytes:
    jar = signed()
    jar.extra["META-INF/SECOND.SF"] = jar.sf
    return jar.zip()


def _malformed_manifest() -> bytes:
    jar = signed()
    manifest = b"Manifest-Version: 1.0\r\nthis is not a header\r\n\r\n"
    return replace(jar, manifest=manifest).zip()


def _unsigned() -> bytes:
    return _zip(ENTRIES)


def _manifest_only() -> bytes:
    jar = signed()
    return _zip({"META-INF/MANIFEST.MF": jar.manifest, **jar.entries})


def _traversal() -> bytes:
    jar = signed()
    jar.extra["../evil.json"] = b"{}"
    return jar.zip()


CASES: list[tuple[str, Callable[[], bytes], tuple[str, ...]]] = [
    ("good", lambda: signed().zip(), ()),
    ("good, EC signer", lambda: signed(signer="ec").zip(), ()),
    ("good, SHA-512 manifest digests", lambda: signed(algorithm="SHA-512").zip(), ()),
    ("whole-manifest digest wrong, sections right", _whole_manifest_digest_wrong, ()),
    (
        "entry changed after signing",
        _entry_changed,
        (
            "entry 'processes/lock-user.bpmn20.xml' does not match its SHA-256 digest in "
            "META-INF/MANIFEST.MF (changed after signing)",
        ),
    ),
    (
        "manifest section changed after signing",
        _manifest_section_changed,
        (
            "the META-INF/MANIFEST.MF section of entry 'users/admin.json' does not match its "
            "digest in META-INF/SIGNER.SF",
        ),
    ),
    (
        "signature block over another .SF",
        _block_over_another_sf,
        (
            "the signature block META-INF/SIGNER.RSA does not verify over META-INF/SIGNER.SF: "
            "CMS Verification failure",
        ),
    ),
    (
        "entry the manifest lacks",
        _entry_not_in_manifest,
        ("entry 'users/extra.json' is not in META-INF/MANIFEST.MF, so no signature covers it",),
    ),
    (
        "manifest names an entry the zip lacks",
        _manifest_names_missing_entry,
        ("META-INF/MANIFEST.MF names the entry 'users/admin.json', which the download lacks",),
    ),
    ("no signature block", _no_block, ("has no signature block (META-INF/SIGNER.RSA, ",)),
    ("two signature files", _two_signers, ("has 2 signature files (META-INF/SECOND.SF, ",)),
    (
        "malformed manifest",
        _malformed_manifest,
        ("entry 'META-INF/MANIFEST.MF': line 2 is not a 'Name: value' header",),
    ),
    ("no signature at all", _unsigned, ("is not signed: it has no manifest and no signature",)),
    ("manifest, no signature", _manifest_only, ("is not signed: it has a manifest but no",)),
    ("not a zip", lambda: b"<html>Service unavailable</html>", ("is not a zip file",)),
    ("a ../ entry", _traversal, ("entry '../evil.json' leaves the folder it is unpacked into",)),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_download_is_verified_with_every_problem_named(
    make: Callable[[], bytes], expected: tuple[str, ...]
) -> None:
    result = verify_jar(make(), WHERE)
    assert len(result.problems) == len(expected), result.problems
    for problem, words in zip(result.problems, expected, strict=True):
        assert problem.startswith(WHERE), problem
        assert words in problem, problem
        assert "\n" not in problem
        assert "Traceback" not in problem
    assert result.verified == (not expected)


def test_a_verified_download_names_its_signer() -> None:
    jar = signed()
    result = verify_jar(jar.zip(), WHERE)
    assert result.verified
    assert result.signed
    assert result.signature_file == SF_NAME
    assert result.entries == len(ENTRIES)
    signer = result.signer
    assert signer is not None
    assert signer.subject == "CN=Config Signer"
    assert signer.issuer == "CN=Signing Issuing CA"
    assert signer.serial == f"{jar.signer.cert.serial_number:x}"
    assert signer.not_after == jar.signer.cert.not_valid_after_utc
    assert signer.sha256 == hashlib.sha256(jar.signer.der).hexdigest()
    assert not signer.self_signed
    assert result.to_dict()["signer"]["subject"] == "CN=Config Signer"


def test_an_unsigned_download_is_a_finding_of_its_own() -> None:
    result = verify_jar(_unsigned(), WHERE)
    assert result == JarSignature(
        where=WHERE,
        signed=False,
        problems=(
            f"{WHERE} is not signed: it has no manifest and no signature file META-INF/*.SF "
            "(Nexus: IDM signs the configuration by default)",
        ),
    )


def test_a_signature_by_an_expired_signer_verifies_and_the_signer_is_judged_expired() -> None:
    result = verify_jar(signed(signer="expired").zip(), WHERE)
    assert result.verified, result.problems
    assert result.signer is not None
    findings = judge_signer(result.signer, POLICY, WHERE, now=datetime.now(UTC))
    assert [(f.key, f.severity) for f in findings] == [("signer-expired", "critical")]
    assert "the signer 'CN=Config Signer' expired on " in findings[0].observed
    assert findings[0].target == WHERE


def test_without_openssl_the_signature_is_not_verified_in_one_sentence() -> None:
    result = verify_jar(signed().zip(), WHERE, openssl="/nonexistent/openssl")
    assert result.signer is None
    assert result.problems == (
        f"{WHERE}: the signature block META-INF/SIGNER.RSA does not verify over "
        "META-INF/SIGNER.SF: openssl could not run (No such file or directory)",
    )


def test_an_openssl_that_hangs_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    hanging = tmp_path / "openssl"
    hanging.write_text("#!/bin/sh\nsleep 10\n")
    hanging.chmod(0o700)
    result = verify_jar(signed().zip(), WHERE, openssl=str(hanging), timeout=0.3)
    assert len(result.problems) == 1
    assert result.problems[0].endswith("openssl did not finish within 0.3 s")


# --- the signer's validity -----------------------------------------------------------------------


def _facts(**changes: object) -> Signer:
    base = Signer(
        subject="CN=Config Signer",
        issuer="CN=Issuing CA",
        serial="1f",
        not_before=NOW - timedelta(days=100),
        not_after=NOW + timedelta(days=365),
        sha256="00" * 32,
        self_signed=False,
        key_usage=("digital_signature",),
        key_usage_critical=True,
        der=b"",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        pytest.param(_facts(), [], id="valid"),
        pytest.param(
            _facts(not_after=NOW - timedelta(days=3)),
            [("signer-expired", "critical", "expired on 2027-05-29, 3 days ago")],
            id="expired",
        ),
        pytest.param(
            _facts(not_after=NOW + timedelta(days=5)),
            [("signer-expiring", "critical", "expires on 2027-06-06, in 5 days")],
            id="inside expiry_fail_days",
        ),
        pytest.param(
            _facts(not_after=NOW + timedelta(days=10)),
            [("signer-expiring", "warning", "expires on 2027-06-11, in 10 days")],
            id="inside expiry_warn_days",
        ),
        pytest.param(
            _facts(not_before=NOW + timedelta(days=1)),
            [("signer-not-yet-valid", "critical", "is valid only from 2027-06-02 00:00 UTC")],
            id="not yet valid",
        ),
        pytest.param(
            _facts(self_signed=True, issuer="CN=Config Signer"),
            [("signer-self-signed", "critical", "is self-signed")],
            id="self-signed",
        ),
        pytest.param(
            _facts(key_usage=("key_encipherment",)),
            [("signer-key-usage", "critical", "critical key usage without digitalSignature")],
            id="critical key usage without digitalSignature",
        ),
        pytest.param(
            _facts(key_usage=("key_encipherment",), key_usage_critical=False), [], id="not critical"
        ),
        pytest.param(_facts(key_usage=None, key_usage_critical=False), [], id="no key usage"),
    ],
)
def test_the_signer_is_judged_like_a_tls_certificate(
    signer: Signer, expected: list[tuple[str, str, str]]
) -> None:
    findings = judge_signer(signer, POLICY, WHERE, now=NOW)
    assert [(f.key, f.severity) for f in findings] == [(k, s) for k, s, _ in expected]
    for finding, (_, _, words) in zip(findings, expected, strict=True):
        assert words in finding.observed, finding
        assert finding.observed.startswith("the signer 'CN=Config Signer' ")


def test_the_signer_is_issued_by_a_ca_of_the_bundle_or_not() -> None:
    result = verify_jar(signed().zip(), WHERE)
    assert result.signer is not None
    assert issued_by_bundle(result.signer, _pki().root.pem + _pki().issuing.pem)
    assert not issued_by_bundle(result.signer, _pki().root.pem)
    assert not issued_by_bundle(result.signer, Pki("Other").issuing.pem)


# --- the manifest reader -------------------------------------------------------------------------


def test_a_manifest_keeps_each_sections_bytes_and_joins_continued_values() -> None:
    data = (
        b"Manifest-Version: 1.0\r\n\r\n"
        b"Name: processes/a-very-long-name-that-needs-more-than-one-line-of-seventy-t\r\n"
        b" wo-bytes.bpmn20.xml\r\nsha-256-digest: abc=\r\n\r\n"
        b"Name: b\nSHA-256-Digest: def=\n\n"
        b"Name: c\rSHA-256-Digest: ghi="
    )
    manifest = read_manifest(data, "the manifest")
    assert manifest.main.raw == b"Manifest-Version: 1.0\r\n\r\n"
    long = (
        "processes/a-very-long-name-that-needs-more-than-one-line-of-seventy-two-bytes.bpmn20.xml"
    )
    assert list(manifest.sections) == [long, "b", "c"]
    assert manifest.sections[long].get("SHA-256-Digest") == "abc="
    assert manifest.sections["b"].raw == b"Name: b\nSHA-256-Digest: def=\n\n"
    assert manifest.sections["c"].get("sha-256-digest") == "ghi="


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "the manifest is empty", id="empty"),
        pytest.param(
            b"A: 1\r\n\r\nB: 2\r\n\r\n", "the section at line 3 has no Name", id="no name"
        ),
        pytest.param(
            b"A: 1\r\n\r\nName: x\r\n\r\nName: x\r\n\r\n", "names the entry 'x' twice", id="twice"
        ),
        pytest.param(b"A: 1\r\n continued\r\n", None, id="continuation is fine"),
        pytest.param(b" orphan\r\n", "line 1 continues no header", id="orphan continuation"),
        pytest.param(b"A: \xff\r\n", "line 1 is not UTF-8", id="not utf-8"),
        pytest.param(b"A:1\r\n", "line 1 is not a 'Name: value' header", id="no space"),
        pytest.param(b"A: 1\r\na: 2\r\n", "has a twice", id="attribute twice"),
    ],
)
def test_a_malformed_manifest_is_one_sentence_naming_the_line(
    data: bytes, message: str | None
) -> None:
    if message is None:
        assert read_manifest(data, "the manifest").main.get("a") == "1continued"
        return
    with pytest.raises(ManifestError) as caught:
        read_manifest(data, "the manifest")
    assert message in str(caught.value)
    assert str(caught.value).startswith("the manifest")
