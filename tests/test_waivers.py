"""Waivers of a whole check and of one case (docs/site-file.md): `TLS-005` waives every case of
its check, `TLS-005[hermod]` only the case whose test id is `hermod`, and a waiver of the case
wins over one of the whole check."""

from __future__ import annotations

from datetime import date

import pytest

from smartid.site import Waiver
from smartid.verify.findings import waiver_status

TODAY = date(2026, 11, 25)
LATER = date(2026, 12, 31)
EARLIER = date(2026, 11, 24)


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
