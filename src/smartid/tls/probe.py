"""The only TLS I/O of the suite: handshakes against an endpoint, turned into `HandshakeFacts`.

One `observe()` makes, at most:

1. the verifying handshake (the verdict): site CA bundle or system store, hostname checked against
   `server_name`, SNI, the site's client certificate if any. It sends no application data.
2. only when (1) failed before any certificate arrived (a server speaking only TLS 1.0, say): an
   observe-only handshake offering TLS 1.0 and up, verification off, no client certificate and no
   data, so that the certificate can still be described. A handshake that fails verification keeps
   the chain the server presented (OpenSSL stores it before judging it), so none is needed then.
3. with `client_auth=True` and a client certificate configured: a verifying handshake without one,
   to learn whether the server demands a certificate (without one configured, (1) already is it).
4. with `legacy=True`: one handshake offering TLS 1.0 and 1.1 and nothing else; refused, both
   are refused (the common case); agreed, each version is then offered alone, side by side.
5. with `ciphers` (OpenSSL cipher strings, one family each): TLS 1.2-only handshakes at security
   level 0 (OpenSSL 3 offers no weak suite otherwise, and the probe would "pass" without testing
   anything), each offering the suites of every family not yet settled: a refusal settles all of
   them as refused, an agreed suite settles the families it belongs to as accepted and the next
   handshake offers the rest. One more, beside them, offers every suite: when all were refused,
   it tells a server that refuses these families from one that speaks only TLS 1.3. A family
   this OpenSSL has no suite of is recorded as not offered, never as refused. Each family of
   `ciphers_apart` (the verify's warned ones, which servers often take) is settled by offers of
   its own, beside the others': otherwise a server that takes one of its suites needs a second
   offer, a round trip later, to show it refuses the rest. Like (4) they verify nothing and send
   nothing.

(4) and (5) end at the server's first flight: its ServerHello names the version and suite it
agreed to (or its alert refuses them), so the probe closes the connection instead of sending its
key exchange and waiting a round trip for the server's Finished. They present no client
certificate: a server that demands one (CM) asks for it in that flight and judges it only in the
client's next one, which the probe never sends.

(3), (4) and (5) do not depend on (1), so they run beside it, each on its own connection: across
a network an endpoint costs the round trips of its longest probe instead of the sum of all. Their
answers are dropped when (1) found no TLS server to talk to (refused, reset or silent), as they
would have been refused or silent too.

The peer's verdict on a client certificate: under TLS 1.2 the server checks the client certificate
before it sends its own Finished, so the client's handshake fails when it is refused. Under TLS 1.3
the client's handshake completes first and a refusal only arrives afterwards, as an alert. Sending a
request to provoke it is not allowed (the probe sends no application data), so the probe waits
briefly for what the server sends by itself: an alert, EOF or reset means refused; a session ticket
(which a server only issues once it has accepted the client's Finished, certificate included), any
data, or silence until the wait ends means accepted. It waits only where the server asked for a
client certificate (a CertificateRequest in its flight, which OpenSSL's message callback reports):
a server that asked for none has none to refuse, and the handshake is its answer.
"""

from __future__ import annotations

import functools
import select
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from smartid.errors import PackageError
from smartid.http import describe_exception
from smartid.tls.facts import CertificateFacts, CipherProbe, ErrorKind, HandshakeFacts

__all__ = ["ProbeTarget", "observe", "observe_many"]

_LEGACY_VERSIONS = ("TLSv1", "TLSv1.1")

# How long to wait after a TLS 1.3 handshake for the server's verdict on the client certificate. A
# server that refuses answers within a round trip; one that accepts usually sends session tickets
# at once, which ends the wait early. Silence for this long counts as accepted.
_SETTLE_SECONDS = 0.5

_RESET_BEFORE_HANDSHAKE = "TCP connection failed: the peer reset it before the TLS handshake"

