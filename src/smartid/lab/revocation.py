"""What the lab's CM publishes about revocation, over plain HTTP as a CA usually does:

    GET  /cm/pki/issuing-ca.crl    the issuing CA's CRL (DER), signed by the issuing CA
    GET  /cm/pki/root-ca.crl       the root CA's CRL (DER), signed by the root
    POST /cm/pki/ocsp              OCSP (RFC 6960 A.1), application/ocsp-request; answered by the
                                   CA that issued the certificate asked about, with its own key

Revoked are the serials of `revoked.json` in the state directory (`revoke()`) and, while the
fault `<c>-cert-revoked` is on, the server certificate component c presents. `cm-crl-stale`
serves CRLs whose nextUpdate has passed; `cm-ocsp-down` closes every OCSP connection unanswered.
A serial the CA never issued (no certificate of the lab's PKI folder) is "unknown" to OCSP.

Like a CA that issues its CRL on a schedule and an OCSP responder that answers from pre-produced
responses (RFC 5019 2.2), a signed CRL or answer is served again for up to `REUSE_SECONDS` while
nothing it was made from changed: the faults, the revocation list, the PKI folder's files.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPRequest

from smartid.files import write_private
from smartid.lab.faults import FaultSet
from smartid.lab.pki import COMPONENTS, CRL_PATHS, OCSP_PATH
from smartid.lab.state import LabState

__all__ = ["PkiServer", "RevocationAuthority", "revoke"]

_BASE = "/cm/pki"
REUSE_SECONDS = 30.0
_MAX_REQUEST = 16 * 1024
_log = logging.getLogger(__name__)
_CA = Literal["issuing", "root"]
_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def revoke(state: LabState, serial: int, when: datetime | None = None) -> None:
    """Put `serial` on the lab CM's revocation list (kept in the state directory)."""
    listed = _stored(state)
    listed[serial] = when or datetime.now(UTC)
    data = [{"serial": f"{s:x}", "revoked_at": t.isoformat()} for s, t in sorted(listed.items())]
    write_private(state.revoked_file, json.dumps(data, indent=2).encode(), 0o644)


