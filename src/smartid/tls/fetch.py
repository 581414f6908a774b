"""The revocation I/O of the suite: CRLs and OCSP answers for presented chains, fetched once per
run per URL (per URL and certificate for OCSP), all concurrently, into `RevocationFacts`.

Every request goes through `smartid.http.PublicClient`: the suite's HTTP policy (bounded body,
no redirect, one deadline per request) with plain http allowed, as CRLs and OCSP are published,
no credential ever sent, and keep-alive connections that a run's questions to one CA share.
OCSP is asked by POST (RFC 6960 A.1) with a SHA-1 CertID, which
every responder must understand (RFC 5019 2.1.1); the judge matches answers of any hash.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from smartid.errors import SmartIDError, TargetError
from smartid.http import PublicClient, Timeouts
from smartid.tls.revocation import (
    ChainCertificate,
    Fetched,
    RevocationFacts,
    check_signature,
    issued_by,
    revocation_urls,
)

__all__ = ["ChainSource", "RevocationFetcher"]

# A CRL of a deployment's own CA is small; a large public CA's runs to a few MiB.
MAX_CRL_BYTES = 8 * 1024 * 1024
MAX_OCSP_BYTES = 64 * 1024
# Questions asked at once: enough for a deployment's (a CRL per CA, an OCSP answer per
# certificate: 7 for the lab's four endpoints) to start together as the chains arrive. Across a
# network each question is a connect and a request, so a second wave would cost both of its
# round trips again (bench/README.md, TLS-009). A thread starts only when no started one is
# idle; a connection, once its answer is in, serves the next question to its host.
_MAX_WORKERS = 8
# A connect that takes this long shows a network between the suite and the CA: there, each
# question that finds a connection opened ahead saves a round trip. Nearer (loopback, one
# host), answers come so fast that a run's questions share two or three connections as they
# finish, and opening one per question ahead costs more CPU than it saves (bench/README.md).
_FAR = 0.001
# A connection opened ahead gives up sooner than a question's connect (the question then makes
# its own, within the site's timeouts), so that a CA host that does not answer holds no thread
# of a run that never asks it for longer.
_AHEAD_CONNECT = 1.0
# The most subordinate CA certificates a bundle may hold for its hosts to be contacted ahead: a
# deployment's own bundle has a root and an issuing CA or two.
_AHEAD_CAS = 4


@dataclass(frozen=True)
class ChainSource:
    """One endpoint's presented chain (DER, leaf first) and the CA bundle that completes it."""

    target: str  # host:port
    chain: tuple[bytes, ...]
    ca_bundle: Path | None


@dataclass(frozen=True)
class _Job:
    url: str
    ocsp_request: bytes | None = None  # None: a CRL
    # Whose signature the answer should carry: checked as soon as it arrives, so that the judge
    # finds the check made (not part of the question: chains that ask it share the answer).
    issuer_der: bytes | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _Planned:
    subject: str
    der: bytes
    issuer_der: bytes | None
    crls: tuple[_Job, ...]
    ocsp: tuple[_Job, ...]


