"""The lab's configuration export is a signed JAR (docs/lab.md): the manifest's lines are wrapped
at 72 bytes as the JAR spec says, the export is the same bytes for the same configuration, the
suite's verifier and the JDK's jarsigner both accept it, and its faults sign with an expired or
expiring signer or change an entry after signing, without changing stored configuration."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smartid.idm.signature import verify_jar
from smartid.lab.deploy import export_configuration
from smartid.lab.faults import export_signing
from smartid.lab.jarsign import manifest_header
from smartid.lab.package import read_package
from smartid.lab.state import LabState
from smartid.lab.store import Store

WHERE = "the lab's export"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> LabState:
    lab = LabState(tmp_path_factory.mktemp("jarsign") / "lab")
    lab.ensure()
    return lab


def _export(state: LabState, *faults: str) -> bytes:
    signing = export_signing(state.pki, frozenset(faults))
    return export_configuration(Store(state.database), 1, signing)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("short", id="one line"),
        pytest.param("x" * 200, id="three lines"),
        pytest.param("a" * 60 + "äöü" * 10, id="utf-8 at the boundary"),
    ],
)
def test_a_manifest_header_is_wrapped_at_72_bytes(value: str) -> None:
    header = manifest_header("Name", value)
    assert header.endswith(b"\r\n")
    lines = header[:-2].split(b"\r\n")
    assert all(len(line) <= 72 for line in lines)
    assert all(line.startswith(b" ") for line in lines[1:])
    for line in lines:
        line.decode("utf-8")  # no character is split between lines
    assert b"".join([lines[0], *(line[1:] for line in lines[1:])]).decode() == f"Name: {value}"


def test_the_export_is_a_signed_jar_that_leads_with_its_manifest(state: LabState) -> None:
    data = _export(state)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names[:3] == ["META-INF/MANIFEST.MF", "META-INF/CONFIGZI.SF", "META-INF/CONFIGZI.RSA"]
    assert names[3:] == sorted(names[3:])
    manifest = zipfile.ZipFile(io.BytesIO(data)).read("META-INF/MANIFEST.MF")
    assert manifest.startswith(b"Manifest-Version: 1.0\r\nCreated-By: ")
    assert b"\r\nName: processes/lock-user.bpmn20.xml\r\nSHA-256-Digest: " in manifest


def test_the_same_configuration_exports_the_same_bytes(state: LabState) -> None:
    assert _export(state) == _export(state)


def test_the_suite_verifies_the_export_and_names_the_lab_signer(state: LabState) -> None:
    result = verify_jar(_export(state), WHERE)
    assert result.verified, result.problems
    assert result.signer is not None
    assert result.signer.subject == "CN=Smart ID Lab Config Zip Signer"
    assert result.signer.issuer == "CN=Smart ID Lab Issuing CA"


def test_the_signed_export_is_still_a_package_the_lab_reads(state: LabState) -> None:
    package = read_package(_export(state))
    assert package.name == "configuration"
    assert {"Lock user", "Deactivate user"} <= {o.name for o in package.objects}


@pytest.mark.skipif(shutil.which("jarsigner") is None, reason="no JDK jarsigner installed")
def test_jarsigner_verifies_the_export(state: LabState, tmp_path: Path) -> None:
    jar = tmp_path / "configuration.jar"
    jar.write_bytes(_export(state))
    done = subprocess.run(
        ["jarsigner", "-verify", "-verbose", str(jar)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "jar verified" in done.stdout, done.stdout + done.stderr
    assert "sm " in done.stdout  # entries signed and in the manifest
    broken = tmp_path / "broken.jar"
    broken.write_bytes(_export(state, "idm-config-signature-broken"))
    refused = subprocess.run(
        ["jarsigner", "-verify", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "SHA-256 digest error for processes/deactivate-user.bpmn20.xml" in (
        refused.stdout + refused.stderr
    )


@pytest.mark.parametrize(
    ("fault", "low", "high"),
    [
        pytest.param("idm-config-signer-expired", None, timedelta(days=0), id="expired"),
        pytest.param(
            "idm-config-signer-expiring-soon", timedelta(days=9), timedelta(days=11), id="expiring"
        ),
    ],
)
def test_a_signer_fault_signs_with_its_variant(
    state: LabState, fault: str, low: timedelta | None, high: timedelta
) -> None:
    result = verify_jar(_export(state, fault), WHERE)
    assert result.verified, result.problems
    assert result.signer is not None
    left = result.signer.not_after - datetime.now(UTC)
    assert left < high
    if low is not None:
        assert left > low


def test_a_broken_signature_changes_the_first_object_after_signing(state: LabState) -> None:
    result = verify_jar(_export(state, "idm-config-signature-broken"), WHERE)
    assert result.problems == (
        f"{WHERE}: entry 'processes/deactivate-user.bpmn20.xml' does not match its SHA-256 "
        "digest in META-INF/MANIFEST.MF (changed after signing)",
    )


def test_export_faults_change_no_stored_configuration(state: LabState) -> None:
    store = Store(state.database)
    writes, before = store.audit_count(), _export(state)
    for fault in (
        "idm-config-signer-expired",
        "idm-config-signer-expiring-soon",
        "idm-config-signature-broken",
    ):
        assert _export(state, fault) != before
    assert _export(state) == before
    assert store.audit_count() == writes


def test_a_signer_whose_files_are_replaced_signs_with_the_new_key(tmp_path: Path) -> None:
    # The lab keeps a signer's loaded key until its files change (jarsign._signer).
    lab = LabState(tmp_path / "lab")
    lab.ensure()
    signer = lab.pki.config_signer
    before = verify_jar(_export(lab), WHERE)
    other = export_signing(lab.pki, frozenset({"idm-config-signer-expired"}))
    shutil.copyfile(other.cert, signer.cert)
    shutil.copyfile(other.key, signer.key)
    after = verify_jar(_export(lab), WHERE)
    assert before.signer is not None
    assert after.signer is not None
    assert after.verified, after.problems
    assert after.signer.serial != before.signer.serial
    assert after.signer.not_after < before.signer.not_after