# What a probe ended at the server's first flight reads of it, at most (a certificate chain is a
# few kB; OpenSSL refuses a certificate list over 100 kB on its own), and per read.
_FLIGHT_LIMIT = 256 * 1024
_READ_SIZE = 16 * 1024

# OpenSSL's message callback (CPython's SSLContext._msg_callback, there since 3.8) reports the
# server's CertificateRequest: record type 22 (handshake), message type 13. Each handshake runs in
# a thread of its own, so what it saw is kept per thread.
_HANDSHAKE_RECORD, _CERTIFICATE_REQUEST = 22, 13
_CAN_WATCH = hasattr(ssl.SSLContext, "_msg_callback")
_seen = threading.local()

_ENCODING_DER: int = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]

# OpenSSL reasons that mean the peer does not speak TLS at all (plain HTTP on a TLS port, say).
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL",
     "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)  # fmt: skip


@dataclass(frozen=True)
class ProbeTarget:
    """One TLS endpoint and how to reach it."""

    name: str
    host: str
    port: int
    server_name: str
    ca_bundle: Path | None  # None: the system store
    client_cert: tuple[Path, Path] | None = None  # (certificate chain PEM, key PEM)
    connect_timeout: float = 5.0
    read_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"probe target {self.name}: port {self.port} is out of range")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError(f"probe target {self.name}: timeouts must be positive")

    @classmethod
    def from_url(
        cls,
        name: str,
        url: str,
        *,
        server_name: str | None = None,
        ca_bundle: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> ProbeTarget:
        """The target of an https:// URL; `server_name` defaults to the URL's host."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"probe target {name}: not an https:// URL with a host: {url}")
        return cls(
            name=name,
            host=parts.hostname,
            port=parts.port or 443,
            server_name=server_name or parts.hostname,
            ca_bundle=ca_bundle,
            client_cert=client_cert,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    @property
    def address(self) -> str:
        """host:port, with brackets around an IPv6 address."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def observe(
    target: ProbeTarget,
    *,
    legacy: bool = True,
    client_auth: bool = False,
    ciphers: Sequence[str] = (),
    ciphers_apart: Sequence[str] = (),
    on_chain: Callable[[tuple[bytes, ...]], None] | None = None,
) -> HandshakeFacts:
    """Handshake with `target` and return what was seen; never raises for the target's behaviour.
    `on_chain` gets the presented chain (DER, leaf first) as soon as the first handshake has it,
    before that handshake waits for the server's word on the client certificate and before the
    other probes are in: what needs only the chain (revocation) can start at once.

    Raises `PackageError` only when the local CA bundle or client certificate cannot be loaded.
    """
    started = time.perf_counter()
    observed_at = datetime.now(UTC)
    context = _verifying_context(target.ca_bundle, target.client_cert)
    # The probes after the verdict do not need its outcome, so they run beside it: each waits on
    # its own round trips, and an endpoint across a network costs the longest of them, not their
    # sum. Their answers count only where the verdict reached the server's TLS.
    workers = int(client_auth) + int(legacy) + int(bool(ciphers))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tls-probe") as pool:
        anonymous: Future[_Outcome] | None = None
        if client_auth and target.client_cert is not None:
            without = _verifying_context(target.ca_bundle, None)
            anonymous = pool.submit(_handshake, target, without, target.server_name, settle=True)
        versions = pool.submit(_probe_legacy, target) if legacy else None
        suites = (
            pool.submit(_probe_ciphers, target, tuple(ciphers), frozenset(ciphers_apart))
            if ciphers
            else None
        )
        # The verdict handshake waits for the server's word on the client certificate when one
        # is sent, or when it doubles as the "is a certificate demanded?" probe.
        wait = target.client_cert is not None or client_auth
        chain: tuple[CertificateFacts, ...] | None = None  # None: not announced yet

        def announce(der: tuple[bytes, ...]) -> None:
            nonlocal chain
            chain = _chain_facts(der)
            if on_chain is not None and chain:
                on_chain(tuple(c.der for c in chain if c.der))

        # A completed handshake announces its chain before its wait for the server's word on the
        # client certificate; a failed one's (or the observe-only one's) is announced after it.
        verdict = _handshake(target, context, target.server_name, settle=wait, on_chain=announce)
        if chain is None:
            chain_der = verdict.chain
            if not chain_der and verdict.error_kind in ("tls", "protocol"):
                chain_der = _handshake(target, _observe_only_context(), target.server_name).chain
            announce(chain_der)
        assert chain is not None
        reached = verdict.error_kind not in ("connect", "timeout")
        demanded: bool | None = None
        if client_auth:
            demanded = (verdict if anonymous is None else anonymous.result()).demanded
        accepted: dict[str, bool] = {}
        if versions is not None and reached:
            accepted = versions.result()
        tls12: bool | None = None
        families: tuple[CipherProbe, ...] = ()
        if suites is not None:
            answer = suites.result()
            if reached:
                tls12, families = answer
    return HandshakeFacts(
        target=target.address,
        server_name=target.server_name,
        observed_at=observed_at,
        ok=verdict.ok,
        error=verdict.error,
        error_kind=verdict.error_kind,
        protocol=verdict.protocol,
        cipher=verdict.cipher,
        chain=chain,
        client_cert_demanded=demanded,
        legacy=accepted,
        duration_ms=(time.perf_counter() - started) * 1000,
        tls12=tls12,
        ciphers=families,
    )


