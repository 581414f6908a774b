"""How a check's result reads besides pass and fail (docs/site-file.md, docs/checks.md): a finding
inside the warning window passes and shows under "Smart ID warnings"; a waiver turns its check's
failure into a skip until its date has passed, and a waiver of one case only that case's; the
default-password probe runs only where the site allows it; without the admin contract the checks
that need it are skipped with that reason.

The lab here is in factory state: these checks judge TLS and the site file, not what setup made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from smartid.lab.faults import FaultSet
from smartid.lab.state import LabState
from smartid.tls import ProbeTarget, observe
from smartid.verify import CheckOutcome, check_catalogue, read_junit
from tests.helpers import ROOT, Run, run_suite
from tests.lab import new_state, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

CATALOGUE = check_catalogue(ROOT / "checks")
LAB_SITE = (ROOT / "sites" / "lab.toml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class FactoryLab:
    state: LabState
    folder: Path
    env: dict[str, str]

    def site(self, name: str, *, idm: str = "", tail: str = "") -> Path:
        """The lab site with lines added to its [idm] section and at its end."""
        text = LAB_SITE.replace("[idm]\n", f"[idm]\n{idm}", 1) + tail
        path = self.folder / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def verify(self, site: Path, *checks: str) -> tuple[Run, list[CheckOutcome]]:
        junit = self.folder / f"{site.stem}-junit.xml"
        run = run_suite(
            "-m",
            "verify",
            f"--site={site}",
            f"--junitxml={junit}",
            f"--alluredir={self.folder / f'{site.stem}-allure'}",
            "-k",
            " or ".join(checks),
            env=self.env,
        )
        assert junit.exists(), run.output
        return run, read_junit(junit, CATALOGUE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FactoryLab]:
    folder = tmp_path_factory.mktemp("outcomes")
    state = new_state(folder / "lab")
    env = {"SMARTID_LAB_STATE": str(state.path), "SMARTID_STATE": str(folder / "state")}
    with running_lab(state):
        yield FactoryLab(state, folder, env)


def _idm_leaf(state: LabState) -> str | None:
    target = ProbeTarget("idm", "127.0.0.1", state.ports()["idm"], "localhost", state.pki.ca_bundle)
    leaf = observe(target, legacy=False).leaf
    return leaf.sha256_fingerprint if leaf else None


@contextmanager
def idm_fault(lab: FactoryLab, name: str) -> Iterator[None]:
    """An IDM certificate fault, switched on until IDM presents the fault's certificate."""
    normal = _idm_leaf(lab.state)
    faults = FaultSet(lab.state.path)
    faults.switch(name, True)
    try:
        _await(lambda: _idm_leaf(lab.state) != normal, name)
        yield
    finally:
        faults.switch(name, False)
        _await(lambda: _idm_leaf(lab.state) == normal, f"{name} off")


