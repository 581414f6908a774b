"""Certificate Manager: the connection zip IDM Admin takes on the CA's General tab, the officer's
keystore, and a client that proves the officer to CM over mutual TLS."""

from smartid.cm.client import cm_ping, cm_token_procedures
from smartid.cm.connection_zip import (
    ConnectionZipError,
    build_connection_zip,
    client_cert_files,
    keystore_password,
    read_connection_zip,
)

__all__ = [
    "ConnectionZipError",
    "build_connection_zip",
    "client_cert_files",
    "cm_ping",
    "cm_token_procedures",
    "keystore_password",
    "read_connection_zip",
]
