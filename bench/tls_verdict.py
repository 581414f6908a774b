"""What a TLS verdict costs, as ratios in one run on one local server (bench/README.md).

The floor is one bare verifying handshake with a reused SSLContext; a verdict is `observe()`
(verifying handshake + TLS 1.0 and 1.1 probes) followed by `judge_all()`; `openssl s_client` is
what an administrator would run by hand, one process per endpoint. A run of 4 endpoints
(`observe_many` + `judge_all`, with the probes a verify makes) is timed beside the same run with
revocation (TLS-009): every CRL and OCSP answer fetched once per run from the lab's CM
(`RevocationAuthority` on its plain-HTTP listener, in a process of its own as in the lab), then
`judge_revocation`; and beside one bare verifying handshake per endpoint, all at once (the
floor of endpoints judged together: "x bare"). The endpoints take CBC suites, as a default
Tomcat does; the same run against endpoints that refuse every probed family (as the lab's
components and a hardened Tomcat do) is a row of its own.

On loopback the run is CPU-bound: client and servers share the machine's cores, so each probe
costs what its handshake costs both ends. A verify talks to servers across a network, where a
probe mostly waits; `--rtt-ms` repeats the run of 4 endpoints with every connection (the TLS
endpoints' and CM's) behind a relay, in a process of its own, that delays each direction by half
the round trip, and each TCP connect costs one round trip.

    python bench/tls_verdict.py [-n 200] [--openssl-n 20] [--run-n 50] [--rtt-ms 0,2,10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartid.lab.faults import FaultSet
from smartid.lab.pki import LabPKI
from smartid.lab.revocation import PkiServer, RevocationAuthority
from smartid.lab.state import LabState
from smartid.site import TlsPolicy
from smartid.tls import ProbeTarget, judge_all, observe, observe_many
from smartid.tls.fetch import ChainSource, RevocationFetcher
from smartid.tls.revocation import forget_signature_checks, judge_revocation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lab import pki_only
from tests.tlsservers import tls_server  # the TLS engine tests' server


def _times(n: int, action: Callable[[], object]) -> list[float]:
    action()  # warm-up: imports, context caches, first connection
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _bare_handshake(port: int, context: ssl.SSLContext) -> Callable[[], object]:
    def run() -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            pass

    return run


def _verdict(target: ProbeTarget, policy: TlsPolicy, *, legacy: bool) -> Callable[[], object]:
    def run() -> None:
        facts = observe(target, legacy=legacy)
        if not facts.ok or judge_all(facts, policy):
            raise SystemExit(f"unexpected verdict: {facts.error or judge_all(facts, policy)}")

    return run


def _run_of_endpoints(
    targets: list[ProbeTarget], policy: TlsPolicy, *, revocation: bool, apart: bool = True
) -> Callable[[], object]:
    """What one verify run does for the TLS checks of `targets` (fixtures/checks.py): observe all
    in parallel with the probes a verify makes (TLS 1.0/1.1, client certificate, the policy's
    cipher families, the warned ones each apart), judge all; with `revocation`, also fetch every
    CRL and OCSP answer once (each chain's as soon as its handshake has it) and judge them.
    `apart=False` offers the warned families with the forbidden ones, as before 2026-12-04."""
    probes: dict[str, Any] = {
        "legacy": True,
        "client_auth": True,
        "ciphers": policy.cipher_families,
        "ciphers_apart": policy.cipher_families_apart if apart else (),
    }

    def run() -> None:
        if not revocation:
            observed = observe_many(targets, **probes)
            found = [f for facts in observed.values() for f in judge_all(facts, policy)]
        else:
            # As the verify does (fixtures/checks.py): each chain's CRLs and OCSP answers are
            # asked as soon as its handshake has it, while the other probes still run.
            forget_signature_checks()  # each run checks its signatures afresh, as a verify does
            bundles = {t.name: t.ca_bundle for t in targets}
            addresses = {t.name: t.address for t in targets}
            with RevocationFetcher() as fetcher:
                fetcher.open_ahead(bundles.values(), len(targets))

                def seen(name: str, chain: tuple[bytes, ...]) -> None:
                    fetcher.add(name, ChainSource(addresses[name], chain, bundles[name]))

                observed = observe_many(targets, **probes, on_chain=seen)
                found = [f for facts in observed.values() for f in judge_all(facts, policy)]
                for facts in fetcher.result().values():
                    found += judge_revocation(facts, policy)
        if found:
            raise SystemExit(f"unexpected verdict: {found}")

    return run


def _serve_cm(folder: Path, sock: socket.socket, stop: Any) -> None:
    server = PkiServer(sock, RevocationAuthority(LabState(folder), FaultSet(folder)))
    server.start()
    stop.wait()
    server.stop()


@dataclass
class _Lab:
    state: LabState
    # With a round trip: the relays' ports, the first CM's (the port its certificates name), and a
    # call that tells the relays where to forward (CM's port, then the endpoints').
    relay_ports: list[int]
    forward: Callable[[list[int]], None]


@contextlib.contextmanager
def _lab_cm_pki(folder: Path, *, endpoints: int, rtt: float) -> Iterator[_Lab]:
    """A lab state with its PKI, and CM's plain-HTTP CRL/OCSP listener in a process of its own,
    as the lab serves it (in the measuring process, its threads would share one GIL with the
    client's); with `rtt`, also the relays, in one more process: one in front of CM and one for
    each of `endpoints`."""
    state, named = pki_only(folder, "bench-officer-password")
    context = multiprocessing.get_context("fork")  # before any thread of this process starts
    stop = context.Event()
    receive, send = context.Pipe(duplex=False)
    relays: list[socket.socket] = []
    relay = None
    cm_sock = named
    if rtt > 0:
        relays = [named] + [_listener() for _ in range(endpoints)]
        cm_sock = _listener()
        relay = context.Process(target=_relays, args=(relays, receive, rtt / 2), daemon=True)
        relay.start()
    cm = context.Process(target=_serve_cm, args=(folder, cm_sock, stop), daemon=True)
    cm.start()
    cm_port = cm_sock.getsockname()[1]
    relay_ports = [sock.getsockname()[1] for sock in relays]
    for sock in [*relays, cm_sock]:
        sock.close()
    try:
        yield _Lab(state, relay_ports[1:], lambda ports: send.send([cm_port, *ports]))
    finally:
        stop.set()
        if relay is not None:
            relay.kill()
            relay.join(10)
        cm.join(10)
        if cm.is_alive():
            cm.kill()


async def _relay(listen: socket.socket, upstream: int, one_way: float) -> None:
    """Forward every connection to 127.0.0.1:`upstream`, each chunk `one_way` seconds later in
    each direction, in order; an end of stream goes on just as late."""
    loop = asyncio.get_running_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + one_way, data))
        except OSError:
            pass
        queue.put_nowait((loop.time() + one_way, b""))
        with contextlib.suppress(OSError):
            await sender

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(connected, sock=listen)
    async with server:
        await server.serve_forever()


def _relays(listeners: list[socket.socket], forward: Any, one_way: float) -> None:
    """The relay process: it learns where each listener forwards to (`forward`'s first message:
    one port per listener), then serves them all."""
    upstreams = forward.recv()

    async def main() -> None:
        relays = (
            _relay(sock, port, one_way) for sock, port in zip(listeners, upstreams, strict=True)
        )
        await asyncio.gather(*relays)

    asyncio.run(main())


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextlib.contextmanager
def _slow_connects(rtt: float) -> Iterator[None]:
    """Each TCP connect of this process (the probes', the bare handshakes', the CRL and OCSP
    fetches') costs one round trip, as across a network; the relay delays the rest."""
    if rtt <= 0:
        yield
        return
    connect = socket.create_connection

    def slow(*args: Any, **kwargs: Any) -> socket.socket:
        sock = connect(*args, **kwargs)
        time.sleep(rtt)
        return sock

    socket.create_connection = slow
    try:
        yield
    finally:
        socket.create_connection = connect


def _s_client(openssl: str, port: int, bundle: Path) -> Callable[[], object]:
    command = [
        openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
        "-CAfile", str(bundle), "-verify_return_error", "-brief",
    ]  # fmt: skip

    def run() -> None:
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="handshakes and verdicts (default 200)")
    parser.add_argument("--openssl-n", type=int, default=20, help="s_client runs (default 20)")
    parser.add_argument("--run-n", type=int, default=50, help="4-endpoint runs (default 50)")
    parser.add_argument(
        "--rtt-ms",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[0.0, 2.0, 10.0],
        help="round trips of the 4-endpoint runs, ms, comma-separated; 0 = loopback "
        "(default 0,2,10)",
    )
    args = parser.parse_args()
    _single(args)
    _runs(args)


def _runs(args: argparse.Namespace) -> None:
    for rtt_ms in args.rtt_ms:
        _run_of_four(args.run_n, rtt_ms / 1000)


def _run_of_four(run_n: int, rtt: float) -> None:
    names = ("idm", "hermod", "cm", "portal")
    policy = TlsPolicy()
    with (
        tempfile.TemporaryDirectory() as folder,
        _lab_cm_pki(Path(folder) / "lab", endpoints=2 * len(names), rtt=rtt) as lab,
        _slow_connects(rtt),
    ):
        pki = lab.state.pki
        creds = [pki.server(n) if n != "portal" else pki.issue_server("portal") for n in names]
        with contextlib.ExitStack() as stack:
            ports = [stack.enter_context(tls_server(c.cert, c.key)) for c in creds]
            # The same endpoints hardened: they refuse every family the policy probes (CBC too),
            # as the lab's components do.
            hardened = [
                stack.enter_context(tls_server(c.cert, c.key, ciphers=_AEAD)) for c in creds
            ]
            if rtt > 0:
                lab.forward([*ports, *hardened])
                ports, hardened = lab.relay_ports[: len(names)], lab.relay_ports[len(names) :]
            targets = [
                ProbeTarget(n, "127.0.0.1", p, "localhost", pki.ca_bundle)
                for n, p in zip(names, ports, strict=True)
            ]
            refusing = [
                ProbeTarget(n, "127.0.0.1", p, "localhost", pki.ca_bundle)
                for n, p in zip(names, hardened, strict=True)
            ]
            context = ssl.create_default_context(cafile=str(pki.ca_bundle))
            bare = _bare_run(ports, context)
            without = _run_of_endpoints(targets, policy, revocation=False)
            with_revocation = _run_of_endpoints(targets, policy, revocation=True)
            # Interleaved, so that the machine's drift weighs on all alike, in an order shuffled
            # each round: in a fixed order a run can inherit the work its predecessor left behind
            # (CM closing the connections of a run with revocation).
            together = _run_of_endpoints(targets, policy, revocation=False, apart=False)
            strict = _run_of_endpoints(refusing, policy, revocation=False)
            runs = {
                "bare": bare,
                "without": without,
                "with": with_revocation,
                "together": together,
                "hardened": strict,
            }
            samples: dict[str, list[float]] = {name: [] for name in runs}
            for action in runs.values():
                action()
            order = random.Random(run_n)
            for _ in range(run_n):
                for name, action in order.sample(list(runs.items()), len(runs)):
                    started = time.perf_counter()
                    action()
                    samples[name].append((time.perf_counter() - started) * 1000)
    base, floor = statistics.median(samples["without"]), statistics.median(samples["bare"])
    title = "run of 4 endpoints, " + (f"{rtt * 1000:g} ms round trip" if rtt else "loopback")
    print(f"\n{title:<40} {'N':>5} {'median ms':>10} {'p90 ms':>8} {'x':>5} {'x bare':>6}")
    labels = (
        ("bare", "bare verifying handshakes, in parallel"),
        ("without", "TLS verdicts"),
        ("with", "TLS verdicts + revocation (TLS-009)"),
        ("together", "TLS verdicts, warned families not apart"),
        ("hardened", "TLS verdicts, endpoints refusing CBC"),
    )
    for name, label in labels:
        median = statistics.median(samples[name])
        p90 = statistics.quantiles(samples[name], n=10)[-1]
        print(
            f"{label:<40} {run_n:>5} {median:>10.2f} {p90:>8.2f} {median / base:>5.2f} "
            f"{median / floor:>6.2f}"
        )


# What a hardened endpoint accepts of TLS 1.2: AEAD suites with forward secrecy only.
_AEAD = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _bare_run(ports: list[int], context: ssl.SSLContext) -> Callable[[], object]:
    """One bare verifying handshake per endpoint, all at once, as a run's verdicts are made:
    the floor of a run judged together."""
    handshakes = [_bare_handshake(port, context) for port in ports]

    def run() -> None:
        threads = [threading.Thread(target=handshake) for handshake in handshakes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return run


def _single(args: argparse.Namespace) -> None:

    with tempfile.TemporaryDirectory() as folder:
        pki = LabPKI(Path(folder) / "pki")
        pki.ensure("bench-officer-password")
        creds = pki.server("idm")
        policy = TlsPolicy()
        with tls_server(creds.cert, creds.key) as port:
            target = ProbeTarget("idm", "127.0.0.1", port, "localhost", pki.ca_bundle)
            context = ssl.create_default_context(cafile=str(pki.ca_bundle))
            cases: list[tuple[str, int, Callable[[], object]]] = [
                ("bare verifying handshake", args.n, _bare_handshake(port, context)),
                ("verdict, legacy probes off", args.n, _verdict(target, policy, legacy=False)),
                ("verdict (observe + judge_all)", args.n, _verdict(target, policy, legacy=True)),
            ]
            openssl = shutil.which("openssl")
            if openssl:
                s_client = _s_client(openssl, port, pki.ca_bundle)
                cases.append(("openssl s_client per endpoint", args.openssl_n, s_client))
            rows = [(name, n, _times(n, action)) for name, n, action in cases]

    floor = statistics.median(rows[0][2])
    print(f"{'case':<32} {'N':>5} {'median ms':>10} {'p90 ms':>8} {'x bare':>7}")
    for name, n, samples in rows:
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:<32} {n:>5} {median:>10.2f} {p90:>8.2f} {median / floor:>7.1f}")
    if not shutil.which("openssl"):
        print("openssl s_client: command not found, not measured")
    print("sslyze: not installed, not measured")


if __name__ == "__main__":
    main()