def _await(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    streak = 0
    while streak < 3:  # three in a row: the restarted listener has taken over
        streak = streak + 1 if condition() else 0
        assert time.monotonic() < deadline, f"IDM's listener never showed {what}"
        time.sleep(0.05)


def _one(outcomes: list[CheckOutcome], label: str) -> CheckOutcome:
    found = [o for o in outcomes if o.label == label]
    assert len(found) == 1, outcomes
    return found[0]


def test_certificate_inside_the_warning_window_passes_and_warns(lab: FactoryLab) -> None:
    with idm_fault(lab, "idm-cert-expiring-soon"):
        run, outcomes = lab.verify(lab.site("warned"), "TLS-003")
    assert run.returncode == 0, run.output
    assert _one(outcomes, "TLS-003[idm]").status == "passed"
    summary = run.stdout.split("Smart ID verify", 1)
    assert len(summary) == 2, run.output
    warning = next(line for line in summary[1].splitlines() if "TLS-003[idm]" in line)
    assert "[warning] idm (localhost:" in warning
    assert "expires on" in warning
    assert "at least 30 days of validity left" in warning


@pytest.mark.parametrize(
    ("until", "waived"),
    [
        pytest.param(date.today() + timedelta(days=30), True, id="active waiver"),
        pytest.param(date.today(), True, id="waiver on its last day"),
        pytest.param(date.today() - timedelta(days=1), False, id="expired waiver"),
    ],
)
def test_waiver_turns_a_failure_into_a_skip_until_its_date(
    lab: FactoryLab, until: date, waived: bool
) -> None:
    waiver = (
        '\n[[waivers]]\ncheck = "TLS-003"\nreason = "certificate renewal is booked"\n'
        f'owner = "ops@example.com"\nuntil = {until.isoformat()}\n'
    )
    site = lab.site(f"waived-{'yes' if waived else 'no'}-{until:%Y%m%d}", tail=waiver)
    with idm_fault(lab, "idm-cert-expired"):
        run, outcomes = lab.verify(site, "TLS-003")
    idm = _one(outcomes, "TLS-003[idm]")
    # The check ran for every endpoint; the waiver covers only the failure.
    assert _one(outcomes, "TLS-003[hermod]").status == "passed"
    reason = f"waived: certificate renewal is booked (ops@example.com, until {until.isoformat()})"
    if waived:
        assert run.returncode == 0, run.output
        assert idm.status == "waived"
        assert reason in idm.message
        assert f"TLS-003[idm]: {reason}" in run.stdout  # the Smart ID verify block
    else:
        assert run.returncode == 1, run.output
        assert idm.status == "failed"
        assert "expired on" in idm.message
        note = "the waiver of ops@example.com (certificate renewal is booked) expired after"
        assert f"{note} {until.isoformat()}" in idm.message


def test_a_waiver_of_one_case_leaves_the_other_cases_to_fail(lab: FactoryLab) -> None:
    # IDM's expired certificate fails TLS-001[idm] and TLS-003[idm]: the waiver of TLS-003[idm]
    # waives that failure; the waiver of TLS-001[hermod] is for another case and waives nothing.
    waivers = "".join(
        f'\n[[waivers]]\ncheck = "{check}"\nreason = "renewal of {check}"\n'
        f'owner = "ops@example.com"\nuntil = {date.today() + timedelta(days=30)}\n'
        for check in ("TLS-003[idm]", "TLS-001[hermod]")
    )
    with idm_fault(lab, "idm-cert-expired"):
        run, outcomes = lab.verify(lab.site("case-waivers", tail=waivers), "TLS-001", "TLS-003")
    assert run.returncode == 1, run.output
    waived = _one(outcomes, "TLS-003[idm]")
    assert waived.status == "waived", waived
    assert "waived: renewal of TLS-003[idm] (ops@example.com, until " in waived.message
    failed = _one(outcomes, "TLS-001[idm]")
    assert failed.status == "failed", failed
    assert "waived" not in failed.message
    for label in ("TLS-001[hermod]", "TLS-003[hermod]", "TLS-001[cm]", "TLS-003[cm]"):
        assert _one(outcomes, label).status == "passed", label


@pytest.mark.parametrize(
    ("probe", "status"),
    [
        pytest.param("false", "skipped", id="probe_default_password = false"),
        pytest.param("true", "failed", id="probe_default_password = true"),
    ],
)
def test_default_password_is_probed_only_where_the_site_allows_it(
    lab: FactoryLab, probe: str, status: str
) -> None:
    # In factory state admin/admin still works: a probe that runs finds it.
    site = lab.site(f"probe-{probe}", idm=f"probe_default_password = {probe}\n")
    run, outcomes = lab.verify(site, "AUTH-001")
    outcome = _one(outcomes, "AUTH-001")
    assert outcome.status == status, run.output
    if status == "skipped":
        assert "probe_default_password is false for this site" in outcome.message
    else:
        assert "accepts user 'admin' with the vendor's default password" in outcome.message


def test_without_the_admin_contract_only_the_test_connections_are_skipped(
    lab: FactoryLab,
) -> None:
    # A factory lab refuses the site's password: CONN-002 fails with that cause, and the checks
    # that read IDM without the contract, through the deploy API, are blocked by it; only IDM's
    # test connections, which nothing but the contract can start, are skipped. The set-up case
    # is in tests/test_lab_documented.py.
    site = lab.site("no-contract", idm='admin_api = "none"\n')
    checks = ("CONF-001", "CONF-002", "CONF-003", "DRIFT", "CONN-002", "CONN-005", "CONN-006")
    run, outcomes = lab.verify(site, *checks, "AUTH-004")
    assert run.returncode == 1, run.output
    by_check = {o.check: o for o in outcomes}
    for check in ("CONN-005", "CONN-006"):
        assert by_check[check].status == "skipped", by_check[check]
        assert 'admin_api = "none"' in by_check[check].message
    assert "refuses user 'admin' with the site's password" in by_check["CONN-002"].message
    for check in ("CONF-001", "CONF-002", "CONF-003", "DRIFT-001", "AUTH-004"):
        assert by_check[check].status == "blocked", by_check[check]
        assert "blocked by CONN-002: [blocker] IDM Admin https://" in by_check[check].message
        assert "refuses user 'admin' with the site's password" in by_check[check].message
