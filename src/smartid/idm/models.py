"""Identity Manager's objects as the suite reads them: frozen models, validated when built."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from smartid.masking import Secret

__all__ = [
    "CAConnection",
    "CertificateAuthority",
    "ConnectionTest",
    "DeployResult",
    "ImportResult",
    "InstalledPackage",
    "MessagingServer",
    "Process",
    "Task",
    "TrustEntry",
    "User",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class InstalledPackage(_Model):
    name: str
    version: str
    sha256: str
    installed_at: str


class DeployResult(_Model):
    package: str
    version: str
    sha256: str
    created: tuple[str, ...]
    replaced: tuple[str, ...]
    unchanged: tuple[str, ...]


class User(_Model):
    name: str
    full_name: str
    roles: tuple[str, ...]
    has_password: bool
    version: int


class CAConnection(_Model):
    url: str
    keystore_file: str
    sha256: str


class CertificateAuthority(_Model):
    name: str
    type: str
    description: str
    enabled: bool
    connection: CAConnection | None
    certificate_types: tuple[str, ...]
    version: int


class MessagingServer(_Model):
    name: str
    url: str
    lifespan: int
    authentication_token_set: bool
    authentication_token_sha256: str | None
    version: int

    def token_matches(self, token: Secret) -> bool:
        """Whether IDM holds `token`, compared by fingerprint."""
        expected = hashlib.sha256(token.reveal().encode()).hexdigest()
        return self.authentication_token_sha256 == expected


class TrustEntry(_Model):
    alias: str
    subject: str
    issuer: str
    not_after: str
    sha256: str


class Task(_Model):
    name: str
    type: str
    data_pool: str | None
    sub_process: str | None
    # Read from BPMN: extension elements beside the fields read, where a field is missing.
    unread: tuple[str, ...] = ()


class Process(_Model):
    name: str
    id: str
    version: int
    tasks: tuple[Task, ...]

    def task(self, name: str) -> Task | None:
        return next((task for task in self.tasks if task.name == name), None)


class ImportResult(_Model):
    ok: bool
    certificate_types: tuple[str, ...]
    error: str | None


class ConnectionTest(_Model):
    """What IDM reports of a test connection: overall result, and per leg where it has legs."""

    ok: bool
    error: str | None = None
    protocol: str | None = None
    peer: str | None = None
    officer: str | None = None
    legs: tuple[dict[str, Any], ...] = ()
