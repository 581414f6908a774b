"""Extra [[endpoints]] that misbehave are failed checks of one sentence each, never a hang and never
a traceback; a site of [[endpoints]] alone is valid and skips what it does not declare; a CA bundle
that is missing or not PEM stops the run as a site error (docs/site-file.md,
docs/architecture.md)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from smartid.verify import CheckOutcome, check_catalogue, read_junit
from tests.certs import Pki, write_chain
from tests.helpers import ROOT, Run, run_suite
from tests.servers import closed_port, https_server, silent_listener

pytestmark = pytest.mark.e2e

CATALOGUE = check_catalogue(ROOT / "checks")
TIMEOUT = 1.0


def _endpoint(name: str, port: int, bundle: Path) -> str:
    return (
        f'\n[[endpoints]]\nname = "{name}"\nurl = "https://127.0.0.1:{port}/"\n'
        f'server_name = "localhost"\nca_bundle = "{bundle}"\n'
    )


def _site(folder: Path, endpoints: str) -> Path:
    path = folder / "endpoints.toml"
    path.write_text(
        f'target = "remote"\n[tls]\nconnect_timeout = {TIMEOUT}\nread_timeout = {TIMEOUT}\n'
        + endpoints,
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def verified(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Run, float, list[CheckOutcome]]:
    folder = tmp_path_factory.mktemp("endpoints")
    pki = Pki()
    bundle = folder / "bundle.pem"
    bundle.write_bytes(pki.root.pem)
    good = write_chain(folder, "good", pki.leaf(), pki.issuing)
    with ExitStack() as stack:
        ports = {
            "good": stack.enter_context(https_server(*good)),
            "refused": closed_port(),
            "silent": stack.enter_context(silent_listener()),
            "plain": stack.enter_context(https_server(*good, tls=False)),
        }
        site = _site(folder, "".join(_endpoint(n, p, bundle) for n, p in ports.items()))
        junit = folder / "junit.xml"
        started = time.monotonic()
        run = run_suite(
            "-m",
            "verify",
            f"--site={site}",
            f"--junitxml={junit}",
            f"--alluredir={folder / 'allure'}",
            env={"SMARTID_STATE": str(folder / "state")},
            timeout=120,
        )
        elapsed = time.monotonic() - started
    return run, elapsed, read_junit(junit, CATALOGUE)


BAD = {
    "refused": "TCP connection failed: connection refused",
    "silent": f"no TLS handshake answer within {TIMEOUT:g} s",
    "plain": "(the peer does not speak TLS)",
}


def test_bad_endpoints_fail_without_a_traceback_or_a_hang(
    verified: tuple[Run, float, list[CheckOutcome]],
) -> None:
    run, elapsed, _ = verified
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output
    # One observation per endpoint, all at once: the silent one costs one read timeout.
    assert elapsed < 30, f"the run took {elapsed:.1f} s"


@pytest.mark.parametrize("endpoint", sorted(BAD))
def test_each_bad_endpoint_is_one_sentence_naming_it_and_what_was_seen(
    verified: tuple[Run, float, list[CheckOutcome]], endpoint: str
) -> None:
    _, _, outcomes = verified
    [outcome] = [o for o in outcomes if o.label == f"CONN-001[endpoint-{endpoint}]"]
    assert outcome.status == "failed"
    lines = outcome.message.strip().splitlines()
    assert len(lines) == 1, outcome.message
    assert f"endpoint-{endpoint} (127.0.0.1:" in lines[0]
    assert BAD[endpoint] in lines[0]
    # The TLS checks of the endpoint are blocked by that one sentence, not failures of their own.
    for check in ("TLS-001", "TLS-002", "TLS-003", "TLS-004", "TLS-005"):
        [blocked] = [o for o in outcomes if o.label == f"{check}[endpoint-{endpoint}]"]
        assert blocked.status == "blocked", blocked
        assert blocked.message.startswith(f"blocked by CONN-001[endpoint-{endpoint}]: [blocker] ")
        assert BAD[endpoint] in blocked.message


def test_good_endpoint_passes_every_tls_check(
    verified: tuple[Run, float, list[CheckOutcome]],
) -> None:
    _, _, outcomes = verified
    good = {o.check: o.status for o in outcomes if o.case == "endpoint-good"}
    assert good == {
        "CONN-001": "passed",
        "TLS-001": "passed",
        "TLS-002": "passed",
        "TLS-003": "passed",
        "TLS-004": "passed",
        "TLS-005": "passed",
        "TLS-007": "passed",
        # Its test certificate names no CRL or OCSP responder: under "prefer", a warning.
        "TLS-009": "passed",
    }


def test_checks_of_undeclared_components_are_skipped_with_the_reason(
    verified: tuple[Run, float, list[CheckOutcome]],
) -> None:
    _, _, outcomes = verified
    skipped = {o.label: o.message for o in outcomes if o.status == "skipped"}
    for check in ("CONN-002", "CONN-005", "AUTH-001", "CONF-001", "DRIFT-001"):
        assert "the site declares no [" in skipped[check], skipped
    assert "no endpoint of the site must demand a client certificate" in skipped["TLS-006[none]"]
    assert all(o.status in ("passed", "failed", "skipped", "blocked") for o in outcomes)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(None, "does not exist", id="missing file"),
        pytest.param(b"not a certificate\n", "is not a PEM certificate bundle", id="not PEM"),
    ],
)
def test_unusable_ca_bundle_is_a_site_error(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_bytes(content)
    site = _site(tmp_path, _endpoint("selfservice", closed_port(), bundle))
    run = run_suite(
        "-m", "verify", f"--site={site}", env={"SMARTID_STATE": str(tmp_path / "state")}
    )
    assert run.returncode == 4, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert errors == [f"ERROR: {site}: key 'endpoints[0].ca_bundle': file {bundle} {problem}"]
    assert "Traceback" not in run.output
