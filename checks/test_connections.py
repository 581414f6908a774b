"""Connections: every endpoint answers, and each component accepts the others as the guide connected
them (docs/checks.md).

Read-only, apart from what the deployment itself offers to prove a connection: Hermod's ping
command (CONN-003) and IDM's own "Test connection" of the messaging server and of the CA (CONN-005,
CONN-006). None of them changes configuration.

PYTEST_DONT_REWRITE: checks report through their findings, not through asserts; a warm fork
server preloads this module (smartid.forkrun).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smartid.cm import cm_ping, judge_officer_proof, prove_officer
from smartid.deployment import Deployment
from smartid.errors import AuthenticationError
from smartid.hermod import HermodApi, HermodClient, HermodConfigError
from smartid.idm import IdmClient
from smartid.report import seam
from smartid.site import CertificateManagerSection, IdmSection, MessagingSection, Site
from smartid.tls import HandshakeFacts
from smartid.verify import Findings, IdmReadings, TlsEndpoint
from smartid.verify.depends import login_findings, reach_findings
from smartid.verify.readings import Officer

EPIC = "Acceptance checks"
STORY = "Connections"
DOC_URL = "https://doc.nexusgroup.com/pub/shared-credentials-start-up-guide"

pytestmark = [pytest.mark.verify, pytest.mark.health]


def _bundle(value: str | None) -> Path | None:
    return Path(value) if value else None


@pytest.mark.severity("blocker")
def test_endpoint_reachable(
    tls_endpoint: TlsEndpoint,
    tls_observations: dict[str, HandshakeFacts],
    site: Site,
    findings: Findings,
) -> None:
    """CONN-001 The endpoint accepts a TCP connection and answers in TLS within the site's
    timeouts."""
    facts = tls_observations[tls_endpoint.id]
    findings.extend(reach_findings(tls_endpoint, facts, site.tls))


@pytest.mark.severity("blocker")
@pytest.mark.needs("verified:idm")
def test_idm_admin_contract_answers(
    idm_readings: IdmReadings, declared_idm: IdmSection, findings: Findings
) -> None:
    """CONN-002 IDM Admin answers the site's administrator with the site's password (through
    the admin contract, or without it through the deploy API)."""
    found = login_findings(idm_readings.login_works, declared_idm, idm_readings.client.admin_url)
    findings.extend(found)


@pytest.mark.severity("critical")
@pytest.mark.needs("verified:hermod")
def test_hermod_accepts_ping_with_idm_key(
    deployment: Deployment, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """CONN-003 Hermod accepts a ping command sent with the IDM client's key (X-Api-Key)."""
    if declared_messaging.url is None:
        pytest.skip("the site gives no [messaging] url")
    client_id = declared_messaging.client_id
    where = f"Hermod {declared_messaging.url}"
    key, source = deployment.hermod_key()
    if key is None:
        findings.add(
            "no-key",
            f"no key of client '{client_id}' in the site, the site state or application.yml",
            "the IDM client's Hermod key",
            where,
        )
        return
    try:
        api_key = HermodClient(client_id=client_id, key=key).api_key
    except HermodConfigError:
        findings.add(
            "key",
            f"the key of client '{client_id}' from the {source} is not 64 hex characters",
            "a key as Hermod generates it",
            where,
        )
        return
    hermod = HermodApi(
        declared_messaging.url,
        ca_bundle=_bundle(declared_messaging.ca_bundle),
        timeouts=deployment.timeouts,
    )
    try:
        command = hermod.ping(api_key)
    except AuthenticationError as exc:
        findings.add(
            "refused",
            f"refuses the key of client '{client_id}' from the {source} ({exc.observed})",
            "the ping accepted",
            f"Hermod {exc.target}",
        )
        return
    seam.attach_json("Hermod ping", {"client": client_id, "key": source, "command": command})


@pytest.mark.severity("critical")
@pytest.mark.needs("verified:cm")
def test_cm_ping_names_the_officer(
    declared_cm: CertificateManagerSection,
    officer: Officer,
    deployment: Deployment,
    findings: Findings,
) -> None:
    """CONN-004 CM accepts the site's officer certificate over mutual TLS: its ping names that
    officer (where the site gives `ping_url`), or else it refuses a client without a certificate
    and answers the officer's first request."""
    if declared_cm.url is None:
        pytest.skip("the site gives no [certificate_manager] url")
    where = f"CM {declared_cm.url}"
    if officer.files is None:
        findings.add("officer", officer.problem or "none", "the site's officer keystore", where)
        return
    if declared_cm.ping_url is None:
        timeouts = deployment.timeouts
        proof = prove_officer(
            declared_cm.url,
            client_cert=officer.files,
            ca_bundle=_bundle(declared_cm.ca_bundle),
            server_name=declared_cm.server_name,
            timeout=timeouts.connect + timeouts.read,
        )
        seam.attach_json("CM mutual TLS", proof.to_dict())
        findings.extend(judge_officer_proof(proof))
        return
    ping = cm_ping(
        declared_cm.ping_url,
        ca_bundle=_bundle(declared_cm.ca_bundle),
        client=officer.files,
        timeouts=deployment.timeouts,
    )
    seam.attach_json("CM ping", dataclasses.asdict(ping))
    if (ping.officer, ping.serial) != (officer.common_name, officer.serial):
        findings.add(
            "officer",
            f"names officer '{ping.officer}' (serial {ping.serial})",
            f"the officer of {officer.source}: '{officer.common_name}' (serial {officer.serial})",
            where,
        )


@pytest.mark.severity("critical")
@pytest.mark.needs("login", "verified:hermod")
def test_messaging_round_trip_passes(
    contract: IdmClient, declared_messaging: MessagingSection, findings: Findings
) -> None:
    """CONN-005 IDM's Test connection of the messaging server passes: IDM's ping reaches Hermod
    with the token and Hermod's callback reaches IDM Operator as the hermod user."""
    result = contract.test_messaging_connection(declared_messaging.server)
    seam.attach_json("messaging test connection", result.model_dump())
    if not result.ok:
        findings.add(
            "round-trip",
            result.error or "the test connection failed",
            "IDM -> Hermod -> IDM Operator callback",
            f"messaging server '{declared_messaging.server}'",
        )


@pytest.mark.severity("critical")
@pytest.mark.needs("login", "verified:cm")
def test_ca_connection_test_passes(
    contract: IdmClient, declared_cm: CertificateManagerSection, findings: Findings
) -> None:
    """CONN-006 IDM's Test connection of the CA passes: IDM reaches CM over mutual TLS with the
    officer keystore of the uploaded connection zip."""
    result = contract.test_ca_connection(declared_cm.ca_name)
    seam.attach_json("CA test connection", result.model_dump())
    if not result.ok:
        findings.add(
            "test-connection",
            result.error or "the test connection failed",
            "IDM -> CM with the officer certificate",
            f"CA '{declared_cm.ca_name}'",
        )
