"""The lab's state directory: everything the lab knows lives here, so that stopping or killing the
lab loses nothing (docs/architecture.md, docs/lab.md).

    secrets.json         every secret value of the lab site (0600)
    ports.json           the ports chosen on first start, kept so that URLs stay valid
    revoked.json         the certificates the lab's CM has revoked (serial, date), besides faults
    pki/                 root and issuing CA, server certificates, the CM officer keystore,
                         the configuration zip signer
    idm.sqlite           Identity Manager's database (WAL), with the audit log of every write
    hermod/application.yml   Hermod's configuration (allowed-clients), applied on a refresh
    hermod/truststore.pem    the certificates Hermod trusts when it calls a client back
    faults.json          the faults switched on (smartid-lab fault on|off NAME)
    SharedCredentials.zip  the demo package, built from the lab's sources
    lab.lock             taken by whoever starts the lab, so parallel runs start one
"""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

from smartid.files import write_private
from smartid.lab.pki import LabPKI

__all__ = ["DEFAULT_PORTS", "DEFAULT_STATE_DIR", "LabState", "resolve_state_dir"]

DEFAULT_STATE_DIR = Path(".lab")
# IDM's HTTPS port as in the vendor's examples, Hermod's documented port, one for CM, and CM's
# plain-HTTP port where it publishes CRLs and answers OCSP.
DEFAULT_PORTS = {"idm": 18443, "hermod": 20400, "cm": 18444, "cm_pki": 18445}
HERMOD_FACTORY_CONFIG = """\
# Smart ID Messaging (lab). Clients allowed to send commands are listed under
# application.allowed-clients; an edit is applied when Hermod's configuration is refreshed
# (POST /hermod/rest/util/refresh, or smartid-lab hermod-refresh).
server:
  port: 20400
application:
  hermod:
    rest:
      log: false
  callback:
    attempts: 1
"""
SECRET_NAMES = ("admin_password", "hermod_password", "officer_keystore_password")


def resolve_state_dir(chosen: str | Path | None = None) -> Path:
    """The chosen folder, else `.lab/`, as an absolute path."""
    return Path(chosen or DEFAULT_STATE_DIR).expanduser().resolve()


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LabState:
    """Paths and small files of one lab state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def secrets_file(self) -> Path:
        return self.path / "secrets.json"

    @property
    def ports_file(self) -> Path:
        return self.path / "ports.json"

    @property
    def database(self) -> Path:
        return self.path / "idm.sqlite"

    @property
    def package_file(self) -> Path:
        return self.path / "SharedCredentials.zip"

    @property
    def hermod_config(self) -> Path:
        return self.path / "hermod" / "application.yml"

    @property
    def hermod_truststore(self) -> Path:
        return self.path / "hermod" / "truststore.pem"

    @property
    def lock_file(self) -> Path:
        return self.path / "lab.lock"

    @property
    def revoked_file(self) -> Path:
        return self.path / "revoked.json"

    @property
    def revocation_base(self) -> str | None:
        """Where the lab's CM publishes CRLs and answers OCSP, over plain HTTP."""
        try:
            port = self.ports().get("cm_pki")
        except (OSError, ValueError):
            return None
        return f"http://127.0.0.1:{port}/cm/pki" if port else None

    @property
    def pki(self) -> LabPKI:
        return LabPKI(self.path / "pki", self.revocation_base)

    @property
    def created(self) -> bool:
        """Whether the factory state exists (what a site needs to resolve against this lab);
        `ensure()` also refreshes the demo package, which the lab does each time it starts."""
        files = (self.secrets_file, self.ports_file, self.database, self.pki.ca_bundle)
        return all(f.exists() for f in files)

    def ensure(self) -> None:
        """Create what is missing (factory state on first use); never overwrite what exists."""
        # Imported here: a suite run against a lab that already runs needs only the state's
        # paths, and these pull in the package builder, the BPMN parser and SQLite.
        from smartid.lab import factory
        from smartid.lab.package import demo_package
        from smartid.lab.store import Store

        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.secrets_file.exists():
            values = {name: secrets.token_urlsafe(18) for name in SECRET_NAMES}
            write_private(self.secrets_file, json.dumps(values, indent=2).encode())
        # A state from before a port was added gets that port too; chosen ports are kept.
        chosen: dict[str, int] = self.ports() if self.ports_file.exists() else {}
        if set(DEFAULT_PORTS) - set(chosen):
            taken = set(chosen.values())
            for name, port in DEFAULT_PORTS.items():
                if name not in chosen:
                    free = _port_is_free(port) and port not in taken
                    chosen[name] = port if free else _free_port()
            write_private(self.ports_file, json.dumps(chosen, indent=2).encode())
        self.pki.ensure(self.secrets()["officer_keystore_password"])
        package = demo_package("shared_credentials")
        if not self.package_file.exists() or self.package_file.read_bytes() != package:
            self.package_file.write_bytes(package)
        if not self.hermod_config.exists():
            self.reset_hermod()
        if not self.database.exists():
            factory.create(Store(self.database))

    def reset_hermod(self) -> None:
        """Hermod's factory state: no clients; it trusts the lab CA for callbacks to IDM."""
        self.hermod_config.parent.mkdir(mode=0o700, exist_ok=True)
        self.hermod_truststore.write_bytes(self.pki.ca_bundle.read_bytes())
        self.hermod_config.write_text(HERMOD_FACTORY_CONFIG, encoding="utf-8")

    def secrets(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.secrets_file.read_text(encoding="utf-8"))
        return data

    def ports(self) -> dict[str, int]:
        data: dict[str, int] = json.loads(self.ports_file.read_text(encoding="utf-8"))
        return data

    def endpoints(self) -> dict[str, str]:
        ports = self.ports()
        idm = f"https://localhost:{ports['idm']}"
        return {
            "idm_admin": f"{idm}/idm-admin",
            "idm_operator": f"{idm}/idm-operator",
            "hermod": f"https://localhost:{ports['hermod']}/hermod/rest",
            "cm": f"https://localhost:{ports['cm']}/cm",
        }
