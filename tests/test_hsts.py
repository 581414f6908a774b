"""HSTS of the browser UIs (TLS-008): the header is observed once, without credentials and
without following a redirect, and judged purely against `[tls] hsts_min_age` (RFC 6797)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartid.http import Timeouts
from smartid.verify.hsts import HstsFacts, judge_hsts, max_age, observe_hsts
from tests.certs import make_ca, make_leaf, write_chain
from tests.servers import closed_port, https_server

MIN_AGE = 15552000
URL = "https://idm.example/idm-admin/"


@pytest.mark.parametrize(
    ("header", "age"),
    [
        pytest.param("max-age=31536000", 31536000, id="plain"),
        pytest.param("max-age=31536000; includeSubDomains; preload", 31536000, id="directives"),
        pytest.param('Max-Age="600"', 600, id="quoted, any case"),
        pytest.param("includeSubDomains", None, id="no max-age"),
        pytest.param("max-age=1; max-age=2", None, id="two max-ages"),
        pytest.param("max-age=-5", None, id="negative"),
    ],
)
def test_max_age_is_read_as_rfc_6797_says(header: str, age: int | None) -> None:
    assert max_age(header) == age


@pytest.mark.parametrize(
    ("header", "key"),
    [
        pytest.param("max-age=31536000; includeSubDomains", None, id="a year"),
        pytest.param(f"max-age={MIN_AGE}", None, id="exactly the minimum"),
        pytest.param(None, "hsts-missing", id="missing"),
        pytest.param("max-age=86400", "hsts-max-age", id="a day"),
        pytest.param("includeSubDomains", "hsts-invalid", id="no max-age"),
    ],
)
def test_the_header_is_judged_against_the_sites_minimum(
    header: str | None, key: str | None
) -> None:
    findings = judge_hsts(HstsFacts(URL, 200, header), MIN_AGE, f"IDM Admin {URL}")
    assert [f.key for f in findings] == ([key] if key else [])
    assert all(f.severity == "minor" for f in findings)
    if key is not None:
        assert findings[0].required == (
            f"Strict-Transport-Security with max-age of at least {MIN_AGE} s ([tls] hsts_min_age)"
        )


def test_a_missing_header_names_the_status() -> None:
    [finding] = judge_hsts(HstsFacts(URL, 302, None), MIN_AGE, "IDM Admin")
    assert finding.observed == "the answer (HTTP 302) carries no Strict-Transport-Security header"


def test_an_answer_is_a_status_or_an_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        HstsFacts(URL, None, None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("hsts")
    ca = make_ca("HSTS Test CA")
    bundle = folder / "ca.pem"
    bundle.write_bytes(ca.pem)
    cert, key = write_chain(folder, "server", make_leaf(ca))
    return bundle, cert, key


@pytest.mark.parametrize("status", [200, 302], ids=["answer", "redirect to the login page"])
def test_the_answer_is_observed_without_following_a_redirect(
    server: tuple[Path, Path, Path], status: int
) -> None:
    bundle, cert, key = server
    with https_server(cert, key, status=status) as port:
        facts = observe_hsts(f"https://localhost:{port}/idm-admin/", bundle, Timeouts(2, 2))
    assert (facts.status, facts.header, facts.error) == (status, None, None)


def test_an_endpoint_that_does_not_answer_is_unobserved(server: tuple[Path, Path, Path]) -> None:
    port = closed_port()
    facts = observe_hsts(f"https://localhost:{port}/", server[0], Timeouts(1, 1))
    assert facts.status is None
    assert facts.error
    assert [f.key for f in judge_hsts(facts, MIN_AGE, "IDM Admin")] == ["unobserved"]
