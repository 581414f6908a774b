"""Configuration export: IDM's configuration download, documented in both admin_api modes, is a
signed JAR as Nexus documents (signing is on by default), its signature verifies, and its signer
certificate is valid (docs/checks.md). The download is the one the run fetched for every check
that reads it; the signature is verified by smartid.idm.signature.

PYTEST_DONT_REWRITE: checks report through their findings, not through asserts; a warm fork
server preloads this module (smartid.forkrun).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from smartid.errors import SmartIDError
from smartid.idm.signature import issued_by_bundle, judge_signer, verify_jar
from smartid.report import seam
from smartid.site import IdmSection, Site
from smartid.verify import Findings

EPIC = "Acceptance checks"
STORY = "Configuration"
DOC_URL = "https://doc.nexusgroup.com/pub/sign-configuration-file-in-identity-manager"

pytestmark = [pytest.mark.verify]

SIGNED = "a signed JAR whose signature verifies (Nexus: IDM signs the configuration by default)"


@pytest.fixture
def download(
    declared_idm: IdmSection, request: pytest.FixtureRequest
) -> tuple[bytes, str] | SmartIDError:
    """The run's configuration download, or why it failed: Nexus documents that an expired
    signer blocks it, so a failed download is this check's finding, not an error."""
    try:
        fetched: tuple[bytes, str] = request.getfixturevalue("configuration_download")
    except SmartIDError as exc:
        return exc
    return fetched


def _observed(problem: str, where: str) -> str:
    """The problem without the download's name, which the finding's target carries."""
    return problem.removeprefix(where).removeprefix(":").strip()


@pytest.mark.severity("critical")
@pytest.mark.needs("login")
def test_configuration_download_signed(
    download: tuple[bytes, str] | SmartIDError,
    declared_idm: IdmSection,
    site: Site,
    findings: Findings,
) -> None:
    """CONF-006 IDM's configuration download is a signed JAR whose signature verifies, and its
    signer certificate is valid."""
    if isinstance(download, SmartIDError):
        findings.add(
            "download",
            f"the download failed: {download}",
            "a configuration download to judge (Nexus: an expired signer blocks it)",
            "IDM Admin's configuration download",
        )
        return
    data, where = download
    result = verify_jar(data, where)
    seam.attach_json("configuration signature", result.to_dict())
    for problem in result.problems:
        findings.add("signature", _observed(problem, where), SIGNED, where)
    signer = result.signer
    if signer is None:
        return
    findings.extend(judge_signer(signer, site.tls, where, now=datetime.now(UTC)))
    bundle = declared_idm.ca_bundle
    if bundle is not None and not issued_by_bundle(signer, Path(bundle).read_bytes()):
        findings.add(
            "signer-issuer",
            f"the signer '{signer.subject}' is issued by '{signer.issuer}', which is not in "
            f"{bundle}",
            "a signer issued by a CA of the site's [idm] ca_bundle (Nexus: the issuing CA must "
            "be in IDM's truststore)",
            where,
            severity="warning",
        )
