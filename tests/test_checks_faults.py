"""`pytest -m verify` fails on each fault of the lab with the right check (docs/lab.md,
docs/checks.md).

One fault at a time is switched on in a lab set up by the suite's own setup; the whole verify run
(every check, in a subprocess, as a user runs it) must fail, the check that guards what the fault
breaks must fail for exactly the faulted component and name its endpoint, and no check of another
component may fail. The faults that must not fail the run are certificates inside the warning
window (a server's, or the configuration signer's): they pass and show under "Smart ID warnings".
A test fails when a fault of the lab has no expectation here, so a new fault cannot be added
without showing which check catches it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smartid.lab.faults import FAULTS
from tests.helpers import ROOT
from tests.setuplab import COMPONENTS, SetUpLab, Verify, explain, faults_on, set_up_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e, pytest.mark.long]


@dataclass(frozen=True)
class Caught:
    """The fault fails `check` for `case` only (None: a check without cases; a tuple: each of
    those cases), and the failure names every one of `words`."""

    check: str
    case: str | tuple[str, ...] | None
    words: tuple[str, ...]
    # Cases of the same check the fault fails too: a fault of the deployment's CA (CM) reaches
    # every chain it signed.
    spread: tuple[str, ...] = ()

    @property
    def cases(self) -> set[str | None]:
        return set(self.case) if isinstance(self.case, tuple) else {self.case}


ENDPOINT = "{case} (localhost:"
WARNED = "expiring-soon"
DOWNLOAD = "IDM Admin's configuration download (https://localhost:"


def _component_expectations(c: str) -> dict[str, Caught]:
    return {
        f"{c}-cert-expired": Caught("TLS-003", c, (ENDPOINT, "expired on")),
        f"{c}-cert-wrong-host": Caught("TLS-001", c, (ENDPOINT, "is valid for wrong-host.example")),
        f"{c}-cert-untrusted": Caught("TLS-001", c, (ENDPOINT, "Foreign Root CA")),
        f"{c}-cert-weak-key": Caught("TLS-004", c, (ENDPOINT, "1024-bit RSA key")),
        f"{c}-cert-sha1": Caught("TLS-005", c, (ENDPOINT, "signed with sha1")),
        f"{c}-cert-cn-only": Caught(
            "TLS-001", c, (ENDPOINT, "has no subjectAltName; 'CN=localhost' names the host only")
        ),
        f"{c}-tls1-accepted": Caught("TLS-002", c, (ENDPOINT, "offering only TLSv1")),
        f"{c}-down": Caught("CONN-001", c, (ENDPOINT, "connection refused")),
        f"{c}-cert-revoked": Caught(
            "TLS-009", c, (ENDPOINT, "'CN=localhost,O=" + c + "' is revoked", "/cm/pki/")
        ),
    }


CAUGHT: dict[str, Caught] = {
    **{f: e for c in COMPONENTS for f, e in _component_expectations(c).items()},
    "cm-client-auth-not-required": Caught(
        "TLS-006", "cm", (ENDPOINT, "accepts a client without a certificate")
    ),
    "hermod-static-rsa-accepted": Caught(
        "TLS-007", "hermod", (ENDPOINT, "accepts AES", "in a TLS 1.2 handshake offering only kRSA")
    ),
    "cm-crl-stale": Caught(
        "TLS-009",
        "cm",
        (ENDPOINT, "the CRL at http://127.0.0.1:", "/cm/pki/issuing-ca.crl is stale"),
        spread=("idm", "hermod"),
    ),
    "hermod-callback-refused": Caught(
        "CONN-005", None, ("messaging server 'Smart ID Messaging'", "HTTP 403")
    ),
    "idm-hsts-missing": Caught(
        "TLS-008",
        ("idm", "idm-operator"),
        ("carries no Strict-Transport-Security header",),
    ),
    "idm-callback-anonymous": Caught(
        "AUTH-002", None, ("IDM Operator https://", "/ws/hermod/callback/ping", "anonymous")
    ),
    "idm-config-signer-expired": Caught(
        "CONF-006",
        None,
        (DOWNLOAD, "the signer 'CN=Smart ID Lab Config Zip Signer' expired on", "ago"),
    ),
    "idm-operator-stale-configuration": Caught(
        "CONF-004",
        "Lock user/Lock related credentials",
        (
            "task 'Lock related credentials', in IDM Operator's configuration download (https://",
            "data pool is 'none'",
        ),
    ),
    "idm-config-signature-broken": Caught(
        "CONF-006",
        None,
        (
            DOWNLOAD,
            # The first configuration object in name order is the one changed after signing.
            "entry 'cas/smart-id-certificate-manager.json' does not match its SHA-256 digest",
            "after signing",
        ),
    ),
}
FAILING = sorted(CAUGHT)


@dataclass(frozen=True)
class Warned:
    """The fault passes the run with one warning of `label` naming `words`."""

    label: str
    words: tuple[str, ...]


WARNINGS: dict[str, Warned] = {
    **{
        f"{c}-cert-{WARNED}": Warned(f"TLS-003[{c}]", (f"[warning] {c} (localhost:", "expires on"))
        for c in COMPONENTS
    },
    # Under the default [tls] revocation = "prefer" a responder that does not answer is a warning.
    "cm-ocsp-down": Warned(
        "TLS-009[cm]",
        ("[warning] cm (localhost:", "the OCSP responder at http://127.0.0.1:", "could not be"),
    ),
    "idm-config-signer-expiring-soon": Warned(
        "CONF-006", (f"[warning] {DOWNLOAD}", "the signer 'CN=Smart ID Lab", "expires on")
    ),
}
WARNING = sorted(WARNINGS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SetUpLab]:
    with set_up_lab(tmp_path_factory.mktemp("faults")) as ready:
        yield ready


@pytest.fixture(scope="module")
def verified(lab: SetUpLab) -> Callable[[str], Verify]:
    """The verify run with one fault on, made once per fault: the tests that judge one run in
    different ways (the check that catches the fault, the root cause it blocks others by) share
    it."""
    runs: dict[str, Verify] = {}

    def verify(fault: str) -> Verify:
        if fault not in runs:
            with faults_on(lab, (fault,)):
                runs[fault] = lab.verify()
        return runs[fault]

    return verify


def test_every_fault_of_the_lab_has_an_expectation() -> None:
    assert sorted(FAULTS) == sorted(FAILING + WARNING)


@pytest.mark.parametrize("fault", FAILING)
def test_verify_fails_on_the_fault_with_the_check_that_guards_it(
    verified: Callable[[str], Verify], fault: str
) -> None:
    caught = CAUGHT[fault]
    result = verified(fault)
    print(explain(result.outcomes))  # shown with -rP: what each check said
    assert result.run.returncode == 1, result.run.output
    assert "Traceback" not in result.run.output
    outcomes = result.of(caught.check)
    failing = {o.case for o in outcomes if o.status == "failed"}
    assert failing == caught.cases | set(caught.spread), explain(outcomes)
    failure = next(o for o in outcomes if o.status == "failed" and o.case in caught.cases)
    for words in caught.words:
        assert words.format(case=failure.case) in failure.message, explain([failure])
    # The fault is confined to its component: no check case of another component fails.
    others = [
        o
        for o in result.outcomes
        if o.case in COMPONENTS
        and o.case not in caught.cases
        and not (o.check == caught.check and o.case in caught.spread)
    ]
    assert [o.label for o in others if o.status == "failed"] == [], explain(others)
    # A blocked check names a check case of the same run that failed.
    failed = {o.label for o in result.outcomes if o.status == "failed"}
    for outcome in result.outcomes:
        if outcome.status == "blocked":
            root = outcome.message.removeprefix("blocked by ").split(":", 1)[0]
            assert root in failed, explain([outcome])


@dataclass(frozen=True)
class RootCause:
    """With the fault on, exactly `failed` fail; every check that needs what the fault took
    away is blocked by `root`; the Smart ID verify block starts with `root`."""

    root: str
    failed: frozenset[str]
    blocked: frozenset[str]


# The TLS checks of an endpoint that need it to answer (TLS-006 only for those that demand a
# client certificate).
_ENDPOINT_TLS = ("TLS-001", "TLS-002", "TLS-003", "TLS-004", "TLS-005", "TLS-007", "TLS-009")


def _tls(case: str, *checks: str) -> frozenset[str]:
    return frozenset(f"{check}[{case}]" for check in checks)


_IDM_READERS = frozenset(
    {"CONN-002", "CONN-005", "CONN-006", "AUTH-001", "AUTH-002", "AUTH-004", "DRIFT-001"}
    | {f"CONF-00{n}" for n in range(1, 7)}
    | {"TLS-008[idm]", "TLS-008[idm-operator]"}
)
ROOT_CAUSES = {
    "idm-down": RootCause(
        "CONN-001[idm]",
        frozenset({"CONN-001[idm]"}),
        _IDM_READERS | _tls("idm", *_ENDPOINT_TLS),
    ),
    "idm-cert-expired": RootCause(
        "TLS-001[idm]",
        frozenset({"TLS-001[idm]", "TLS-003[idm]"}),
        _IDM_READERS | _tls("idm", "TLS-002"),
    ),
    "idm-cert-untrusted": RootCause(
        "TLS-001[idm]", frozenset({"TLS-001[idm]"}), _IDM_READERS | _tls("idm", "TLS-002")
    ),
    "idm-cert-wrong-host": RootCause(
        "TLS-001[idm]", frozenset({"TLS-001[idm]"}), _IDM_READERS | _tls("idm", "TLS-002")
    ),
    "hermod-down": RootCause(
        "CONN-001[hermod]",
        frozenset({"CONN-001[hermod]"}),
        frozenset({"CONN-003", "CONN-005"})
        | _tls(
            "hermod", "TLS-001", "TLS-002", "TLS-003", "TLS-004", "TLS-005", "TLS-007", "TLS-009"
        ),
    ),
    "cm-down": RootCause(
        "CONN-001[cm]",
        frozenset({"CONN-001[cm]"}),
        frozenset({"CONN-004", "CONN-006"})
        | _tls(
            "cm",
            "TLS-001",
            "TLS-002",
            "TLS-003",
            "TLS-004",
            "TLS-005",
            "TLS-006",
            "TLS-007",
            "TLS-009",
        ),
    ),
}


def _check_of(label: str) -> str:
    return label.split("[", 1)[0]


@pytest.mark.parametrize("fault", sorted(ROOT_CAUSES))
def test_a_component_taken_away_fails_its_root_check_and_blocks_the_rest(
    verified: Callable[[str], Verify], fault: str
) -> None:
    expected = ROOT_CAUSES[fault]
    result = verified(fault)
    assert result.run.returncode == 1, result.run.output
    failed = {o.label for o in result.outcomes if o.status == "failed"}
    assert failed == expected.failed, explain(result.outcomes)
    blocked = {o.label for o in result.outcomes if o.status == "blocked"}
    # A check with cases (CONF-004's bindings) is named by its id in the expectation.
    named = {label if label in expected.blocked else _check_of(label) for label in blocked}
    assert named == set(expected.blocked), explain(result.outcomes)
    for outcome in result.outcomes:
        if outcome.status == "blocked":
            assert outcome.message.startswith(f"blocked by {expected.root}: "), outcome.message
    # Nothing else is lost: every other check ran and passed (or skipped for a site setting).
    others = [o for o in result.outcomes if o.label not in failed | blocked]
    assert {o.status for o in others} <= {"passed", "skipped"}, explain(others)
    block = result.run.stdout.split("= Smart ID verify =", 1)[1].split("\n")
    component = expected.root.split("[", 1)[1].rstrip("]")
    assert block[1:4] == [
        f"root causes ({len(expected.failed)} failed):",
        f"  {component}:",
        block[3],
    ], "\n".join(block)
    assert block[3].startswith(f"    {expected.root}: [blocker] {component} (localhost:"), block[3]
    assert block[3].endswith(f"[blocks {len(blocked)}]"), block[3]


@pytest.mark.parametrize("fault", WARNING)
def test_a_certificate_inside_the_warning_window_passes_with_a_warning(
    lab: SetUpLab, fault: str
) -> None:
    warned = WARNINGS[fault]
    with faults_on(lab, (fault,)):
        result = lab.verify()
    assert result.run.returncode == 0, explain(result.outcomes)
    assert [o.label for o in result.outcomes if o.status != "passed"] == []
    summary = result.run.stdout.split("Smart ID verify", 1)
    assert len(summary) == 2, result.run.output
    warnings = [line for line in summary[1].splitlines() if f"{warned.label}:" in line]
    assert len(warnings) == 1, summary[1]
    for words in warned.words:
        assert words in warnings[0], warnings[0]


@pytest.mark.usefixtures("shared_allure_worker")
def test_the_nightly_prints_each_failure_once_and_counts_the_blocked(
    lab: SetUpLab, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    with faults_on(lab, ("idm-cert-expired",)):
        done = subprocess.run(
            [sys.executable, "-m", "smartid.report.nightly", "run", f"--reports={reports}"],
            cwd=ROOT,
            env={**os.environ, **lab.env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    # The root cause's line, once; the checks it blocked are counted, not repeated.
    assert output.count("certificate verification failed: certificate has expired") == 1, output
    block = output.split("= Smart ID verify =", 1)[1]
    assert block.splitlines()[1:3] == ["root causes (2 failed):", "  idm:"], block
    assert block.splitlines()[3].startswith("    TLS-001[idm]: [blocker] idm (localhost:")
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["counts"]["failed"] == 2, summary["counts"]
    assert summary["counts"]["blocked"] == len(summary["blocked"]) >= 17, summary["counts"]
    assert {b["by"].split(":", 1)[0] for b in summary["blocked"]} == {"TLS-001[idm]"}
    assert sorted(f["id"] for f in summary["failed"]) == ["TLS-001", "TLS-003"]
    assert {f["category"] for f in summary["failed"]} == {"Trust / TLS"}