class RevocationFetcher:
    """Fetches what chains need as they arrive: `add` an endpoint's chain as soon as a handshake
    has it (while its other probes still run), and each CRL and OCSP question it needs starts at
    once unless another endpoint's chain asked it already; `result` waits for them all. Closing
    stops its threads and closes its connections."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self._observed_at = datetime.now(UTC)
        self._client = PublicClient(timeouts)
        self._pool = ThreadPoolExecutor(_MAX_WORKERS, "revocation")
        self._lock = threading.Lock()
        self._answers: dict[_Job, Future[Fetched]] = {}
        self._plans: dict[str, tuple[ChainSource, list[_Planned]]] = {}
        self._failed: BaseException | None = None

    def open_ahead(self, bundles: Iterable[Path | None], endpoints: int) -> None:
        """Open connections now, before any chain arrives, to each host that the CA certificates
        of `bundles` name for their own revocation (most CAs publish their subordinates' CRLs and
        OCSP at the same place): one for each question a run of `endpoints` endpoints is expected
        to ask at once (a leaf's OCSP answer each, its issuer's CRL, and the CA certificates' own
        questions). Across a network each question then costs a request, not a connect and a
        request. Nothing is sent; a connection that fails is left to the question. A bundle of
        more than `_AHEAD_CAS` subordinate CAs (a system store, not a deployment's own CA) names
        hosts that may never be asked, and none of them is contacted ahead."""
        urls: dict[tuple[str, str], str] = {}  # one URL per host, in order of appearance
        expected = endpoints + 1
        for bundle in dict.fromkeys(bundles):
            # A root is trusted as it is: nobody asks about it.
            subordinates = [cert for cert in _bundle(bundle) if cert.issuer != cert.subject]
            if len(subordinates) > _AHEAD_CAS:
                continue
            for cert in subordinates:
                crl_urls, ocsp_urls = revocation_urls(cert)
                expected += len(crl_urls) + len(ocsp_urls)
                for url in (*crl_urls, *ocsp_urls):
                    parts = urlsplit(url)
                    urls.setdefault((parts.scheme, parts.netloc), url)
        for url in urls.values():
            self._pool.submit(self._open_ahead, url, min(expected, _MAX_WORKERS) - 1)

    def _open_ahead(self, url: str, more: int) -> None:
        """One connection to `url`'s host, and `more` beside it where that connect showed a
        network between (`_FAR`)."""
        started = time.perf_counter()
        if _open_one(self._client, url) and time.perf_counter() - started >= _FAR:
            for _ in range(more):
                try:
                    self._pool.submit(_open_one, self._client, url)
                except RuntimeError:  # closed meanwhile: nothing is asked any more
                    return

    def add(self, name: str, source: ChainSource) -> None:
        """Start the fetches of `source`'s chain (called from any thread)."""
        try:
            plan = _plan(source)
        except BaseException as exc:  # raised again by result(), in the caller's thread
            with self._lock:
                self._failed = self._failed or exc
            return
        with self._lock:
            self._plans[name] = (source, plan)
            for job in sorted({j for p in plan for j in (*p.crls, *p.ocsp)}, key=repr):
                if job not in self._answers:
                    self._answers[job] = self._pool.submit(_fetch, self._client, job)

    def result(self) -> dict[str, RevocationFacts]:
        """Every endpoint's facts, in the order they were added, once its answers are in."""
        with self._lock:
            if self._failed is not None:
                raise self._failed
            plans = dict(self._plans)
            answers = dict(self._answers)
        fetched = {job: future.result() for job, future in answers.items()}
        return {
            name: RevocationFacts(
                target=source.target,
                observed_at=self._observed_at,
                certificates=tuple(
                    ChainCertificate(
                        subject=p.subject,
                        der=p.der,
                        issuer_der=p.issuer_der,
                        crls=tuple(fetched[j] for j in p.crls),
                        ocsp=tuple(fetched[j] for j in p.ocsp),
                    )
                    for p in plan
                ),
            )
            for name, (source, plan) in plans.items()
        }

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def __enter__(self) -> RevocationFetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _plan(source: ChainSource) -> list[_Planned]:
    certs = [x509.load_der_x509_certificate(der) for der in source.chain]
    planned = []
    for index, cert in enumerate(certs):
        if index > 0 and _issuer(cert, (), ()) is cert:
            continue  # a root sent along: the bundle's copy is the trusted one
        issuer = _issuer(cert, certs[index + 1 :], _bundle(source.ca_bundle))
        issuer_der = issuer.public_bytes(serialization.Encoding.DER) if issuer else None
        crl_urls, ocsp_urls = revocation_urls(cert)
        requests = tuple(
            _Job(url, _ocsp_request(cert, issuer) if issuer is not None else None, issuer_der)
            for url in ocsp_urls
        )
        planned.append(
            _Planned(
                subject=cert.subject.rfc4514_string(),
                der=source.chain[index],
                issuer_der=issuer_der,
                crls=tuple(_Job(url, None, issuer_der) for url in crl_urls),
                # Without the issuer no OCSP request can be built; the judge says so.
                ocsp=tuple(j for j in requests if j.ocsp_request is not None),
            )
        )
    return planned


def _issuer(
    cert: x509.Certificate,
    presented: Sequence[x509.Certificate],
    bundle: tuple[x509.Certificate, ...],
) -> x509.Certificate | None:
    """The certificate whose key issued `cert` (`cert` itself for a root), by name and key
    identifier as path building finds it (RFC 5280 4.2.1.1: the authority key identifier names
    the issuer's key); by name and signature where either carries no key identifier. The
    handshake's verification has checked the chain's signatures; the judge checks each CRL and
    OCSP answer against the key found here."""
    wanted = _key_id(cert, x509.AuthorityKeyIdentifier)
    for candidate in (cert, *presented, *bundle):
        if candidate.subject != cert.issuer:
            continue
        found = _key_id(candidate, x509.SubjectKeyIdentifier) if wanted is not None else None
        if found is not None:
            if found == wanted:
                return candidate
        elif issued_by(cert, candidate):
            return candidate
    return None


def _key_id(
    cert: x509.Certificate,
    kind: type[x509.AuthorityKeyIdentifier] | type[x509.SubjectKeyIdentifier],
) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier
    return value.digest


@lru_cache(maxsize=8)
def _bundle(path: Path | None) -> tuple[x509.Certificate, ...]:
    if path is None:
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError):
        return ()  # the TLS checks name an unreadable bundle


def _ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303
    return builder.build().public_bytes(serialization.Encoding.DER)


def _open_one(client: PublicClient, url: str) -> bool:
    try:
        return client.open_ahead(url, timeout=_AHEAD_CONNECT)
    except (ValueError, SmartIDError):  # a URL never fetched: its question says so
        return False


def _fetch(client: PublicClient, job: _Job) -> Fetched:
    try:
        if job.ocsp_request is None:
            answer = client.get(job.url, max_bytes=MAX_CRL_BYTES)
        else:
            answer = client.post(
                job.url, job.ocsp_request, "application/ocsp-request", max_bytes=MAX_OCSP_BYTES
            )
    except TargetError as exc:
        return Fetched(job.url, None, exc.observed, datetime.now(UTC))
    except (SmartIDError, ValueError) as exc:
        return Fetched(job.url, None, str(exc), datetime.now(UTC))
    if answer.status != 200:
        return Fetched(job.url, None, f"HTTP {answer.status}", datetime.now(UTC))
    if job.issuer_der is not None:  # while other probes still run, not after them
        check_signature(answer.body, job.issuer_der, crl=job.ocsp_request is None)
    return Fetched(job.url, answer.body, None, datetime.now(UTC))
