"""The client for CRLs and OCSP answers (smartid.http.PublicClient): plain http is allowed there
and nowhere else, so it carries no credential, and it keeps the suite's HTTP policy against
servers that misbehave (DESIGN §12): no redirect followed, one deadline per request, bounded
bodies, one sentence naming the URL. It keeps connections alive between requests."""

from __future__ import annotations

import os
import re
import time

import pytest

from smartid import errors
from smartid.http import PublicClient, Timeouts
from tests.hostile import (
    Behaviour,
    Conn,
    answer,
    close_mid_body,
    drip_body,
    drip_headers,
    endless_body,
    gzip_bomb,
    handshake_drip,
    hostile_server,
    redirect,
)

TIMEOUTS = Timeouts(connect=1.0, read=1.0)


def test_a_crl_over_plain_http_is_read() -> None:
    crl = answer(200, b"0\x82crl", "application/pkix-crl")
    with hostile_server(crl) as server, PublicClient(TIMEOUTS) as client:
        got = client.get(server.url("/ca.crl"))
    assert (got.status, got.body) == (200, b"0\x82crl")


def test_an_ocsp_question_is_posted_with_its_type() -> None:
    with hostile_server(answer(200, b"0\x03ocsp")) as server, PublicClient(TIMEOUTS) as client:
        got = client.post(server.url("/ocsp"), b"0\x05ask", "application/ocsp-request")
    assert got.body == b"0\x03ocsp"
    (sent,) = server.requests
    assert (sent.method, sent.path, sent.body) == ("POST", "/ocsp", b"0\x05ask")
    assert sent.headers["content-type"] == "application/ocsp-request"


def test_questions_to_one_host_share_a_kept_connection() -> None:
    with hostile_server(answer(200, b"0\x01x")) as server, PublicClient(TIMEOUTS) as client:
        for _ in range(3):
            assert client.get(server.url("/ca.crl")).body == b"0\x01x"
        assert client.post(server.url("/ocsp"), b"q", "application/ocsp-request").status == 200
    assert len(server.requests) == 4
    assert server.connections == 1


def _answer_once_then_close(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc")
    conn.wait(0.05)
    conn.sock.close()  # the server drops the kept connection before the client's next question


def test_a_kept_connection_the_server_closed_is_opened_again() -> None:
    with hostile_server(_answer_once_then_close) as server, PublicClient(TIMEOUTS) as client:
        assert client.get(server.url("/a.crl")).body == b"abc"
        time.sleep(0.2)
        assert client.get(server.url("/b.crl")).body == b"abc"
    assert [r.path for r in server.requests] == ["/a.crl", "/b.crl"]
    assert server.connections == 2


def test_no_credential_is_ever_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # What other clients take from the environment (a proxy with a user, a netrc) is ignored.
    monkeypatch.setenv("HTTP_PROXY", "http://user:Secret-pw-1@127.0.0.1:9")
    monkeypatch.setenv("NETRC", os.devnull)
    with hostile_server(answer(200, b"x")) as server, PublicClient(TIMEOUTS) as client:
        client.get(server.url("/ca.crl"))
    (sent,) = server.requests
    assert not {"authorization", "cookie", "x-api-key", "proxy-authorization"} & set(sent.headers)
    assert not sent.holds("Secret-pw-1")


def test_a_user_in_the_url_is_refused_before_it_is_sent() -> None:
    with (
        hostile_server(answer(200, b"x")) as server,
        PublicClient(TIMEOUTS) as client,
        pytest.raises(ValueError, match="credentials"),
    ):
        client.get(server.url("/ca.crl").replace("//", "//user:Secret-pw-1@", 1))
    assert server.requests == []


@pytest.mark.parametrize("url", ["ldap://ca.example/crl", "file:///etc/passwd", "http:///x"])
def test_only_http_and_https_urls_are_asked(url: str) -> None:
    with PublicClient(TIMEOUTS) as client, pytest.raises(ValueError, match="http or https"):
        client.get(url)


def test_a_redirect_is_not_followed() -> None:
    with (
        hostile_server(redirect(302, "http://127.0.0.1:9/elsewhere.crl")) as server,
        PublicClient(TIMEOUTS) as client,
        pytest.raises(errors.RedirectError, match=r"elsewhere\.crl"),
    ):
        client.get(server.url("/ca.crl"))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "said"),
    [
        pytest.param(endless_body(), "larger than 64 KiB", id="endless body"),
        pytest.param(gzip_bomb(), "content encoding 'gzip'", id="gzip bomb"),
        pytest.param(close_mid_body(), "closed the connection mid-answer", id="cut short"),
    ],
)
def test_a_body_over_the_bound_or_broken_is_refused(behaviour: Behaviour, said: str) -> None:
    with (
        hostile_server(behaviour) as server,
        PublicClient(TIMEOUTS) as client,
        pytest.raises(errors.SmartIDError, match=said) as raised,
    ):
        client.get(server.url("/ca.crl"), max_bytes=64 * 1024)
    assert server.url("/ca.crl") in str(raised.value)


