"""Waivers of a whole check and of one case (docs/site-file.md): `TLS-005` waives every case of
its check, `TLS-005[hermod]` only the case whose test id is `hermod`, and a waiver of the case
wins over one of the whole check; a waiver that names a check that does not exist, or a case its
check does not have for the site, stops the run before any test with one sentence and exit 4,
with and without pytest-xdist. The lab run that shows a case waiver leaving another case failing
is in tests/test_checks_outcomes.py."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from smartid.site import Site, Waiver, parse_site
from smartid.verify import check_catalogue
from smartid.verify.cases import check_cases, waiver_problems
from smartid.verify.findings import waiver_status
from tests.helpers import ROOT, run_suite

CATALOGUE = check_catalogue(ROOT / "checks")
TODAY = date(2026, 11, 25)
LATER = date(2026, 12, 31)
EARLIER = date(2026, 11, 24)

# A remote site with every kind of case: IDM Operator on its own listener, an endpoint that must
# demand a client certificate besides CM, and a seventh binding.
SITE = """
target = "remote"
[idm]
admin_url = "https://idm.test:8443/idm-admin"
operator_url = "https://idm.test:9443/idm-operator"
admin_password = { env = "P" }
[messaging]
url = "https://hermod.test:20400/hermod/rest"
callback_url = "https://idm.test:9443/idm-operator/ws/hermod"
hermod_password = { env = "P" }
[certificate_manager]
url = "https://cm.test:8444/cm"
[processes]
[[processes.bindings]]
process = "Lock user"
task = "Notify owner"
data_pool = "Batch order"
sub_process = "notify"
[[endpoints]]
name = "portal"
url = "https://portal.test/"
client_auth = "required"
"""


def _waiver(check: str, until: date = LATER, owner: str = "ops@example.com") -> Waiver:
    return Waiver(check=check, reason="renewal booked", owner=owner, until=until)


def _reason(owner: str, until: date = LATER) -> str:
    return f"waived: renewal booked ({owner}, until {until})"


@pytest.mark.parametrize(
    ("check", "waived", "case"),
    [
        pytest.param("TLS-005", "TLS-005", None, id="whole check"),
        pytest.param("TLS-005[hermod]", "TLS-005", "hermod", id="one case"),
        pytest.param(
            "CONF-004[Lock user/Load related credentials]",
            "CONF-004",
            "Lock user/Load related credentials",
            id="a binding",
        ),
    ],
)
def test_a_waiver_names_its_check_and_perhaps_one_case(
    check: str, waived: str, case: str | None
) -> None:
    waiver = _waiver(check)
    assert (waiver.check_id, waiver.case) == (waived, case)


@pytest.mark.parametrize(
    ("waivers", "case", "skip", "note"),
    [
        pytest.param(
            [_waiver("TLS-005[hermod]")], "hermod", _reason("ops@example.com"), None, id="its case"
        ),
        pytest.param([_waiver("TLS-005[hermod]")], "idm", None, None, id="other case"),
        pytest.param([_waiver("TLS-005[hermod]")], None, None, None, id="check without cases"),
        pytest.param(
            [_waiver("TLS-005")], "idm", _reason("ops@example.com"), None, id="every case"
        ),
        pytest.param([_waiver("TLS-005[idm]")], "idm-operator", None, None, id="not a prefix"),
        pytest.param([_waiver("TLS-004[hermod]")], "hermod", None, None, id="other check"),
        pytest.param(
            [_waiver("TLS-005[hermod]", EARLIER)],
            "hermod",
            None,
            "the waiver of ops@example.com (renewal booked) expired after 2026-11-24 and no "
            "longer applies",
            id="expired case waiver",
        ),
        pytest.param(
            [_waiver("TLS-005", date(2027, 6, 1), "all"), _waiver("TLS-005[hermod]", LATER, "one")],
            "hermod",
            _reason("one"),
            None,
            id="the case wins over the whole check",
        ),
        pytest.param(
            [_waiver("TLS-005[hermod]", EARLIER, "one"), _waiver("TLS-005", LATER, "all")],
            "hermod",
            _reason("all"),
            None,
            id="the whole check applies once the case waiver expired",
        ),
        pytest.param(
            [_waiver("TLS-005", EARLIER, "all"), _waiver("TLS-005[hermod]", EARLIER, "one")],
            "hermod",
            None,
            "the waiver of one (renewal booked) expired after 2026-11-24 and no longer applies",
            id="the expired case waiver is the one named",
        ),
        pytest.param(
            [_waiver("TLS-005[hermod]", LATER, "one"), _waiver("TLS-005", date(2027, 6, 1))],
            "idm",
            _reason("ops@example.com", date(2027, 6, 1)),
            None,
            id="another case has the whole check's",
        ),
    ],
)
def test_a_waiver_applies_to_its_case_or_to_every_case(
    waivers: list[Waiver], case: str | None, skip: str | None, note: str | None
) -> None:
    status = waiver_status(waivers, "TLS-005", case, TODAY)
    assert (status.skip_reason, status.expired_note) == (skip, note)


def _site(tmp_path: Path, waivers: list[str]) -> Site:
    path = tmp_path / "site.toml"
    tail = "".join(
        f'[[waivers]]\ncheck = "{check}"\nreason = "r"\nowner = "o"\nuntil = 2026-12-31\n'
        for check in waivers
    )
    path.write_text(SITE + tail, encoding="utf-8")
    return parse_site(path)


def test_every_check_has_the_cases_the_site_gives_it(tmp_path: Path) -> None:
    cases = check_cases(_site(tmp_path, []), CATALOGUE)
    endpoints = ("idm", "idm-operator", "hermod", "cm", "endpoint-portal")
    assert cases["TLS-001"] == endpoints
    assert cases["CONN-001"] == endpoints
    assert cases["TLS-006"] == ("cm", "endpoint-portal")
    assert cases["CONF-004"] is not None
    assert cases["CONF-004"][-2:] == (
        "Lock user/Load related credentials",
        "Lock user/Notify owner",
    )
    assert cases["AUTH-001"] is None


NOT_THERE = [
    pytest.param(
        "TLS-099",
        "waiver 1 names check 'TLS-099', which does not exist (checks: AUTH-001, AUTH-002, ",
        id="unknown check",
    ),
    pytest.param(
        "TLS-005[hermes]",
        "waiver 1 names case 'hermes' of TLS-005, which the site does not have (cases: idm, "
        "idm-operator, hermod, cm, endpoint-portal); did you mean 'hermod'?",
        id="unknown case",
    ),
    pytest.param(
        "TLS-006[idm]",
        "waiver 1 names case 'idm' of TLS-006, which the site does not have (cases: cm, "
        "endpoint-portal)",
        id="an endpoint that need not demand a client certificate",
    ),
    pytest.param(
        "CONF-004[Lock user/Lock credentials]",
        "did you mean 'Lock user/Lock related credentials'?",
        id="unknown binding",
    ),
    pytest.param(
        "AUTH-001[idm]",
        "waiver 1 names case 'idm' of AUTH-001, a check without cases; "
        'check = "AUTH-001" waives it',
        id="a check without cases",
    ),
]


@pytest.mark.parametrize(("check", "sentence"), NOT_THERE)
def test_a_waiver_of_a_check_or_case_that_is_not_there_is_a_site_error(
    tmp_path: Path, check: str, sentence: str
) -> None:
    site = _site(tmp_path, [check])
    problems = waiver_problems(site, CATALOGUE)
    assert len(problems) == 1, problems
    message = str(problems[0])
    assert message.startswith(f"{site.path}: waiver 1 names "), message
    assert sentence in message


def test_every_waiver_that_is_not_there_is_named_at_once_by_its_number(tmp_path: Path) -> None:
    site = _site(tmp_path, ["TLS-099", "TLS-005[hermod]", "TLS-005[hermes]"])
    problems = [p.problem for p in waiver_problems(site, CATALOGUE)]
    assert [p.split(" names ")[0] for p in problems] == ["waiver 1", "waiver 3"], problems


def test_the_example_sites_waivers_name_checks_and_cases_it_has() -> None:
    site = parse_site(ROOT / "sites" / "example.toml")
    assert [w.case for w in site.waivers] == ["hermod"]
    assert waiver_problems(site, CATALOGUE) == []


def test_the_cases_of_every_kind_are_accepted(tmp_path: Path) -> None:
    checks = [
        "TLS-005",
        "TLS-005[idm-operator]",
        "TLS-006[endpoint-portal]",
        "CONN-001[hermod]",
        "CONF-004[Lock user/Notify owner]",
    ]
    assert waiver_problems(_site(tmp_path, checks), CATALOGUE) == []


@pytest.mark.e2e
def test_the_cases_are_the_ones_pytest_collects(tmp_path: Path, suite_env: dict[str, str]) -> None:
    """The cases the waivers are checked against are the test ids of the collected checks; the
    site's waivers name a case of every kind, which the run accepts."""
    site = _site(tmp_path, ["TLS-006[endpoint-portal]", "CONF-004[Lock user/Notify owner]"])
    run = run_suite(
        "--co",
        "-q",
        "-m",
        "verify",
        f"--site={site.path}",
        "checks",
        env={**suite_env, "P": "x" * 16},
    )
    assert run.returncode == 0, run.output
    by_function = {(e.module, e.function): e.id for e in CATALOGUE}
    collected: dict[str, list[str]] = {}
    for line in run.stdout.splitlines():
        path, sep, name = line.partition("::")
        if not sep:
            continue
        function, _, case = name.partition("[")
        check = by_function[(Path(path).stem, function)]
        collected.setdefault(check, []).extend([case.removesuffix("]")] if case else [])
    expected = check_cases(site, CATALOGUE)
    assert collected == {check: list(cases or ()) for check, cases in expected.items()}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "workers", [pytest.param([], id="one process"), pytest.param(["-n", "2"], id="xdist")]
)
def test_a_waiver_that_is_not_there_stops_the_run_with_exit_4(
    tmp_path: Path, suite_env: dict[str, str], workers: list[str]
) -> None:
    site = _site(tmp_path, ["TLS-099", "TLS-005[hermes]"])
    run = run_suite(
        "-m", "verify", *workers, f"--site={site.path}", env={**suite_env, "P": "x" * 16}
    )
    assert run.returncode == 4, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: {site.path}: waiver 1 names check 'TLS-099', which does not exist (checks: "
        + ", ".join(sorted({e.id for e in CATALOGUE}))
        + ")",
        f"ERROR: {site.path}: waiver 2 names case 'hermes' of TLS-005, which the site does not "
        "have (cases: idm, idm-operator, hermod, cm, endpoint-portal); did you mean 'hermod'?",
    ], run.output
    assert "Traceback" not in run.output
    assert "collected" not in run.output
