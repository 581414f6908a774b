"""The CM connection zip as the lab's IDM takes it on the CA's General tab, read with the lab's
own code: the suite writes the zip (`smartid.cm`), and a reader shared by both sides would let a
bug in it pass against the lab and fail against a real IDM. Only the zip's safety rules are
shared (`smartid.safezip`), and the .properties syntax comes from the `javaproperties` package.

What IDM needs from the zip: `Nexus_CM.properties` with `cm.url`, `cm.keystore.file` and
`cm.keystore.password`, the officer's PKCS#12 keystore it names, and the PEM files that
`cm.truststore.files` lists (comma-separated), the certificates CM's server chains to.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import javaproperties
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from smartid.files import write_private
from smartid.safezip import ZipLimits, ZipRejected, read_entries

__all__ = ["CMConnection", "ConnectionRefused", "officer_files", "read_cm_connection"]

PROPERTIES = "Nexus_CM.properties"
_LIMITS = ZipLimits(
    entries=50, total_bytes=10 * 1024 * 1024, entry_bytes=10 * 1024 * 1024, ratio=100
)


class ConnectionRefused(ValueError):
    """IDM refuses the upload; one sentence naming the entry or property, never the password."""


@dataclass(frozen=True)
class CMConnection:
    url: str
    keystore_name: str
    key: PrivateKeyTypes = field(repr=False)  # the officer's, from the keystore
    chain: tuple[x509.Certificate, ...] = field(repr=False)  # its certificate first
    trust_pem: bytes = field(repr=False)


def read_cm_connection(data: bytes) -> CMConnection:
    """What IDM takes from an uploaded connection zip, or ConnectionRefused."""
    try:
        entries = read_entries(data, _LIMITS, what="the connection zip")
    except ZipRejected as exc:
        raise ConnectionRefused(str(exc)) from None
    if PROPERTIES not in entries:
        raise ConnectionRefused(f"the connection zip has no {PROPERTIES}")
    try:
        # Java reads .properties as ISO-8859-1; the \uXXXX escapes carry everything else.
        properties = javaproperties.loads(entries[PROPERTIES].decode("latin-1"))
    except ValueError:
        raise ConnectionRefused(f"{PROPERTIES} does not parse") from None
    for key in ("cm.url", "cm.keystore.file", "cm.keystore.password"):
        if not properties.get(key):
            raise ConnectionRefused(f"{PROPERTIES} lacks {key}")
    name = properties["cm.keystore.file"]
    if name not in entries:
        raise ConnectionRefused(f"the keystore {name!r} (cm.keystore.file) is not in the zip")
    password = properties["cm.keystore.password"].encode()
    try:
        loaded = pkcs12.load_pkcs12(entries[name], password)
    except (ValueError, TypeError):
        refused = f"entry {name!r}: wrong keystore password or corrupt keystore"
        raise ConnectionRefused(refused) from None
    if loaded.key is None or loaded.cert is None:
        raise ConnectionRefused(f"entry {name!r} holds no key with its certificate")
    chain = (loaded.cert.certificate, *(c.certificate for c in loaded.additional_certs))
    trust = b""
    listed = properties.get("cm.truststore.files", "").split(",")
    for trust_name in filter(None, (n.strip() for n in listed)):
        pem = entries.get(trust_name)
        if pem is None:
            raise ConnectionRefused(f"the trust file {trust_name!r} is not in the zip")
        try:
            x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise ConnectionRefused(f"entry {trust_name!r} is not PEM certificates") from None
        trust += pem
    return CMConnection(properties["cm.url"], name, loaded.key, chain, trust)


@contextmanager
def officer_files(connection: CMConnection, folder: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(CM's trust PEM, the officer's certificate chain PEM, its unencrypted key PEM) as 0600
    files in `folder`, removed on exit: requests and ssl take only files."""
    paths = (folder / "cm-trust.pem", folder / "officer.pem", folder / "officer.key")
    contents = (
        connection.trust_pem,
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in connection.chain),
        connection.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    try:
        for path, content in zip(paths, contents, strict=True):
            write_private(path, content)
        yield paths
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
