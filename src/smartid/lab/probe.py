"""Whether a lab runs: it answers on its ports (a probe), not that a pid file exists.

Kept apart from the servers so that asking costs no web framework import.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl

from smartid.lab.faults import FaultSet
from smartid.lab.state import LabState

__all__ = ["probe", "serves_documented_only"]


def probe(state: LabState, timeout: float = 1.0) -> bool:
    """True when the lab answers: IDM Admin's banner over verified HTTPS, or, while IDM is down by
    a fault, the lab's fault file says so and Hermod's port accepts connections."""
    try:
        ports = state.ports()
        context = ssl.create_default_context(cafile=str(state.pki.ca_bundle))
    except (OSError, ValueError, KeyError, ssl.SSLError):
        return False
    try:
        with (
            socket.create_connection(("127.0.0.1", ports["idm"]), timeout=timeout) as raw,
            context.wrap_socket(
                raw, server_hostname="localhost", do_handshake_on_connect=False
            ) as tls,
        ):
            tls.do_handshake()
            tls.sendall(b"GET /idm-admin/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = tls.recv(64)
    except (OSError, ssl.SSLError):
        return _answers_despite_faults(state, ports, timeout)
    return answer.startswith(b"HTTP/1.1 200")


def _answers_despite_faults(state: LabState, ports: dict[str, int], timeout: float) -> bool:
    """With an IDM fault on (down, untrusted or expired certificate) the banner probe fails
    although the lab runs; then any listening lab port counts."""
    if not FaultSet(state.path).active():
        return False
    for name in ("hermod", "cm", "idm"):
        try:
            with socket.create_connection(("127.0.0.1", ports[name]), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def serves_documented_only(state: LabState, timeout: float = 2.0) -> bool | None:
    """Whether the running lab serves only what Nexus documents, from IDM Admin's banner; None
    when the banner cannot be read (the lab is down, or IDM is, by a fault)."""
    try:
        port = state.ports()["idm"]
        context = ssl.create_default_context(cafile=str(state.pki.ca_bundle))
        connection = http.client.HTTPSConnection(
            "localhost", port, timeout=timeout, context=context
        )
        try:
            connection.request("GET", "/idm-admin/")
            banner = json.loads(connection.getresponse().read(4096))
        finally:
            connection.close()
    except (OSError, ValueError, KeyError, ssl.SSLError, http.client.HTTPException):
        return None
    mode = banner.get("documented_only") if isinstance(banner, dict) else None
    return mode if isinstance(mode, bool) else None
