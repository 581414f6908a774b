"""The public session for CRLs and OCSP answers (smartid.http.public_session): plain http is
allowed there and nowhere else, so it carries no credential, and it keeps the suite's HTTP
policy against servers that misbehave (DESIGN §12): no redirect followed, one deadline per
request, bounded bodies."""

from __future__ import annotations

import time

import pytest

from smartid import errors
from smartid.http import Timeouts, public_session
from tests.hostile import (
    Behaviour,
    answer,
    drip_body,
    endless_body,
    gzip_bomb,
    hostile_server,
    redirect,
)

TIMEOUTS = Timeouts(connect=1.0, read=1.0)


def test_a_crl_over_plain_http_is_read() -> None:
    crl = answer(200, b"0\x82crl", "application/pkix-crl")
    with hostile_server(crl) as server, public_session(TIMEOUTS) as session:
        response = session.request("GET", server.url("/ca.crl"))
    assert response.content == b"0\x82crl"


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"auth": ("user", "Secret-pw-1")}, id="basic auth"),
        pytest.param({"headers": {"Authorization": "Bearer Secret-pw-1"}}, id="authorization"),
        pytest.param({"headers": {"X-Api-Key": "Secret-pw-1"}}, id="api key"),
        pytest.param({"cookies": {"session": "Secret-pw-1"}}, id="cookie"),
    ],
)
def test_a_request_with_credentials_is_refused_before_it_is_sent(
    credentials: dict[str, object],
) -> None:
    with (
        hostile_server(answer(200, b"x")) as server,
        public_session(TIMEOUTS) as session,
        pytest.raises(ValueError, match="credentials"),
    ):
        session.request("GET", server.url("/ca.crl"), **credentials)
    assert server.requests == []


def test_a_user_in_the_url_is_refused_before_it_is_sent() -> None:
    with (
        hostile_server(answer(200, b"x")) as server,
        public_session(TIMEOUTS) as session,
        pytest.raises(ValueError, match="credentials"),
    ):
        session.request("GET", server.url("/ca.crl").replace("//", "//user:Secret-pw-1@", 1))
    assert server.requests == []


def test_a_redirect_is_not_followed() -> None:
    with (
        hostile_server(redirect(302, "http://127.0.0.1:9/elsewhere.crl")) as server,
        public_session(TIMEOUTS) as session,
        pytest.raises(errors.RedirectError),
    ):
        session.request("GET", server.url("/ca.crl"))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(endless_body(), id="endless body"),
        pytest.param(gzip_bomb(), id="gzip bomb"),
    ],
)
def test_a_body_over_the_bound_is_refused(behaviour: Behaviour) -> None:
    with (
        hostile_server(behaviour) as server,
        public_session(TIMEOUTS) as session,
        pytest.raises(errors.SmartIDError),
    ):
        session.request("GET", server.url("/ca.crl"), max_bytes=64 * 1024)


def test_a_dripping_answer_ends_at_the_deadline() -> None:
    began = time.monotonic()
    with (
        hostile_server(drip_body(0.2)) as server,
        public_session(TIMEOUTS) as session,
        pytest.raises(errors.SmartIDError),
    ):
        session.request("GET", server.url("/ca.crl"))
    # One deadline for the request (connect + read), not a timeout per byte read: 1000 bytes
    # at 0.2 s each would take minutes.
    assert time.monotonic() - began < 10