def _stored(state: LabState) -> dict[int, datetime]:
    try:
        rows = json.loads(state.revoked_file.read_text(encoding="utf-8"))
        return {int(r["serial"], 16): datetime.fromisoformat(r["revoked_at"]) for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class RevocationAuthority:
    """CRLs and OCSP answers of the lab's two CAs, made on demand from the state and faults."""

    def __init__(self, state: LabState, faults: FaultSet) -> None:
        self.state, self.faults = state, faults
        self._lock = threading.Lock()
        # What a scan of the PKI folder found, by the folder's listing and file times.
        self._scanned: tuple[object, dict[bytes, frozenset[int]]] | None = None
        self._keys: dict[Path, tuple[int, _Key]] = {}
        # Signed answers by (what was asked, what they were made from), with when they were made.
        self._made: dict[tuple[object, ...], tuple[float, bytes]] = {}

    def _inputs(self) -> tuple[object, ...]:
        """What every answer is made from, as cheaply as it can be told apart: the faults that
        are on, the revocation list itself, the PKI folder's file times."""
        try:
            listed = self.state.revoked_file.read_bytes()
        except OSError:
            listed = None
        folder = self.state.pki.folder
        files = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.pem")))
        return (self.faults.active(), listed, files)

    def _reused(self, asked: tuple[object, ...], make: Any) -> bytes:
        key = (*asked, self._inputs())
        now = time.monotonic()
        with self._lock:
            made = self._made.get(key)
        if made is not None and now - made[0] < REUSE_SECONDS:
            return made[1]
        answer: bytes = make()
        with self._lock:
            if len(self._made) > 256:
                self._made.clear()
            self._made[key] = (now, answer)
        return answer

    def revoked(self) -> dict[int, datetime]:
        listed = _stored(self.state)
        on = self.faults.active()
        pki = self.state.pki
        for component in COMPONENTS:
            if f"{component}-cert-revoked" in on:
                leaf = x509.load_pem_x509_certificate(pki.server(component).cert.read_bytes())
                listed.setdefault(leaf.serial_number, leaf.not_valid_before_utc)
        return listed

    def _ca(self, which: _CA) -> tuple[x509.Certificate, _Key]:
        pki = self.state.pki
        cert_path, key_path = (
            (pki.issuing_cert, pki.issuing_key)
            if which == "issuing"
            else (pki.root_cert, pki.root_key)
        )
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), self._key(key_path)

    def _key(self, path: Path) -> _Key:
        stamp = path.stat().st_mtime_ns
        with self._lock:
            known = self._keys.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        with self._lock:
            self._keys[path] = (stamp, key)
        return key

    def _window(self) -> tuple[datetime, datetime]:
        now = datetime.now(UTC)
        if "cm-crl-stale" in self.faults.active():
            return now - timedelta(days=8), now - timedelta(days=1)
        return now - timedelta(minutes=1), now + timedelta(days=1)

    def crl(self, which: _CA) -> bytes:
        return self._reused(("crl", which), lambda: self._crl(which))

    def _crl(self, which: _CA) -> bytes:
        cert, key = self._ca(which)
        issued = self._issued_by(cert)
        last, next_ = self._window()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(last)
            .next_update(next_)
        )
        for serial, when in sorted(self.revoked().items()):
            if serial in issued:
                entry = x509.RevokedCertificateBuilder().serial_number(serial)
                builder = builder.add_revoked_certificate(entry.revocation_date(when).build())
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp(self, body: bytes) -> bytes:
        try:
            request = ocsp.load_der_ocsp_request(body)
        except ValueError:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        return self._reused(("ocsp", body), lambda: self._ocsp(request))

    def _ocsp(self, request: OCSPRequest) -> bytes:
        algorithm = request.hash_algorithm
        cas: tuple[_CA, ...] = ("issuing", "root")
        for which in cas:
            cert, key = self._ca(which)
            # The key hash names the CA (a request's name hash is of the certificate's issuer
            # field, which a builder takes from the certificate asked about).
            mine = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, algorithm).build()
            if mine.issuer_key_hash == request.issuer_key_hash:
                return self._answer(request, cert, key)
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

    def _answer(
        self,
        request: OCSPRequest,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    ) -> bytes:
        serial = request.serial_number
        revoked = self.revoked()
        if serial in revoked:
            status, when = ocsp.OCSPCertStatus.REVOKED, revoked[serial]
        elif serial in self._issued_by(cert):
            status, when = ocsp.OCSPCertStatus.GOOD, None
        else:
            status, when = ocsp.OCSPCertStatus.UNKNOWN, None
        now = datetime.now(UTC)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=serial,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=now - timedelta(minutes=1),
                next_update=now + timedelta(days=1),
                revocation_time=when,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
        )
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _issued_by(self, ca: x509.Certificate) -> frozenset[int]:
        """The serials of every certificate in the PKI folder that `ca` signed; scanned again
        only when a file of the folder changed."""
        paths = sorted(self.state.pki.folder.glob("*.pem"))
        listing = tuple((p.name, p.stat().st_mtime_ns) for p in paths)
        identity = ca.public_bytes(serialization.Encoding.DER)
        with self._lock:
            if self._scanned is not None and self._scanned[0] == listing:
                known = self._scanned[1].get(identity)
                if known is not None:
                    return known
            else:
                self._scanned = (listing, {})
        found = self._scan(ca, paths)
        with self._lock:
            if self._scanned is not None and self._scanned[0] == listing:
                self._scanned[1][identity] = found
        return found

    def _scan(self, ca: x509.Certificate, paths: list[Path]) -> frozenset[int]:
        serials = set()
        for path in paths:
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
                if cert.issuer == ca.subject and cert != ca:
                    cert.verify_directly_issued_by(ca)
                    serials.add(cert.serial_number)
            except (OSError, ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
        return frozenset(serials)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


class PkiServer:
    """The plain-HTTP listener of the lab's CM for CRLs and OCSP, on a pre-bound socket."""

    def __init__(self, sock: socket.socket, authority: RevocationAuthority) -> None:
        self._server = _Server(sock, authority)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="lab-cm-pki"
        )
        self._thread.daemon = True

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, sock: socket.socket, authority: RevocationAuthority) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__((host, port), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_name, self.server_port = host, port
        self.authority = authority


_CRLS = {f"{_BASE}/{path}": which for which, path in CRL_PATHS.items()}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "SmartIDLabCM/1"
    timeout = 10
    # Keep-alive, as CM's Tomcat answers: a client's questions share one connection. Every answer
    # has a Content-Length, and headers and body leave without waiting for the client's ACK.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        which = _CRLS.get(self.path.split("?", 1)[0])
        if which is None:
            self._send(404, b"not found", "text/plain")
            return
        self._send(200, self.server.authority.crl(which), "application/pkix-crl")  # type: ignore[arg-type]

    def do_POST(self) -> None:
        if self.path != f"{_BASE}/{OCSP_PATH}":
            self._send(404, b"not found", "text/plain")
            return
        if self.server.authority.faults.is_on("cm-ocsp-down"):
            self.close_connection = True  # the responder does not answer
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= _MAX_REQUEST:
            self.close_connection = True  # its body is not read: the connection ends here
            self._send(400, b"an OCSP request of 1 to 16384 bytes", "text/plain")
            return
        answer = self.server.authority.ocsp(self.rfile.read(length))
        self._send(200, answer, "application/ocsp-response")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("lab CM PKI %s: " + format, self.address_string(), *args)
