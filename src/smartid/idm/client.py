"""Client for Identity Manager: the vendor-documented deploy API and the admin contract.

Every call goes through `smartid.http`, so a failure is one of the suite's errors naming the
endpoint; every answer is a frozen model. Secrets go out only through `Secret.reveal()` at the
moment a request is built.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from smartid import errors
from smartid.http import Timeouts, check_status, json_body, session
from smartid.httpbounds import DeadlineBody
from smartid.idm.export import MAX_DOWNLOAD_BYTES
from smartid.idm.models import (
    CertificateAuthority,
    ConnectionTest,
    DeployResult,
    ImportResult,
    InstalledPackage,
    MessagingServer,
    Process,
    TrustEntry,
    User,
)
from smartid.masking import Secret

__all__ = ["IdmClient"]


M = TypeVar("M", bound=BaseModel)


def _segment(name: str) -> str:
    return quote(name, safe="")


class IdmClient:
    """IDM Admin for one tenant, as the given administrator."""

    def __init__(
        self,
        admin_url: str,
        *,
        user: str,
        password: Secret,
        ca_bundle: Path | None,
        tenant: int = 1,
        timeouts: Timeouts | None = None,
        contract: bool = True,
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        # Without the admin contract (a real IDM), logins are proven through the deploy API.
        self.contract = contract
        self.username = user
        self.tenant = tenant
        self._password = password
        self._http = session(ca_bundle, timeouts=timeouts, label="IDM Admin")
        self._http.auth = (user, password.reveal())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IdmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.admin_url}/api/v1/{path}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        params = dict(kwargs.pop("params", {}))
        params["tenantId"] = self.tenant
        return check_status(self._http.request(method, self._url(path), params=params, **kwargs))

    def _one(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        response = self._call(method, path, **kwargs)
        return _parse(model, response)

    def _many(self, model: type[M], path: str) -> list[M]:
        response = self._call("GET", path)
        body = _json(response)
        if not isinstance(body, list):
            raise errors.ProtocolError(response.url, "expected a JSON list")
        return [_validate(model, item, response.url) for item in body]

    # --- deploy API (vendor-documented) -------------------------------------------------------

    def _deploy_url(self) -> str:
        return f"{self.admin_url}/ws/deploy/configuration"

    def download_configuration(self) -> bytes:
        response = self._http.request(
            "GET",
            self._deploy_url(),
            params={"tenantId": self.tenant},
            max_bytes=MAX_DOWNLOAD_BYTES,
        )
        return check_status(response).content

    def upload_configuration(self, data: bytes | Path, *, overwrite: bool = False) -> DeployResult:
        """Upload a configuration zip: bytes, or a file, which is sent as it is read (a large
        package is never held in memory whole)."""
        params: dict[str, Any] = {"tenantId": self.tenant}
        if overwrite:
            params["overwrite"] = "true"
        if isinstance(data, Path):
            with data.open("rb") as file:
                return self._upload(params, file, os.fstat(file.fileno()).st_size)
        return self._upload(params, io.BytesIO(data), len(data))

    def _upload(self, params: dict[str, Any], body: BinaryIO, size: int) -> DeployResult:
        url = self._deploy_url()
        response = self._http.post(
            url,
            params=params,
            data=DeadlineBody(body, size, url),
            headers={"Content-Type": "application/zip"},
        )
        return _parse(DeployResult, check_status(response))

    def login_works(self) -> bool:
        """Whether this client's credentials are accepted (401 means no)."""
        if not self.contract:
            return self.credentials_valid(self.username, self._password)
        try:
            self._call("GET", "packages")
        except errors.AuthenticationError as exc:
            if exc.status == 401:
                return False
            raise
        return True

    def credentials_valid(self, user: str, password: Secret) -> bool:
        """Whether IDM accepts `user`/`password` at all: 401 means no; 403 (authenticated, but
        not an administrator) or 200 means yes. Read-only. Without the contract the question goes
        to the deploy API's download, whose answer is closed unread: the status is the proof."""
        url = self._url("packages") if self.contract else self._deploy_url()
        with self._http.get(
            url, params={"tenantId": self.tenant}, auth=(user, password.reveal()), stream=True
        ) as response:
            if response.status_code == 401:
                return False
            if response.status_code in (200, 403):
                return True  # the configuration zip itself is never read
            check_status(response)
        return True

    # --- admin contract -----------------------------------------------------------------------

    def packages(self) -> list[InstalledPackage]:
        return self._many(InstalledPackage, "packages")

    def users(self) -> list[User]:
        return self._many(User, "users")

    def user(self, name: str) -> User:
        return self._one(User, "GET", f"users/{_segment(name)}")

    def set_password(
        self, name: str, password: Secret, *, version: int, current: Secret | None = None
    ) -> User:
        body: dict[str, Any] = {"version": version, "password": password.reveal()}
        if current is not None:
            body["current_password"] = current.reveal()
        return self._one(User, "PUT", f"users/{_segment(name)}/password", json=body)

    def certificate_authorities(self) -> list[CertificateAuthority]:
        return self._many(CertificateAuthority, "certificate-authorities")

    def certificate_authority(self, name: str) -> CertificateAuthority:
        return self._one(CertificateAuthority, "GET", f"certificate-authorities/{_segment(name)}")

    def update_certificate_authority(
        self,
        name: str,
        *,
        version: int,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> CertificateAuthority:
        body = {"version": version, "description": description, "enabled": enabled}
        return self._one(
            CertificateAuthority,
            "PATCH",
            f"certificate-authorities/{_segment(name)}",
            json={k: v for k, v in body.items() if v is not None},
        )

    def upload_connection_zip(
        self, name: str, data: bytes, *, version: int
    ) -> CertificateAuthority:
        return self._one(
            CertificateAuthority,
            "PUT",
            f"certificate-authorities/{_segment(name)}/connection-zip",
            params={"version": version},
            data=data,
            headers={"Content-Type": "application/zip"},
        )

    def import_certificate_types(self, name: str) -> ImportResult:
        return self._one(
            ImportResult,
            "POST",
            f"certificate-authorities/{_segment(name)}/import-certificate-types",
        )

    def test_ca_connection(self, name: str) -> ConnectionTest:
        return self._one(
            ConnectionTest, "POST", f"certificate-authorities/{_segment(name)}/test-connection"
        )

    def messaging_servers(self) -> list[MessagingServer]:
        return self._many(MessagingServer, "messaging-servers")

    def messaging_server(self, name: str) -> MessagingServer:
        return self._one(MessagingServer, "GET", f"messaging-servers/{_segment(name)}")

    def update_messaging_server(
        self,
        name: str,
        *,
        version: int,
        url: str | None = None,
        authentication_token: Secret | None = None,
        lifespan: int | None = None,
    ) -> MessagingServer:
        body: dict[str, Any] = {"version": version}
        if url is not None:
            body["url"] = url
        if authentication_token is not None:
            body["authentication_token"] = authentication_token.reveal()
        if lifespan is not None:
            body["lifespan"] = lifespan
        return self._one(MessagingServer, "PATCH", f"messaging-servers/{_segment(name)}", json=body)

    def test_messaging_connection(self, name: str) -> ConnectionTest:
        return self._one(
            ConnectionTest, "POST", f"messaging-servers/{_segment(name)}/test-connection"
        )

    def truststore(self) -> list[TrustEntry]:
        return self._many(TrustEntry, "truststore")

    def add_trust(self, alias: str, pem: str) -> TrustEntry:
        return self._one(TrustEntry, "POST", "truststore", json={"alias": alias, "pem": pem})

    def remove_trust(self, alias: str) -> None:
        self._call("DELETE", f"truststore/{_segment(alias)}")

    def processes(self) -> list[Process]:
        return self._many(Process, "processes")

    def process(self, name: str) -> Process:
        return self._one(Process, "GET", f"processes/{_segment(name)}")

    def bind_task(
        self,
        process: str,
        task: str,
        *,
        version: int,
        data_pool: str | None,
        sub_process: str | None,
    ) -> Process:
        return self._one(
            Process,
            "PUT",
            f"processes/{_segment(process)}/tasks/{_segment(task)}",
            json={"version": version, "data_pool": data_pool, "sub_process": sub_process},
        )

    def data_pools(self) -> list[str]:
        return [str(item["name"]) for item in _json(self._call("GET", "data-pools"))]

    def sub_processes(self) -> list[str]:
        return [str(item["name"]) for item in _json(self._call("GET", "sub-processes"))]


def _json(response: requests.Response) -> Any:
    return json_body(response)


def _validate(model: type[M], data: Any, url: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise errors.ProtocolError(
            url, f"the answer does not match the contract ({where}: {first['msg']})"
        ) from None


def _parse(model: type[M], response: requests.Response) -> M:
    return _validate(model, _json(response), response.url)
