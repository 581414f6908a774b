"""Identity Manager: the client for the vendor-documented deploy API and the admin contract, and
the frozen models of what IDM answers."""

from smartid.idm.client import IdmClient
from smartid.idm.models import (
    CertificateAuthority,
    InstalledPackage,
    MessagingServer,
    Process,
    Task,
    TrustEntry,
)

__all__ = [
    "CertificateAuthority",
    "IdmClient",
    "InstalledPackage",
    "MessagingServer",
    "Process",
    "Task",
    "TrustEntry",
]
