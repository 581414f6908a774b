"""The CM connection zip is built deterministically, read back safely, and refused with one
sentence naming the entry or property, never the password; officer keystores convert between the
modern and the legacy PKCS#12 encryption."""

from __future__ import annotations

import io
import ssl
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from smartid.cm import (
    ConnectionZipError,
    build_connection_zip,
    client_cert_files,
    keystore_password,
    read_connection_zip,
)
from smartid.cm.connection_zip import pkcs12_encryption, reencode_pkcs12
from smartid.cm.properties import PropertiesError, format_properties, parse_properties
from smartid.lab.pki import LabPKI, ServerCredentials
from smartid.masking import Secret

PASSWORD = "pw-123456"
URL = "https://localhost:18444/cm"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    lab = LabPKI(tmp_path_factory.mktemp("lab") / "pki")
    lab.ensure(PASSWORD)
    return lab


@pytest.fixture(scope="module")
def p12(pki: LabPKI) -> bytes:
    return pki.officer.p12.read_bytes()


@pytest.fixture(scope="module")
def trust(pki: LabPKI) -> bytes:
    return pki.ca_bundle.read_bytes()


def _build(p12: bytes, trust: bytes, **changes: object) -> bytes:
    arguments: dict[str, object] = {
        "url": URL,
        "keystore": p12,
        "keystore_password": Secret(PASSWORD, "test"),
        "trust_certs": [trust],
    }
    arguments.update(changes)
    return build_connection_zip(**arguments)  # type: ignore[arg-type]


