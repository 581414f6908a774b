"""The TLS endpoints a site declares, as the verify checks observe them: IDM, Hermod, CM and
every [[endpoints]] entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from smartid.site import Site, TlsPolicy
from smartid.tls.probe import ProbeTarget

__all__ = ["TlsEndpoint", "tls_endpoints"]


@dataclass(frozen=True)
class TlsEndpoint:
    """One endpoint the TLS checks observe; `id` is its pytest id and its observation's key."""

    id: str
    label: str
    url: str
    server_name: str | None
    ca_bundle: Path | None
    client_auth_required: bool
    client_cert: tuple[Path, Path] | None = None
    officer: bool = False  # presents the CM officer's certificate

    @property
    def address(self) -> tuple[str, int, str]:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        return host, parts.port or 443, self.server_name or host

    def named(self, address: str) -> str:
        """How findings name the endpoint: its id and the address observed."""
        return f"{self.id} ({address})"

    def target(self, policy: TlsPolicy, client_cert: tuple[Path, Path] | None) -> ProbeTarget:
        return ProbeTarget.from_url(
            self.id,
            self.url,
            server_name=self.server_name,
            ca_bundle=self.ca_bundle,
            client_cert=client_cert,
            connect_timeout=policy.connect_timeout,
            read_timeout=policy.read_timeout,
        )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def tls_endpoints(site: Site) -> list[TlsEndpoint]:
    """IDM (Admin, and Operator when it listens elsewhere), Hermod, CM and every [[endpoints]]
    entry, in that order; components the site does not declare are left out."""
    found: list[TlsEndpoint] = []
    idm = site.idm
    if idm is not None and idm.admin_url:
        bundle = _path(idm.ca_bundle)
        found.append(TlsEndpoint("idm", "IDM Admin", idm.admin_url, idm.server_name, bundle, False))
        if idm.operator_url:
            operator = TlsEndpoint(
                "idm-operator", "IDM Operator", idm.operator_url, idm.server_name, bundle, False
            )
            # One listener serves both context paths in a usual install: observed once.
            if operator.address != found[0].address:
                found.append(operator)
    messaging = site.messaging
    if messaging is not None and messaging.url:
        found.append(
            TlsEndpoint(
                "hermod",
                "Smart ID Messaging",
                messaging.url,
                messaging.server_name,
                _path(messaging.ca_bundle),
                False,
            )
        )
    cm = site.certificate_manager
    if cm is not None and cm.url:
        found.append(
            TlsEndpoint(
                "cm",
                "Certificate Manager",
                cm.url,
                cm.server_name,
                _path(cm.ca_bundle),
                True,
                officer=True,
            )
        )
    for endpoint in site.endpoints:
        client = None
        if endpoint.client_cert and endpoint.client_key:
            client = (Path(endpoint.client_cert), Path(endpoint.client_key))
        found.append(
            TlsEndpoint(
                f"endpoint-{endpoint.name}",
                f"endpoint '{endpoint.name}'",
                endpoint.url,
                endpoint.server_name,
                _path(endpoint.ca_bundle),
                endpoint.client_auth == "required",
                client,
            )
        )
    return found