@pytest.mark.parametrize(
    "behaviour",
    [pytest.param(drip_body(0.2), id="body"), pytest.param(drip_headers(0.2), id="headers")],
)
def test_a_dripping_answer_ends_at_the_deadline(behaviour: Behaviour) -> None:
    began = time.monotonic()
    with (
        hostile_server(behaviour) as server,
        PublicClient(TIMEOUTS) as client,
        pytest.raises(errors.TimeoutError, match="within 2 s"),
    ):
        client.get(server.url("/ca.crl"))
    # One deadline for the request (connect + read), not a timeout per byte read: a drip of
    # 0.2 s per piece never trips a 1 s read timeout and would go on for minutes.
    assert time.monotonic() - began < 4


def test_a_refused_connection_is_one_sentence() -> None:
    with hostile_server(answer(200, b"x")) as server:
        url = server.url("/ca.crl")
    with PublicClient(TIMEOUTS) as client, pytest.raises(errors.ConnectError) as raised:
        client.get(url)
    assert str(raised.value).count(url) == 1
    assert "refused" in str(raised.value)


def test_a_connection_opened_ahead_sends_nothing_and_carries_the_next_question() -> None:
    with hostile_server(answer(200, b"0\x01x")) as server, PublicClient(TIMEOUTS) as client:
        assert client.open_ahead(server.url("/ca.crl"))
        time.sleep(0.05)
        assert (server.connections, server.requests) == (1, [])
        assert client.get(server.url("/ca.crl")).body == b"0\x01x"
        assert client.get(server.url("/other.crl")).status == 200
    assert server.connections == 1


def test_a_connection_that_cannot_be_opened_ahead_leaves_the_question_its_error() -> None:
    with hostile_server(answer(200, b"x")) as server:
        url = server.url("/ca.crl")
    with PublicClient(TIMEOUTS) as client:
        assert not client.open_ahead(url)
        with pytest.raises(errors.ConnectError, match=re.escape(url)):
            client.get(url)


def test_nothing_is_opened_ahead_to_a_url_the_suite_never_fetches() -> None:
    with PublicClient(TIMEOUTS) as client:
        with pytest.raises(ValueError, match="credentials"):
            client.open_ahead("http://user:secret@127.0.0.1:9/ca.crl")
        with pytest.raises(ValueError, match="http or https"):
            client.open_ahead("ldap://127.0.0.1/cn=ca")


def test_a_connection_opened_ahead_to_a_dripping_handshake_gives_up_at_its_timeout() -> None:
    # An https CA host that feeds its TLS handshake a byte at a time: the connection opened
    # ahead ends within the timeout it was given, not a timeout per byte.
    with handshake_drip(0.1) as port, PublicClient(TIMEOUTS) as client:
        started = time.monotonic()
        assert not client.open_ahead(f"https://127.0.0.1:{port}/ca.crl", timeout=0.5)
        assert time.monotonic() - started < 2.0
