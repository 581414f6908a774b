"""IDM's configuration observed once per run into frozen facts, from either of two sources: the
admin contract (every list it offers) or the documented configuration download (what its layout
shows, smartid.idm.export). The verify judgements are pure functions over a snapshot
(smartid.verify.configuration), as the TLS checks judge frozen handshake facts.

A kind of object the source does not show is None, never empty: "not shown" and "there are none"
are different answers, and only the second may fail a check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar

from smartid.idm.client import IdmClient
from smartid.idm.export import Configuration, read_configuration
from smartid.idm.models import (
    CertificateAuthority,
    InstalledPackage,
    MessagingServer,
    Process,
    TrustEntry,
)

__all__ = [
    "IdmSnapshot",
    "Kind",
    "download_source",
    "from_configuration",
    "from_contract",
    "from_download",
]

Kind = Literal[
    "packages",
    "certificate_authorities",
    "messaging_servers",
    "users",
    "data_pools",
    "sub_processes",
    "processes",
    "truststore",
]

_SHOWN_AS: dict[Kind, str] = {
    "packages": "the installed packages",
    "certificate_authorities": "certificate authorities",
    "messaging_servers": "messaging servers",
    "users": "users",
    "data_pools": "data pools",
    "sub_processes": "sub-processes",
    "processes": "processes",
    "truststore": "IDM's truststore",
}


@dataclass(frozen=True)
class IdmSnapshot:
    """What one source showed of IDM's configuration; None where the source does not show it."""

    source: str  # one phrase naming the source and its URL
    packages: Mapping[str, InstalledPackage] | None
    certificate_authorities: Mapping[str, CertificateAuthority] | None
    messaging_servers: Mapping[str, MessagingServer] | None
    users: frozenset[str] | None
    data_pools: frozenset[str] | None
    sub_processes: frozenset[str] | None
    processes: Mapping[str, Process] | None
    truststore: tuple[TrustEntry, ...] | None

    def shows(self, kind: Kind) -> bool:
        return getattr(self, kind) is not None

    def not_shown(self, kind: Kind) -> str:
        """The sentence saying that this source does not show `kind`."""
        return f"{self.source} does not show {_SHOWN_AS[kind]}"


_Named = TypeVar("_Named", InstalledPackage, CertificateAuthority, MessagingServer, Process)


def _by_name(items: list[_Named]) -> Mapping[str, _Named]:
    return MappingProxyType({item.name: item for item in items})


def from_contract(client: IdmClient) -> IdmSnapshot:
    """Every list of the admin contract, read once (eight requests)."""
    return IdmSnapshot(
        source=f"IDM Admin's admin contract ({client.admin_url})",
        packages=_by_name(client.packages()),
        certificate_authorities=_by_name(client.certificate_authorities()),
        messaging_servers=_by_name(client.messaging_servers()),
        users=frozenset(user.name for user in client.users()),
        data_pools=frozenset(client.data_pools()),
        sub_processes=frozenset(client.sub_processes()),
        processes=_by_name(client.processes()),
        truststore=tuple(client.truststore()),
    )


def from_configuration(configuration: Configuration, source: str) -> IdmSnapshot:
    """What a configuration download shows. A download lists no installed packages (their
    objects are judged instead) and does not carry the truststore, which lives in IDM's Java
    runtime."""
    return IdmSnapshot(
        source=source,
        packages=None,
        certificate_authorities=configuration.certificate_authorities,
        messaging_servers=configuration.messaging_servers,
        users=configuration.users,
        data_pools=configuration.data_pools,
        sub_processes=configuration.sub_processes,
        processes=configuration.processes,
        truststore=None,
    )


def download_source(url: str, app: str = "IDM Admin") -> str:
    """The phrase naming an application's configuration download, as reports and failures show
    it."""
    return f"{app}'s configuration download ({url.rstrip('/')})"


def from_download(client: IdmClient) -> IdmSnapshot:
    """What IDM Admin's documented configuration download shows now (one download, read in
    memory); NotVerifiable when the suite cannot read the zip."""
    where = download_source(client.admin_url)
    return from_configuration(read_configuration(client.download_configuration(), where), where)