def observe_many(
    targets: Sequence[ProbeTarget],
    *,
    legacy: bool = True,
    client_auth: bool = False,
    ciphers: Sequence[str] = (),
    ciphers_apart: Sequence[str] = (),
    max_workers: int = 16,
    on_chain: Callable[[str, tuple[bytes, ...]], None] | None = None,
) -> dict[str, HandshakeFacts]:
    """`observe()` every target in parallel threads; the facts by target name. `on_chain` gets
    each target's name and chain as soon as it has one (see `observe`)."""
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError("probe targets must have unique names")
    if not targets:
        return {}
    workers = max(1, min(max_workers, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tls-probe") as pool:
        futures = {
            t.name: pool.submit(
                observe,
                t,
                legacy=legacy,
                client_auth=client_auth,
                ciphers=ciphers,
                ciphers_apart=ciphers_apart,
                on_chain=None if on_chain is None else functools.partial(on_chain, t.name),
            )
            for t in targets
        }
        return {name: future.result() for name, future in futures.items()}


def _probe_legacy(target: ProbeTarget) -> dict[str, bool]:
    """Whether the server accepts each legacy version. One hello offers them all: a server that
    refuses it refuses each (the common case: one handshake, not one per version). One that
    agrees to one of them is then offered each alone, side by side, to tell which. A hello
    without an answer (refused, reset or silent) counts as refused; observe() drops them all
    where the verdict found no TLS server either."""

    def hello(lowest: str, highest: str) -> _Outcome:
        return _hello(target, _legacy_context(lowest, highest), target.server_name)

    if not hello(_LEGACY_VERSIONS[0], _LEGACY_VERSIONS[-1]).ok:
        return dict.fromkeys(_LEGACY_VERSIONS, False)
    with ThreadPoolExecutor(len(_LEGACY_VERSIONS), thread_name_prefix="tls-legacy") as pool:
        alone = {version: pool.submit(hello, version, version) for version in _LEGACY_VERSIONS}
        return {version: future.result().ok for version, future in alone.items()}


def _probe_ciphers(
    target: ProbeTarget, families: tuple[str, ...], apart: frozenset[str] = frozenset()
) -> tuple[bool | None, tuple[CipherProbe, ...]]:
    """Whether the server accepts TLS 1.2 at all, and what it does with each family; None and
    nothing when an offer found no TLS server to answer it (refused, reset or silent).

    One TLS 1.2 handshake offers the suites of every family not yet settled: a server that refuses
    them all refuses each family (the common case: one handshake, not one per family), and one
    that agrees to a suite has accepted the families that suite belongs to, which leave the next
    offer. So a server takes one handshake more than the families it accepts. One more offers
    every suite, beside the others from the start: when the server refused every family, it
    tells one that refuses them from one that speaks no TLS 1.2 at all, without a round trip
    after the refusals (a well-configured server's case); otherwise it is not needed. The
    families `apart` are each settled so on their own, concurrently with the rest: a handshake
    more, a round trip less where the server takes one of them."""
    offered = {family: _tls12_context(family) for family in families}
    suites = {family: _tls12_suites(context) for family, context in offered.items() if context}
    offered_families = [family for family in families if family in suites]
    groups = [[f for f in offered_families if f not in apart]]
    groups += [[f] for f in offered_families if f in apart]
    groups = [group for group in groups if group]
    outcomes: dict[str, _Outcome] = {}
    speaks_tls12 = False
    every = _tls12_context(_EVERY_SUITE)
    assert every is not None  # every OpenSSL has some TLS 1.2 suite
    # The first group in this thread, the others and the offer of every suite beside it.
    with ThreadPoolExecutor(len(groups) or 1, thread_name_prefix="tls-ciphers") as pool:
        baseline = pool.submit(_hello, target, every, target.server_name)
        others = [pool.submit(_settle, target, group, suites) for group in groups[1:]]
        settled = [_settle(target, group, suites) for group in groups[:1]]
        settled += [future.result() for future in others]
        speaks_at_all = baseline.result()
    for found in settled:
        if found is None:
            return None, ()  # no TLS server to ask (the verdict then tells why), not a refusal
        group_outcomes, group_speaks = found
        outcomes.update(group_outcomes)
        speaks_tls12 = speaks_tls12 or group_speaks
    if not speaks_tls12 and not speaks_at_all.ok:
        return False, ()
    probes = []
    for family in families:
        result = outcomes.get(family)
        if result is None:
            probes.append(CipherProbe(family, offered=False))
        else:
            suite = result.cipher if result.ok else None
            probes.append(CipherProbe(family, True, result.ok, suite))
    return True, tuple(probes)


def _settle(
    target: ProbeTarget, families: list[str], suites: dict[str, frozenset[str]]
) -> tuple[dict[str, _Outcome], bool] | None:
    """Offer `families` round by round until each is settled: their outcomes, and whether the
    server agreed to any TLS 1.2 suite; None when an offer found no TLS server."""
    outcomes: dict[str, _Outcome] = {}
    speaks_tls12 = False
    left = list(families)
    while left:
        # By the suites' names, not the families' strings joined: one family's "!" exclusions
        # would remove another family's suites.
        union = ":".join(dict.fromkeys(suite for family in left for suite in suites[family]))
        context = _tls12_context(union)
        assert context is not None  # names of TLS 1.2 suites this OpenSSL offers
        outcome = _hello(target, context, target.server_name)
        if outcome.error_kind in ("connect", "timeout"):
            return None
        if not outcome.ok:
            outcomes.update((family, outcome) for family in left)
            break
        speaks_tls12 = True
        taken = [family for family in left if outcome.cipher in suites[family]] or left
        outcomes.update((family, outcome) for family in taken)
        left = [family for family in left if family not in taken]
    return outcomes, speaks_tls12


def _tls12_suites(context: ssl.SSLContext) -> frozenset[str]:
    """The TLS 1.2 suites (OpenSSL names) a family's context offers."""
    return frozenset(c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3")


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    error: str | None = None
    error_kind: ErrorKind | None = None
    protocol: str | None = None
    cipher: str | None = None
    chain: tuple[bytes, ...] = ()
    # The server's certificate was received and not refused, and then the server broke off: what
    # a server that demands a client certificate does to a client that has none (or a foreign one).
    refused_after_certificate: bool = False

    @property
    def demanded(self) -> bool | None:
        """Read as the outcome of a handshake without client certificate: was one demanded?"""
        if self.ok:
            return False
        return True if self.refused_after_certificate else None


def _connect(target: ProbeTarget) -> socket.socket | _Outcome:
    """A TCP connection to `target`, or the outcome that says why there is none."""
    try:
        return socket.create_connection((target.host, target.port), timeout=target.connect_timeout)
    except TimeoutError:
        return _Outcome(False, f"no TCP connection within {target.connect_timeout:g} s", "timeout")
    except OSError as exc:
        return _Outcome(False, f"TCP connection failed: {_os_phrase(exc)}", "connect")


def _handshake(
    target: ProbeTarget,
    context: ssl.SSLContext,
    server_name: str,
    *,
    settle: bool = False,
    on_chain: Callable[[tuple[bytes, ...]], None] | None = None,
) -> _Outcome:
    """One handshake and what it showed. With `settle`, a TLS 1.3 handshake then waits for the
    server's word on the client certificate (its tickets, or its refusal); `on_chain` gets the
    chain of a completed handshake before that wait, so that what needs only the chain can
    start a round trip earlier."""
    raw = _connect(target)
    if isinstance(raw, _Outcome):
        return raw
    with raw:
        raw.settimeout(target.read_timeout)
        # No handshake on wrap: a failed handshake must leave the socket (and the chain the server
        # presented before the failure) to read from.
        # A peer that reset the connection between accepting it and the handshake (a listener
        # going away) is told here, before ssl's wrap_socket meets it.
        try:
            raw.getpeername()
            _seen.certificate_request = False
            tls = context.wrap_socket(
                raw, server_hostname=server_name, do_handshake_on_connect=False
            )
        except OSError as exc:
            _close_orphaned_socket(exc)
            return _Outcome(False, _RESET_BEFORE_HANDSHAKE, "connect")
        with tls:
            try:
                tls.do_handshake()
            except TimeoutError:
                return _Outcome(
                    False, f"no TLS handshake answer within {target.read_timeout:g} s", "timeout"
                )
            except (ssl.SSLError, OSError) as exc:
                return _failed(exc, _presented_chain(tls))
            chain = _presented_chain(tls)
            protocol = tls.version()
            cipher = tls.cipher()
            if on_chain is not None:
                on_chain(chain)
            if settle and protocol == "TLSv1.3" and _asked_for_certificate():
                refusal = _refusal_after_handshake(tls, min(_SETTLE_SECONDS, target.read_timeout))
                if refusal is not None:
                    return _Outcome(
                        False, refusal, "tls", protocol, cipher[0] if cipher else None, chain, True
                    )
            return _Outcome(True, None, None, protocol, cipher[0] if cipher else None, chain)


def _hello(target: ProbeTarget, context: ssl.SSLContext, server_name: str) -> _Outcome:
    """A probe's handshake, ended at the server's first flight; `ok`: the server agreed to what
    `context` offers (`cipher` names the suite). The server's ServerHello and the rest of its
    flight are read until OpenSSL has written the client's next flight, which is not sent: the
    answer is in, and sending it would cost a round trip and the server's key exchange for
    nothing. One deadline bounds the whole exchange after the TCP connect, and at most
    `_FLIGHT_LIMIT` bytes are read. For TLS 1.0-1.2 contexts only (under TLS 1.3 the client's
    next flight is its Finished, after the whole handshake)."""
    raw = _connect(target)
    if isinstance(raw, _Outcome):
        return raw
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    deadline = time.monotonic() + target.read_timeout
    received = 0
    silent = f"no TLS handshake answer within {target.read_timeout:g} s"
    with raw:
        while True:
            try:
                tls.do_handshake()
                finished = True
            except ssl.SSLWantReadError:
                finished = False
            except ssl.SSLError as exc:
                return _failed(exc, _presented_chain(tls))
            flight = outgoing.read()
            if finished or (received and flight):
                # The server's first flight is in and OpenSSL answered it: the suite is agreed.
                cipher = tls.cipher()
                name = cipher[0] if cipher else None
                return _Outcome(True, cipher=name, chain=_presented_chain(tls))
            try:
                if flight:
                    raw.settimeout(max(deadline - time.monotonic(), 0.001))
                    raw.sendall(flight)
                raw.settimeout(max(deadline - time.monotonic(), 0.001))
                data = raw.recv(_READ_SIZE)
            except TimeoutError:
                return _Outcome(False, silent, "timeout")
            except OSError as exc:
                return _failed(exc, _presented_chain(tls))
            if not data:
                incoming.write_eof()  # the next do_handshake raises what the server's end means
                continue
            received += len(data)
            if received > _FLIGHT_LIMIT:
                return _Outcome(
                    False,
                    f"TLS handshake failed: the server sent over {_FLIGHT_LIMIT} bytes without "
                    "finishing its hello",
                    "tls",
                )
            incoming.write(data)


def _close_orphaned_socket(exc: BaseException) -> None:
    """ssl's wrap_socket (Python 3.11) raises when the peer resets the connection while the
    SSLSocket is being made, leaving that socket open; it would warn when collected. Close it."""
    frame = exc.__traceback__
    while frame is not None:
        made = frame.tb_frame.f_locals.get("self")
        if isinstance(made, ssl.SSLSocket):
            made.close()
        frame = frame.tb_next


def _failed(exc: BaseException, chain: tuple[bytes, ...]) -> _Outcome:
    phrase = describe_exception(exc)
    if isinstance(exc, ssl.SSLError) and exc.reason in _NOT_TLS_REASONS:
        return _Outcome(False, f"{phrase} (the peer does not speak TLS)", "protocol", chain=chain)
    if not phrase.startswith("TLS "):
        phrase = f"TLS handshake failed: {_os_phrase(exc)}"
    refused = bool(chain) and _peer_broke_off(exc)
    return _Outcome(False, phrase, "tls", chain=chain, refused_after_certificate=refused)


def _peer_broke_off(exc: BaseException) -> bool:
    """The server ended the handshake (alert, EOF, reset), rather than our side refusing it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError):
        return True
    reason = exc.reason if isinstance(exc, ssl.SSLError) else None
    return bool(reason) and str(reason).startswith(
        ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")
    )


def _refusal_after_handshake(tls: ssl.SSLSocket, budget: float) -> str | None:
    """Why the server broke off right after a TLS 1.3 handshake, or None if it did not."""
    deadline = time.monotonic() + budget
    tls.settimeout(0.0)
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([tls], [], [], remaining)
        if not readable:
            return None
        try:
            data = tls.recv(1)
        except ssl.SSLWantReadError:
            # Records were read but none carried data: session tickets (accepted) or a partial
            # record (keep waiting).
            session = tls.session
            if session is not None and session.has_ticket:
                return None
            continue
        except (ssl.SSLError, OSError) as exc:
            phrase = describe_exception(exc)
            return phrase if phrase.startswith("TLS ") else f"TLS handshake failed: {phrase}"
        if not data:
            return "TLS handshake failed: the peer closed the connection right after the handshake"
        return None
    return None


def _note_certificate_request(
    conn: object, direction: str, version: object, record: int, message: int, data: bytes
) -> None:
    if direction == "read" and record == _HANDSHAKE_RECORD and message == _CERTIFICATE_REQUEST:
        _seen.certificate_request = True


def _asked_for_certificate() -> bool:
    """Whether the server's flight in this thread's last handshake held a CertificateRequest
    (true when it cannot be known)."""
    return not _CAN_WATCH or getattr(_seen, "certificate_request", False)


def _os_phrase(exc: BaseException) -> str:
    phrase = describe_exception(exc)
    if phrase == type(exc).__name__:
        if isinstance(exc, ssl.SSLError):
            return exc.reason or "unknown TLS error"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror[:1].lower() + exc.strerror[1:]
    return phrase


def _presented_chain(tls: ssl.SSLSocket | ssl.SSLObject) -> tuple[bytes, ...]:
    """The chain as the server sent it (DER, leaf first), also after a failed handshake."""
    # Python 3.13 made this public as SSLSocket.get_unverified_chain(); on 3.11 and 3.12 the same
    # OpenSSL call (SSL_get_peer_cert_chain) sits on the private _sslobj. Failing both, the leaf.
    try:
        public = getattr(tls, "get_unverified_chain", None)
        if public is not None:
            return tuple(public() or ())
        private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
        if private is not None:
            return tuple(cert.public_bytes(_ENCODING_DER) for cert in private() or ())
        leaf = tls.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return ()
    return (leaf,) if leaf else ()


def _chain_facts(chain: tuple[bytes, ...]) -> tuple[CertificateFacts, ...]:
    facts = []
    for der in chain:
        try:
            facts.append(CertificateFacts.from_der(der))
        except ValueError:
            # A certificate that cannot be parsed cannot be described; the handshake error (the
            # verifying handshake refuses it too) says what went wrong.
            break
    return tuple(facts)


@functools.lru_cache(maxsize=64)
def _verifying_context(
    ca_bundle: Path | None, client_cert: tuple[Path, Path] | None
) -> ssl.SSLContext:
    # One context per (bundle, client certificate) per process: creating one costs about 0.5 ms
    # (more with the system store). The files are read once; a changed bundle needs a new process.
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise PackageError(str(ca_bundle), f"not a usable CA bundle ({_os_phrase(exc)})") from None
    # The verdict's handshake never agrees on less than TLS 1.2, whatever the interpreter's
    # OpenSSL defaults to (Debian's Python 3.11 leaves the minimum at "whatever OpenSSL supports");
    # TLS 1.0 and 1.1 are the legacy probes' to test, on their own contexts.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        _load_client_cert(context, client_cert)
    if _CAN_WATCH:
        context._msg_callback = _note_certificate_request  # type: ignore[attr-defined]
    return context


def _load_client_cert(context: ssl.SSLContext, client_cert: tuple[Path, Path]) -> None:
    try:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    except (OSError, ssl.SSLError) as exc:
        raise PackageError(
            str(client_cert[0]), f"not a usable client certificate and key ({_os_phrase(exc)})"
        ) from None


_legacy_lock = threading.Lock()


def _unverified_context(minimum: str, maximum: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # OpenSSL 3 offers TLS 1.0/1.1 (their signature schemes need SHA-1) only at security level 0;
    # without it a legacy probe never offers the version and "passes" without testing anything.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    # Naming TLSVersion.TLSv1/TLSv1_1 is deprecated on 3.11 and the suite treats warnings as errors;
    # the lock keeps threads from racing on the process-wide warning filters.
    with _legacy_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = _version(minimum)
        if maximum is not None:
            context.maximum_version = _version(maximum)
    return context


def _version(name: str) -> ssl.TLSVersion:
    return ssl.TLSVersion.TLSv1 if name == "TLSv1" else ssl.TLSVersion.TLSv1_1


@functools.cache
def _legacy_context(lowest: str, highest: str) -> ssl.SSLContext:
    """Offers the versions from `lowest` to `highest` only, to learn whether the server accepts
    one; verification off."""
    return _unverified_context(lowest, highest)


_EVERY_SUITE = "ALL:COMPLEMENTOFALL"


@functools.lru_cache(maxsize=128)
def _tls12_context(family: str) -> ssl.SSLContext | None:
    """Offers TLS 1.2 only, with only the suites of `family`, at security level 0; None when this
    OpenSSL has no TLS 1.2 suite of the family (RC4 and EXPORT are gone from OpenSSL 3, say)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.set_ciphers(f"{family}:@SECLEVEL=0")
    except ssl.SSLError:
        return None  # "No cipher can be selected."
    # get_ciphers() always lists the TLS 1.3 suites, which set_ciphers does not govern.
    if not any(c["protocol"] != "TLSv1.3" for c in context.get_ciphers()):
        return None
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@functools.cache
def _observe_only_context() -> ssl.SSLContext:
    """TLS 1.0 and up, verification off, no client certificate: sees any certificate."""
    return _unverified_context("TLSv1", None)
