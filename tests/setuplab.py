"""A lab set up by the suite's own setup run, and the means to break it: lab faults switched on
until their listeners show them, and verify runs read back check by check."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from smartid.idm import IdmClient
from smartid.lab.faults import FaultSet
from smartid.lab.state import LabState
from smartid.masking import Secret
from smartid.tls import ProbeTarget, observe
from smartid.verify import CheckOutcome, check_catalogue, read_junit
from tests.helpers import ROOT, Run, run_suite
from tests.lab import new_state, running_lab

CATALOGUE = check_catalogue(ROOT / "checks")
COMPONENTS = ("idm", "hermod", "cm")
_runs = itertools.count(1)


@dataclass(frozen=True)
class Verify:
    run: Run
    outcomes: list[CheckOutcome]

    def of(self, check: str) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.check == check]


@dataclass
class SetUpLab:
    state: LabState
    folder: Path
    env: dict[str, str]
    baseline: dict[str, tuple[object, ...]] = field(default_factory=dict)

    def idm(self) -> IdmClient:
        password = Secret(self.state.secrets()["admin_password"], "lab admin password")
        return IdmClient(
            self.state.endpoints()["idm_admin"],
            user="admin",
            password=password,
            ca_bundle=self.state.pki.ca_bundle,
        )

    def suite(self, *args: str) -> Run:
        # Allure results of these runs go to the test's folder, not to the project's reports/.
        allure = self.folder / f"allure-{next(_runs)}"
        return run_suite(*args, f"--alluredir={allure}", env=self.env)

    def verify(self, *checks: str) -> Verify:
        junit = self.folder / f"junit-{next(_runs)}.xml"
        selection = ["-k", " or ".join(checks)] if checks else []
        run = self.suite("-m", "verify", f"--junitxml={junit}", *selection)
        assert junit.exists(), run.output
        return Verify(run, read_junit(junit, CATALOGUE))

    def setup(self) -> None:
        run = self.suite("-m", "setup", "-q")
        assert run.returncode == 0, run.output


def _tls_summary(state: LabState, component: str) -> tuple[object, ...]:
    """What a client sees of a component's listener: enough to tell when a fault took effect."""
    officer = state.pki.officer
    target = ProbeTarget(
        name=component,
        host="127.0.0.1",
        port=state.ports()[component],
        server_name="localhost",
        ca_bundle=state.pki.ca_bundle,
        client_cert=(officer.cert, officer.key) if component == "cm" else None,
        connect_timeout=2,
        read_timeout=2,
    )
    facts = observe(target, ciphers=("kRSA",))
    leaf = facts.leaf.sha256_fingerprint if facts.leaf else None
    accepted = tuple(probe.accepted for probe in facts.ciphers)
    return facts.ok, facts.error_kind, leaf, tuple(sorted(facts.legacy.items())), accepted


@contextmanager
def set_up_lab(folder: Path) -> Iterator[SetUpLab]:
    """A lab on free ports, running, and set up by the suite's own setup run."""
    state = new_state(folder / "lab")
    env = {"SMARTID_LAB_STATE": str(state.path), "SMARTID_STATE": str(folder / "state")}
    with running_lab(state):
        ready = SetUpLab(state, folder, env)
        ready.setup()
        ready.baseline = {c: _tls_summary(state, c) for c in COMPONENTS}
        yield ready


def _changes_listener(fault: str) -> bool:
    kind = fault.split("-", 1)[1]
    # A revoked certificate is the same certificate: CM's CRL and OCSP read the faults per request.
    return kind in ("down", "tls1-accepted", "static-rsa-accepted") or (
        kind.startswith("cert-") and kind != "cert-revoked"
    )


def settle(lab: SetUpLab, faults: tuple[str, ...], on: bool) -> None:
    """Wait until every listener a fault changes shows it (or shows the baseline again)."""
    deadline = time.monotonic() + 20
    for component in sorted({f.split("-", 1)[0] for f in faults if _changes_listener(f)}):
        streak = 0
        while streak < 3:  # three observations in a row: a restarted listener has taken over
            seen = _tls_summary(lab.state, component)
            changed = seen != lab.baseline[component]
            streak = streak + 1 if changed == on else 0
            assert time.monotonic() < deadline, f"{component} still shows {seen} ({faults})"
            time.sleep(0.05)


@contextmanager
def faults_on(lab: SetUpLab, names: tuple[str, ...]) -> Iterator[None]:
    switch = FaultSet(lab.state.path)
    for name in names:
        switch.switch(name, True)
    try:
        settle(lab, names, on=True)
        yield
    finally:
        for name in names:
            switch.switch(name, False)
        settle(lab, names, on=False)


def explain(outcomes: list[CheckOutcome]) -> str:
    """One line per check case: what it said."""
    return "\n".join(f"{o.label}: {o.status}: {o.message}" for o in outcomes)
