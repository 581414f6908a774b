"""The TLS engine: observe an endpoint once (`probe`), keep what was seen (`facts`), judge it
against the site's policy as often as needed (`judge`, pure). The checks are in docs/checks.md,
the cost in bench/README.md."""

from __future__ import annotations

from smartid.tls.facts import CertificateFacts, CipherProbe, HandshakeFacts
from smartid.tls.judge import (
    Finding,
    Severity,
    cipher_notes,
    judge_all,
    judge_ciphers,
    judge_client_auth,
    judge_expiry,
    judge_handshake,
    judge_keys,
    judge_protocol,
    judge_signatures,
)
from smartid.tls.probe import ProbeTarget, observe, observe_many

__all__ = [
    "CertificateFacts",
    "CipherProbe",
    "Finding",
    "HandshakeFacts",
    "ProbeTarget",
    "Severity",
    "cipher_notes",
    "judge_all",
    "judge_ciphers",
    "judge_client_auth",
    "judge_expiry",
    "judge_handshake",
    "judge_keys",
    "judge_protocol",
    "judge_signatures",
    "observe",
    "observe_many",
]
