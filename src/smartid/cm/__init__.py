"""Certificate Manager: the connection zip IDM Admin takes on the CA's General tab, the officer's
keystore, a client for the lab CM's ping, and the mutual-TLS proof of the officer that works
against any CM."""

from smartid.cm.client import cm_ping, cm_token_procedures
from smartid.cm.connection_zip import (
    ConnectionZipError,
    build_connection_zip,
    client_cert_files,
    keystore_password,
    read_connection_zip,
)
from smartid.cm.mtls import prove_officer
from smartid.cm.proof import OfficerProof, judge_officer_proof

__all__ = [
    "ConnectionZipError",
    "OfficerProof",
    "build_connection_zip",
    "client_cert_files",
    "cm_ping",
    "cm_token_procedures",
    "judge_officer_proof",
    "keystore_password",
    "prove_officer",
    "read_connection_zip",
]