def _zip_of(files: dict[str, bytes]) -> bytes:
    """A zip written by hand, so that it can hold what the builder never writes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in files.items():
            archive.writestr(zipfile.ZipInfo(name), body)
    return buffer.getvalue()


def _properties(**values: str | None) -> bytes:
    """Nexus_CM.properties with the usual values; a None drops that key."""
    usual: dict[str, str | None] = {
        "cm.url": URL,
        "cm.keystore.file": "idm-officer.p12",
        "cm.keystore.password": PASSWORD,
        "cm.truststore.files": "trust/1.pem",
    }
    usual.update({key.replace("_", "."): value for key, value in values.items()})
    return "".join(f"{k}={v}\n" for k, v in usual.items() if v is not None).encode()


def test_connection_zip_round_trips_url_keystore_and_trust(p12: bytes, trust: bytes) -> None:
    read = read_connection_zip(_build(p12, trust, import_procedure="Smart ID user card"))
    assert read.url == URL
    assert read.keystore_name == "idm-officer.p12"
    assert read.keystore == p12
    assert read.trust_certs == (trust,)
    assert read.properties["cm.transport"] == "REST"
    assert read.properties["caTokenProcedureImportCert"] == "Smart ID user card"
    assert keystore_password(read).reveal() == PASSWORD


def test_connection_zip_holds_properties_keystore_and_numbered_trust_files(
    p12: bytes, trust: bytes
) -> None:
    data = _build(p12, trust, trust_certs=[trust, trust], keystore_name="officer.p12")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        text = archive.read("Nexus_CM.properties").decode("ascii")
        infos = archive.infolist()
    assert names == ["Nexus_CM.properties", "officer.p12", "trust/1.pem", "trust/2.pem"]
    assert "cm.truststore.files=trust/1.pem,trust/2.pem\n" in text
    assert "cm.keystore.file=officer.p12\n" in text
    assert "caTokenProcedureImportCert" not in text
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)


def test_same_input_gives_the_same_zip_bytes(p12: bytes, trust: bytes) -> None:
    assert _build(p12, trust) == _build(p12, trust)
    assert _build(p12, trust) != _build(p12, trust, import_procedure="Smart ID mobile")


def test_special_characters_in_password_and_url_survive_the_properties_file(
    pki: LabPKI, trust: bytes
) -> None:
    password = "p=#!:\\ wörd 🙂-1"
    officer = pki.officer
    keystore = pki.pkcs12(ServerCredentials(officer.cert, officer.key), password)
    url = "https://cm.example:8443/cm?x=a b"
    data = _build(keystore, trust, url=url, keystore_password=Secret(password, "test"))
    read = read_connection_zip(data)
    assert read.url == url
    assert keystore_password(read).reveal() == password


def test_java_properties_syntax_is_understood(p12: bytes, trust: bytes) -> None:
    properties = (
        b"# a comment\n"
        b"! another comment\n"
        b"   \n"
        b"cm.url : https://localhost:18444/\\\n"
        b"         cm\n"
        b"cm.keystore.file   idm-officer.p12\n"
        b"cm.keystore.password=pw-\\u0031\\u00323456\n"
        b"cm.truststore.files=trust/1.pem , \n"
        b"cm\\.odd\\=key = \\tvalue\n"
    )
    data = _zip_of(
        {"Nexus_CM.properties": properties, "idm-officer.p12": p12, "trust/1.pem": trust}
    )
    read = read_connection_zip(data)
    assert read.url == URL
    assert read.keystore_name == "idm-officer.p12"
    assert keystore_password(read).reveal() == "pw-123456"
    assert read.trust_certs == (trust,)
    assert read.properties["cm.odd=key"] == "\tvalue"


def test_connection_zip_repr_shows_no_password(p12: bytes, trust: bytes) -> None:
    read = read_connection_zip(_build(p12, trust))
    assert PASSWORD not in repr(read)
    assert str(keystore_password(read)) == "****"


def _not_a_zip(p12: bytes, trust: bytes) -> bytes:
    return b"PK\x03\x04 but not really a zip"


def _escaping_entry(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"Nexus_CM.properties": _properties(), "../idm-officer.p12": p12})


def _absolute_entry(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"Nexus_CM.properties": _properties(), "/idm-officer.p12": p12})


def _backslash_entry(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"Nexus_CM.properties": _properties(), "trust\\1.pem": trust})


def _too_many_entries(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({f"trust/{n}.pem": trust for n in range(51)})


def _too_large(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"Nexus_CM.properties": _properties(), "big.bin": bytes(10 * 1024 * 1024)})


def _no_properties(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"idm-officer.p12": p12, "trust/1.pem": trust})


def _missing_keystore(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"Nexus_CM.properties": _properties(), "trust/1.pem": trust})


def _wrong_password(p12: bytes, trust: bytes) -> bytes:
    properties = _properties(cm_keystore_password="wrong-password-1")
    return _zip_of(
        {"Nexus_CM.properties": properties, "idm-officer.p12": p12, "trust/1.pem": trust}
    )


def _missing_key(key: str) -> Callable[[bytes, bytes], bytes]:
    def build(p12: bytes, trust: bytes) -> bytes:
        properties = _properties(**{key.replace(".", "_"): None})
        files = {"Nexus_CM.properties": properties, "idm-officer.p12": p12, "trust/1.pem": trust}
        return _zip_of(files)

    return build


def _trust_not_pem(p12: bytes, trust: bytes) -> bytes:
    files = {"Nexus_CM.properties": _properties(), "idm-officer.p12": p12, "trust/1.pem": b"hi"}
    return _zip_of(files)


def _missing_trust(p12: bytes, trust: bytes) -> bytes:
    return _zip_of({"Nexus_CM.properties": _properties(), "idm-officer.p12": p12})


def _keystore_without_key(p12: bytes, trust: bytes) -> bytes:
    loaded = pkcs12.load_pkcs12(p12, PASSWORD.encode())
    assert loaded.cert is not None
    encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
    keystore = pkcs12.serialize_key_and_certificates(
        b"officer", None, loaded.cert.certificate, None, encryption
    )
    files = {"Nexus_CM.properties": _properties(), "idm-officer.p12": keystore}
    return _zip_of(files)


BAD_ZIPS = [
    pytest.param(_not_a_zip, "not a zip file", id="not-a-zip"),
    pytest.param(_escaping_entry, r"'\.\./idm-officer\.p12' leaves the folder", id="dot-dot-entry"),
    pytest.param(_absolute_entry, r"'/idm-officer\.p12' is an absolute path", id="absolute-entry"),
    pytest.param(_backslash_entry, r"'trust\\\\1\.pem' contains a backslash", id="backslash-entry"),
    pytest.param(_too_many_entries, "has 51 entries, more than 50", id="too-many-entries"),
    pytest.param(
        _too_large, "'big.bin' expands the connection zip past 10485760 bytes", id="too-large"
    ),
    pytest.param(_no_properties, "has no Nexus_CM.properties", id="no-properties-file"),
    pytest.param(_missing_keystore, "keystore 'idm-officer.p12' .* not in the zip", id="no-p12"),
    pytest.param(
        _wrong_password,
        "'idm-officer.p12': wrong keystore password or corrupt keystore",
        id="wrong-password",
    ),
    pytest.param(_missing_key("cm.url"), "lacks cm.url", id="no-cm-url"),
    pytest.param(_missing_key("cm.keystore.file"), "lacks cm.keystore.file", id="no-file"),
    pytest.param(_missing_key("cm.keystore.password"), "lacks cm.keystore.pass", id="no-pw"),
    pytest.param(_trust_not_pem, "'trust/1.pem' is not PEM certificates", id="trust-not-pem"),
    pytest.param(_missing_trust, "trust file 'trust/1.pem' .* is missing", id="trust-missing"),
    pytest.param(_keystore_without_key, "holds no private key", id="keystore-without-key"),
]


@pytest.mark.parametrize(("make", "message"), BAD_ZIPS)
def test_bad_connection_zip_is_refused_in_one_sentence_without_the_password(
    p12: bytes, trust: bytes, make: Callable[[bytes, bytes], bytes], message: str
) -> None:
    with pytest.raises(ConnectionZipError, match=message) as caught:
        read_connection_zip(make(p12, trust))
    text = str(caught.value)
    assert PASSWORD not in text
    assert "wrong-password-1" not in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "name", ["../officer.p12", "keys\\officer.p12", "/officer.p12", "Nexus_CM.properties"]
)
def test_builder_refuses_a_keystore_name_that_is_not_a_plain_entry(
    p12: bytes, trust: bytes, name: str
) -> None:
    with pytest.raises(ConnectionZipError, match="keystore name"):
        _build(p12, trust, keystore_name=name)


def test_builder_refuses_a_keystore_the_password_does_not_open(p12: bytes, trust: bytes) -> None:
    wrong = Secret("wrong-password-1", "test")
    with pytest.raises(ConnectionZipError, match="wrong keystore password") as caught:
        _build(p12, trust, keystore_password=wrong)
    assert "wrong-password-1" not in str(caught.value)


@pytest.mark.parametrize(
    ("legacy", "expected"), [(False, "aes"), (True, "legacy")], ids=["modern", "legacy"]
)
def test_reencoded_keystore_has_the_asked_encryption_and_the_same_contents(
    p12: bytes, legacy: bool, expected: str
) -> None:
    password = Secret(PASSWORD, "test")
    converted = reencode_pkcs12(p12, password, legacy=legacy)
    assert pkcs12_encryption(converted) == expected
    before = pkcs12.load_pkcs12(p12, PASSWORD.encode())
    after = pkcs12.load_pkcs12(converted, PASSWORD.encode())
    assert after.cert == before.cert
    assert after.additional_certs == before.additional_certs
    assert after.key is not None
    assert before.key is not None
    assert after.key.public_key() == before.key.public_key()


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_lab_keystores_of_both_encryptions_are_recognised(pki: LabPKI, legacy: bool) -> None:
    officer = pki.officer
    keystore = pki.pkcs12(ServerCredentials(officer.cert, officer.key), PASSWORD, legacy=legacy)
    assert pkcs12_encryption(keystore) == ("legacy" if legacy else "aes")


def test_encryption_of_something_else_than_a_keystore_is_refused(trust: bytes) -> None:
    with pytest.raises(ValueError, match="not a PKCS#12"):
        pkcs12_encryption(trust)


def test_reencoding_with_a_wrong_password_says_so_without_it(p12: bytes) -> None:
    with pytest.raises(ValueError, match="wrong keystore password") as caught:
        reencode_pkcs12(p12, Secret("wrong-password-1", "test"), legacy=True)
    assert "wrong-password-1" not in str(caught.value)


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_client_cert_files_are_private_usable_and_removed(
    tmp_path: Path, p12: bytes, legacy: bool
) -> None:
    password = Secret(PASSWORD, "test")
    keystore = reencode_pkcs12(p12, password, legacy=legacy)
    with client_cert_files(keystore, password, tmp_path) as (cert, key):
        assert stat.S_IMODE(cert.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert cert.read_bytes().count(b"BEGIN CERTIFICATE") == 3  # officer, issuing, root
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key)
    assert list(tmp_path.iterdir()) == []


def test_client_cert_files_are_removed_after_an_error(tmp_path: Path, p12: bytes) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        client_cert_files(p12, Secret(PASSWORD, "test"), tmp_path),
    ):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_client_cert_files_refuse_a_wrong_password_and_leave_nothing(
    tmp_path: Path, p12: bytes
) -> None:
    with (
        pytest.raises(ValueError, match="wrong keystore password"),
        client_cert_files(p12, Secret("wrong-password-1", "test"), tmp_path),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


# --- Java .properties -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a=1\na=2\n", {"a": "2"}, id="later-key-wins"),
        pytest.param("a = b\\\n    c\n", {"a": "bc"}, id="continuation-drops-leading-blanks"),
        pytest.param("\\\n!x=1\n", {"!x": "1"}, id="continued-line-is-no-comment"),
        pytest.param("a=b\fc=d\n", {"a": "b\fc=d"}, id="form-feed-ends-no-line"),
        pytest.param("k\\ ey:v\n", {"k ey": "v"}, id="escaped-space-in-key"),
        pytest.param("a=\\ud83d\\ude42\n", {"a": "🙂"}, id="surrogate-pair"),
    ],
)
def test_properties_are_read_as_java_reads_them(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


def test_a_bad_escape_names_the_property_not_its_value() -> None:
    with pytest.raises(PropertiesError) as caught:
        parse_properties("cm.url=https://x\ncm.keystore.password=s3cr\\uZZet\n")
    assert str(caught.value) == "property 2 (the one after cm.url) has a bad \\u escape"
    assert "s3cr" not in str(caught.value)


def test_written_properties_are_ascii_and_read_back_the_same() -> None:
    values = {"k=: #!": " v#!\t é 🙂", "cm.url": "https://h/cm?x=a b"}
    data = format_properties(values, comment="made by a test")
    assert data.startswith(b"# made by a test\n")
    data.decode("ascii")
    assert parse_properties(data.decode("ascii")) == values
