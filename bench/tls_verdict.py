"""What a TLS verdict costs, as ratios in one run on one local server (bench/README.md).

The floor is one bare verifying handshake with a reused SSLContext; a verdict is `observe()`
(verifying handshake + TLS 1.0 and 1.1 probes) followed by `judge_all()`; `openssl s_client` is
what an administrator would run by hand, one process per endpoint.

    python bench/tls_verdict.py [-n 200] [--openssl-n 20]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from smartid.lab.pki import LabPKI
from smartid.site import TlsPolicy
from smartid.tls import ProbeTarget, judge_all, observe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    args = parser.parse_args()

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
