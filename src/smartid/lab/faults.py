"""Faults: switchable overlays on how a lab component behaves (docs/lab.md).

A fault never changes stored configuration; switching it off restores the behaviour. The set of
faults that are on lives in `<state>/faults.json`, so the CLI can switch one while the lab runs and
the lab picks it up within a second (listeners whose TLS settings change are restarted).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smartid.errors import LabError
from smartid.files import write_private
from smartid.lab.jarsign import Signing
from smartid.lab.pki import COMPONENTS, CRL_PATHS, OCSP_PATH, LabPKI, ServerCredentials

__all__ = [
    "FAULTS",
    "FaultSet",
    "ListenerSettings",
    "export_signing",
    "listener_settings",
    "operator_unbound",
]

_NAMES = {"idm": "Identity Manager", "hermod": "Smart ID Messaging", "cm": "Certificate Manager"}


def _component_faults() -> dict[str, str]:
    faults: dict[str, str] = {}
    for c in COMPONENTS:
        name = _NAMES[c]
        faults[f"{c}-cert-expired"] = f"{name} presents an expired server certificate"
        faults[f"{c}-cert-expiring-soon"] = (
            f"{name} presents a server certificate that expires in 10 days (inside the default "
            "30-day warning window)"
        )
        faults[f"{c}-cert-wrong-host"] = (
            f"{name} presents a certificate for wrong-host.example, not localhost"
        )
        faults[f"{c}-cert-untrusted"] = (
            f"{name} presents a certificate from an untrusted CA (Foreign Root CA)"
        )
        faults[f"{c}-cert-weak-key"] = f"{name} presents a certificate with an RSA-1024 key"
        faults[f"{c}-cert-sha1"] = f"{name} presents a SHA-1-signed server certificate"
        faults[f"{c}-cert-cn-only"] = (
            f"{name} presents a certificate without subjectAltName, naming localhost only in "
            "its CN (which OpenSSL still matches, RFC 9525 clients do not)"
        )
        faults[f"{c}-tls1-accepted"] = f"{name} accepts TLS 1.0 and TLS 1.1 handshakes"
        faults[f"{c}-down"] = f"{name} does not listen (connection refused)"
        faults[f"{c}-cert-revoked"] = (
            f"the lab's Certificate Manager has revoked {name}'s server certificate (its CRL "
            "lists it, its OCSP responder says revoked)"
        )
    return faults


FAULTS: dict[str, str] = {
    **_component_faults(),
    "cm-client-auth-not-required": "Certificate Manager accepts clients without a certificate",
    "hermod-static-rsa-accepted": (
        "Smart ID Messaging presents an RSA certificate and accepts TLS 1.2 suites with static "
        "RSA key exchange (kRSA: no forward secrecy)"
    ),
    "cm-crl-stale": (
        "Certificate Manager serves CRLs whose nextUpdate has passed (published 8 days ago, "
        "due 1 day ago)"
    ),
    "cm-ocsp-down": (
        "Certificate Manager's OCSP responder does not answer (it closes every connection)"
    ),
    "hermod-callback-refused": (
        "Identity Manager Operator refuses Hermod's callbacks (HTTP 403), so the messaging "
        "round trip breaks on its way back"
    ),
    "idm-hsts-missing": (
        "Identity Manager Admin and Operator answer without a Strict-Transport-Security header"
    ),
    "idm-callback-anonymous": (
        "Identity Manager Operator's Hermod callback endpoint accepts anonymous calls"
    ),
    "idm-config-signer-expired": (
        "Identity Manager's configuration download is signed by an expired signer certificate "
        "(the lab still serves it, so that the suite can show the signer)"
    ),
    "idm-config-signer-expiring-soon": (
        "Identity Manager's configuration download is signed by a signer certificate that "
        "expires in 10 days (inside the default 30-day warning window)"
    ),
    "idm-operator-stale-configuration": (
        "Identity Manager Operator's configuration download shows Lock user's task 'Lock "
        "related credentials' unbound, as the package brought it: the binding made in IDM "
        "Admin has not reached the runtime"
    ),
    "idm-config-signature-broken": (
        "an entry of Identity Manager's configuration download is changed after signing, so "
        "that its digest no longer matches the manifest"
    ),
}


class FaultSet:
    """The faults switched on for one state directory. The file is read on every ask (a few
    bytes): file times are too coarse to tell two switches in one clock tick apart."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "faults.json"
        self._seen: str | None = None
        self._on: frozenset[str] = frozenset()

    def active(self) -> frozenset[str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._seen, self._on = None, frozenset()
            return self._on
        except OSError:
            return self._on
        if text != self._seen:
            try:
                names = json.loads(text)
                self._on = frozenset(n for n in names if n in FAULTS)
            except (ValueError, TypeError):
                return self._on  # a half-written file: keep the last good set
            self._seen = text
        return self._on

    def is_on(self, name: str) -> bool:
        return name in self.active()

    def switch(self, name: str, on: bool) -> None:
        if name not in FAULTS:
            raise LabError(f"unknown fault '{name}'; 'smartid-lab faults' lists them")
        names = set(self.active())
        names = names | {name} if on else names - {name}
        write_private(self.path, json.dumps(sorted(names)).encode())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ListenerSettings:
    """How one component's listener is set up, derived from the faults that are on."""

    up: bool
    cert: Path
    key: Path
    minimum_version: ssl.TLSVersion
    ciphers: str | None
    require_client_cert: bool = True


_ISSUE_LOCK = threading.Lock()


def _usable(existing: ServerCredentials, fault: str, now: datetime) -> bool:
    """Whether a fault variant issued earlier still shows the fault."""
    if not (existing.cert.exists() and existing.key.exists()):
        return False
    if fault != "expiring-soon":
        return True
    # "10 days left" must stay true however old the state directory is.
    leaf = x509.load_pem_x509_certificate(existing.cert.read_bytes())
    left = leaf.not_valid_after_utc - now
    return timedelta(days=9) < left < timedelta(days=11)


def _variant(pki: LabPKI, component: str, fault: str) -> ServerCredentials:
    with _ISSUE_LOCK:
        return _issue_variant(pki, component, fault)


def _issue_variant(pki: LabPKI, component: str, fault: str) -> ServerCredentials:
    name = f"fault-{component}-{fault}"
    existing = ServerCredentials(pki.folder / f"{name}.pem", pki.folder / f"{name}.key")
    now = datetime.now(UTC)
    if _usable(existing, fault, now):
        return existing
    if fault == "expired":
        return pki.issue_server(
            name, not_before=now - timedelta(days=400), not_after=now - timedelta(days=2)
        )
    if fault == "expiring-soon":
        return pki.issue_server(name, not_after=now + timedelta(days=10))
    if fault == "wrong-host":
        return pki.issue_server(
            name, common_name="wrong-host.example", hosts=("wrong-host.example",)
        )
    if fault == "untrusted":
        return pki.issue_server(name, issuer="foreign")
    if fault == "weak-key":
        return pki.issue_server(name, rsa_bits=1024)
    if fault == "sha1":
        return _sha1_server(pki, name)
    if fault == "cn-only":
        return pki.issue_server(name, hosts=())
    if fault == "rsa":
        return pki.issue_server(name, rsa_bits=2048)
    raise LabError(f"no certificate variant for fault '{fault}'")


def _sha1_server(pki: LabPKI, name: str) -> ServerCredentials:
    """`cryptography` no longer signs with SHA-1, so the openssl command signs this one."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LabError("the SHA-1 certificate fault needs the openssl command")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = pki.folder / f"{name}.pem", pki.folder / f"{name}.key"
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        (folder / "req.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        extensions = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        if pki.revocation_base:
            base = pki.revocation_base
            extensions += (
                f"crlDistributionPoints=URI:{base}/{CRL_PATHS['issuing']}\n"
                f"authorityInfoAccess=OCSP;URI:{base}/{OCSP_PATH}\n"
            )
        (folder / "ext.cnf").write_text(extensions)
        done = subprocess.run(
            [
                openssl,
                "x509",
                "-req",
                "-in",
                str(folder / "req.pem"),
                "-sha1",
                "-days",
                "365",
                "-CA",
                str(pki.issuing_cert),
                "-CAkey",
                str(pki.folder / "issuing-ca.key"),
                "-set_serial",
                str(x509.random_serial_number()),
                "-extfile",
                str(folder / "ext.cnf"),
                "-out",
                str(folder / "leaf.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LabError(f"openssl could not sign the SHA-1 certificate: {done.stderr.strip()}")
        chain = (folder / "leaf.pem").read_bytes() + pki.issuing_cert.read_bytes()
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(key_path, key_bytes)
    write_private(cert_path, chain, mode=0o644)
    return ServerCredentials(cert_path, key_path)


_CERT_FAULTS = (
    "expired", "expiring-soon", "wrong-host", "untrusted", "weak-key", "sha1", "cn-only"
)  # fmt: skip
# The lab plays a well-configured site: TLS 1.2 only with AEAD suites and forward secrecy (TLS 1.3
# is not governed by cipher strings). The faults widen it, and no more than they must: TLS 1.0
# needs CBC suites, which then show as TLS-007's warning; security level 0 loads weak keys.
_LAB_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_LEGACY_CIPHERS = f"{_LAB_CIPHERS}:ECDHE+AES+SHA1:@SECLEVEL=0"
_WEAK_CERT_CIPHERS = f"{_LAB_CIPHERS}:@SECLEVEL=0"


def listener_settings(pki: LabPKI, component: str, on: frozenset[str]) -> ListenerSettings:
    """The TLS settings of `component`'s listener under the faults in `on`."""
    credentials = pki.server(component)
    ciphers = _LAB_CIPHERS
    for fault in _CERT_FAULTS:
        if f"{component}-cert-{fault}" in on:
            credentials = _variant(pki, component, fault)
            if fault in ("weak-key", "sha1"):
                # OpenSSL 3 refuses to load such certificates at its default security level.
                ciphers = _WEAK_CERT_CIPHERS
            break
    else:
        if f"{component}-static-rsa-accepted" in on:
            # Static RSA key exchange encrypts to the server's key: it needs an RSA certificate.
            credentials = _variant(pki, component, "rsa")
    minimum = ssl.TLSVersion.TLSv1_2
    if f"{component}-tls1-accepted" in on:
        minimum = ssl.TLSVersion.TLSv1
        ciphers = _LEGACY_CIPHERS
    if f"{component}-static-rsa-accepted" in on:
        ciphers = f"{ciphers}:kRSA+AESGCM"
    return ListenerSettings(
        up=f"{component}-down" not in on,
        cert=credentials.cert,
        key=credentials.key,
        minimum_version=minimum,
        ciphers=ciphers,
        require_client_cert=component != "cm" or "cm-client-auth-not-required" not in on,
    )


_SIGNER_FAULTS = ("expired", "expiring-soon")


def export_signing(pki: LabPKI, on: frozenset[str]) -> Signing:
    """Who signs IDM's configuration export under the faults in `on`, and whether an entry is
    changed after signing."""
    credentials = pki.config_signer
    for fault in _SIGNER_FAULTS:
        if f"idm-config-signer-{fault}" in on:
            with _ISSUE_LOCK:
                credentials = _signer_variant(pki, fault)
            break
    return Signing(
        cert=credentials.cert, key=credentials.key, tamper="idm-config-signature-broken" in on
    )


def _signer_variant(pki: LabPKI, fault: str) -> ServerCredentials:
    name = f"fault-config-signer-{fault}"
    existing = ServerCredentials(pki.folder / f"{name}.pem", pki.folder / f"{name}.key")
    now = datetime.now(UTC)
    if _usable(existing, fault, now):
        return existing
    if fault == "expired":
        return pki.issue_signer(
            name, not_before=now - timedelta(days=400), not_after=now - timedelta(days=2)
        )
    return pki.issue_signer(name, not_after=now + timedelta(days=10))


_STALE_OPERATOR_TASKS = frozenset({("Lock user", "Lock related credentials")})


def operator_unbound(on: frozenset[str]) -> frozenset[tuple[str, str]]:
    """The (process, task) pairs IDM Operator's configuration download shows unbound under the
    faults in `on`."""
    return _STALE_OPERATOR_TASKS if "idm-operator-stale-configuration" in on else frozenset()
