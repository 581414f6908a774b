"""The admin contract: what the start-up guide does by hand in IDM Admin, as JSON over HTTPS.

Served under `/idm-admin/api/v1/` with HTTP Basic (a user with the Administrator role). Every
mutable object carries a `version`; a write names the version it read and gets 409 when that is
stale, so two administrators never overwrite each other unknowingly. Every write lands in the
audit log in the same transaction. `docs/admin-api.md` is the reader's description.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartid.lab.cm_connection import ConnectionRefused, read_cm_connection
from smartid.lab.store import Store, StoredObject
from smartid.lab.web import bounded_body

__all__ = ["Actions", "create_admin_router"]

TenantId = Annotated[int, Query(alias="tenantId", ge=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordChange(_Body):
    version: int = Field(description="the user's version as read")
    password: str = Field(min_length=8, max_length=256)
    current_password: str | None = Field(
        default=None, description="required when users change their own password"
    )


class CAGeneral(_Body):
    version: int
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class MessagingUpdate(_Body):
    version: int
    url: str | None = Field(default=None, pattern=r"^https://\S+$", max_length=500)
    authentication_token: str | None = Field(default=None, min_length=8, max_length=1024)
    lifespan: int | None = Field(default=None, gt=0, le=86400 * 30)


class TrustAdd(_Body):
    alias: str = Field(pattern=r"^[A-Za-z0-9 ._-]{1,64}$")
    pem: str = Field(max_length=64 * 1024)


class TaskBinding(_Body):
    version: int = Field(description="the process's version as read")
    data_pool: str | None
    sub_process: str | None


class Actions:
    """Behaviour behind the contract's actions; the lab wires the real CM and Hermod here."""

    def test_ca(self, connection_zip: bytes | None) -> dict[str, Any]:
        return {"ok": False, "error": "CM not reachable: no CM connection is configured"}

    def certificate_types(self, connection_zip: bytes | None) -> tuple[list[str], str | None]:
        return [], "CM not reachable: no CM connection is configured"

    def test_messaging(self, server: dict[str, Any], trusted_pems: list[str]) -> dict[str, Any]:
        return {"ok": False, "error": "Smart ID Messaging not reachable", "legs": []}


def _public_user(obj: StoredObject, has_password: bool) -> dict[str, Any]:
    return {
        "name": obj.name,
        "full_name": obj.data.get("full_name", ""),
        "roles": obj.data.get("roles", []),
        "has_password": has_password,
        "version": obj.version,
    }


def _public_ca(obj: StoredObject, store: Store, tenant: int) -> dict[str, Any]:
    zip_bytes = store.file(tenant, f"ca:{obj.name}", "connection.zip")
    connection = obj.data.get("connection")
    return {
        "name": obj.name,
        "type": obj.data.get("type", "CM"),
        "description": obj.data.get("description", ""),
        "enabled": obj.data.get("enabled", True),
        "connection": connection
        if zip_bytes is not None
        else None,  # url, keystore file, sha256 of the zip; never the keystore or its password
        "certificate_types": obj.data.get("certificate_types", []),
        "version": obj.version,
    }


def token_fingerprint(token: str) -> str:
    """sha256 of the authentication token: lets a caller compare without reading the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _public_messaging(obj: StoredObject) -> dict[str, Any]:
    token = obj.data.get("authentication_token")
    return {
        "name": obj.name,
        "url": obj.data.get("url", ""),
        "lifespan": obj.data.get("lifespan", 0),
        "authentication_token_set": bool(token),
        "authentication_token_sha256": token_fingerprint(token) if token else None,
        "version": obj.version,
    }


def _public_process(obj: StoredObject) -> dict[str, Any]:
    return {
        "name": obj.name,
        "id": obj.data.get("id", ""),
        "version": obj.version,
        "tasks": [
            {
                "name": task["name"],
                "type": task["type"],
                "data_pool": task.get("data_pool"),
                "sub_process": task.get("sub_process"),
            }
            for task in obj.data.get("tasks", [])
        ],
    }


def _trust_entry(obj: StoredObject) -> dict[str, Any]:
    return {key: obj.data[key] for key in ("alias", "subject", "issuer", "not_after", "sha256")}


def _stale(kind: str, name: str, current: int, given: int) -> HTTPException:
    return HTTPException(
        409, f"{kind} '{name}' changed: current version {current}, given version {given}"
    )


def create_admin_router(
    store: Store,
    authenticate: Callable[[Request, int], str],
    actions: Actions,
) -> APIRouter:
    router = APIRouter(prefix="/idm-admin/api/v1", tags=["admin contract"])

    def _get(tenant: int, kind: str, label: str, name: str) -> StoredObject:
        if not store.tenant_exists(tenant):
            raise HTTPException(400, f"unknown tenant {tenant}")
        obj = store.get(tenant, kind, name)
        if obj is None:
            raise HTTPException(404, f"{label} '{name}' does not exist")
        return obj

    def _update(
        tenant: int,
        user: str,
        obj: StoredObject,
        label: str,
        data: dict[str, Any],
        given: int,
        detail: str,
    ) -> int:
        if given != obj.version:
            raise _stale(label, obj.name, obj.version, given)
        with store.write(user, "update", f"{label} '{obj.name}'", detail, tenant) as db:
            version = store.update_object(db, tenant, obj.kind, obj.name, data, given)
            if version is None:
                current = store.get(tenant, obj.kind, obj.name)
                raise _stale(label, obj.name, current.version if current else 0, given)
        return version

    # --- packages -----------------------------------------------------------------------------

    @router.get("/packages", summary="Installed configuration packages")
    def packages(request: Request, tenant: TenantId = 1) -> list[dict[str, str]]:
        authenticate(request, tenant)
        return [
            {key: row[key] for key in ("name", "version", "sha256", "installed_at")}
            for row in store.packages(tenant)
        ]

    # --- users --------------------------------------------------------------------------------

    @router.get("/users", summary="Internal users")
    def users(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [
            _public_user(obj, store.has_password(tenant, obj.name))
            for obj in store.objects(tenant, "user")
        ]

    @router.get("/users/{name}", summary="One internal user")
    def user(name: str, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        authenticate(request, tenant)
        obj = _get(tenant, "user", "user", name)
        return _public_user(obj, store.has_password(tenant, name))

    @router.put("/users/{name}/password", summary="Set a user's password")
    def set_password(
        name: str, change: PasswordChange, request: Request, tenant: TenantId = 1
    ) -> dict[str, Any]:
        actor = authenticate(request, tenant)
        obj = _get(tenant, "user", "user", name)
        if actor == name and (
            change.current_password is None
            or not store.check_password(tenant, name, change.current_password)
        ):
            raise HTTPException(403, "changing your own password needs the current password")
        if change.version != obj.version:
            raise _stale("user", name, obj.version, change.version)
        with store.write(actor, "set-password", f"user '{name}'", "password changed", tenant) as db:
            version = store.update_object(db, tenant, "user", name, obj.data, change.version)
            if version is None:
                raise _stale("user", name, obj.version + 1, change.version)
            store.set_password(db, tenant, name, change.password)
        return _public_user(_get(tenant, "user", "user", name), True)

    # --- certificate authorities --------------------------------------------------------------

    @router.get("/certificate-authorities", summary="Certificate authorities")
    def cas(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [_public_ca(obj, store, tenant) for obj in store.objects(tenant, "ca")]

    @router.get("/certificate-authorities/{name}", summary="One certificate authority")
    def ca(name: str, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        authenticate(request, tenant)
        return _public_ca(_get(tenant, "ca", "certificate authority", name), store, tenant)

    @router.patch("/certificate-authorities/{name}", summary="Update the General tab")
    def update_ca(
        name: str, general: CAGeneral, request: Request, tenant: TenantId = 1
    ) -> dict[str, Any]:
        actor = authenticate(request, tenant)
        obj = _get(tenant, "ca", "certificate authority", name)
        data = dict(obj.data)
        changed = general.model_dump(exclude_none=True, exclude={"version"})
        data.update(changed)
        _update(
            tenant,
            actor,
            obj,
            "certificate authority",
            data,
            general.version,
            f"general: {', '.join(sorted(changed)) or 'nothing'}",
        )
        return _public_ca(_get(tenant, "ca", "certificate authority", name), store, tenant)

    @router.put(
        "/certificate-authorities/{name}/connection-zip",
        summary="Upload the CM connection zip",
        openapi_extra={"requestBody": {"content": {"application/zip": {}}, "required": True}},
    )
    async def upload_connection_zip(
        name: str, request: Request, version: int = Query(), tenant: TenantId = 1
    ) -> dict[str, Any]:
        actor = await run_in_threadpool(authenticate, request, tenant)
        body = await bounded_body(request, 10 * 1024 * 1024)
        return await run_in_threadpool(_store_connection_zip, name, body, version, tenant, actor)

    def _store_connection_zip(
        name: str, body: bytes, version: int, tenant: int, actor: str
    ) -> dict[str, Any]:
        obj = _get(tenant, "ca", "certificate authority", name)
        try:
            parsed = read_cm_connection(body)
        except ConnectionRefused as exc:
            raise HTTPException(400, f"connection zip refused: {exc}") from None
        if version != obj.version:
            raise _stale("certificate authority", name, obj.version, version)
        data = dict(obj.data)
        data["connection"] = {
            "url": parsed.url,
            "keystore_file": parsed.keystore_name,
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        with store.write(
            actor, "upload", f"certificate authority '{name}'", "CM connection zip", tenant
        ) as db:
            if store.update_object(db, tenant, "ca", name, data, version) is None:
                raise _stale("certificate authority", name, obj.version + 1, version)
            store.put_file(db, tenant, f"ca:{name}", "connection.zip", body)
        return _public_ca(_get(tenant, "ca", "certificate authority", name), store, tenant)

    @router.post(
        "/certificate-authorities/{name}/import-certificate-types",
        summary="Import certificate types (token procedures) from CM",
    )
    def import_types(name: str, request: Request, tenant: TenantId = 1) -> JSONResponse:
        actor = authenticate(request, tenant)
        obj = _get(tenant, "ca", "certificate authority", name)
        types, error = actions.certificate_types(store.file(tenant, f"ca:{name}", "connection.zip"))
        if error is not None:
            return JSONResponse({"ok": False, "certificate_types": [], "error": error})
        if sorted(types) != sorted(obj.data.get("certificate_types", [])):
            data = dict(obj.data)
            data["certificate_types"] = sorted(types)
            with store.write(
                actor,
                "import",
                f"certificate authority '{name}'",
                f"{len(types)} certificate types",
                tenant,
            ) as db:
                store.put_object(db, tenant, "ca", name, obj.package, data)
        return JSONResponse({"ok": True, "certificate_types": sorted(types), "error": None})

    @router.post(
        "/certificate-authorities/{name}/test-connection", summary="Test the connection to CM"
    )
    def test_ca(name: str, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        authenticate(request, tenant)
        _get(tenant, "ca", "certificate authority", name)
        return actions.test_ca(store.file(tenant, f"ca:{name}", "connection.zip"))

    # --- messaging servers --------------------------------------------------------------------

    @router.get("/messaging-servers", summary="Messaging servers")
    def messaging_servers(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [_public_messaging(obj) for obj in store.objects(tenant, "messaging_server")]

    @router.get("/messaging-servers/{name}", summary="One messaging server")
    def messaging_server(name: str, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        authenticate(request, tenant)
        return _public_messaging(_get(tenant, "messaging_server", "messaging server", name))

    @router.patch("/messaging-servers/{name}", summary="Update URL, token and lifespan")
    def update_messaging(
        name: str, update: MessagingUpdate, request: Request, tenant: TenantId = 1
    ) -> dict[str, Any]:
        actor = authenticate(request, tenant)
        obj = _get(tenant, "messaging_server", "messaging server", name)
        changed = update.model_dump(exclude_none=True, exclude={"version"})
        data = dict(obj.data)
        data.update(changed)
        _update(
            tenant,
            actor,
            obj,
            "messaging server",
            data,
            update.version,
            f"fields: {', '.join(sorted(changed)) or 'nothing'}",
        )
        return _public_messaging(_get(tenant, "messaging_server", "messaging server", name))

    @router.post("/messaging-servers/{name}/test-connection", summary="Ping round trip")
    def test_messaging(name: str, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        authenticate(request, tenant)
        obj = _get(tenant, "messaging_server", "messaging server", name)
        trusted = [str(o.data["pem"]) for o in store.objects(tenant, "trust")]
        return actions.test_messaging(dict(obj.data), trusted)

    # --- truststore ---------------------------------------------------------------------------

    @router.get("/truststore", summary="Certificates IDM trusts for outgoing HTTPS")
    def truststore(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [_trust_entry(obj) for obj in store.objects(tenant, "trust")]

    @router.post("/truststore", status_code=201, summary="Add a PEM certificate")
    def add_trust(entry: TrustAdd, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        actor = authenticate(request, tenant)
        try:
            certs = x509.load_pem_x509_certificates(entry.pem.encode())
        except ValueError:
            raise HTTPException(
                400, f"truststore entry '{entry.alias}' is not a PEM certificate"
            ) from None
        if len(certs) != 1:
            raise HTTPException(
                400,
                f"truststore entry '{entry.alias}' must hold exactly one "
                f"certificate, not {len(certs)}",
            )
        cert = certs[0]
        from cryptography.hazmat.primitives.serialization import Encoding

        der = cert.public_bytes(Encoding.DER)
        data = {
            "alias": entry.alias,
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.astimezone(UTC).isoformat(),
            "sha256": hashlib.sha256(der).hexdigest(),
            "pem": cert.public_bytes(Encoding.PEM).decode(),
        }
        existing = store.get(tenant, "trust", entry.alias)
        if existing is not None:
            if hmac.compare_digest(existing.data["sha256"], data["sha256"]):
                return _trust_entry(existing)
            raise HTTPException(
                409, f"truststore alias '{entry.alias}' holds another certificate; remove it first"
            )
        with store.write(
            actor, "add", f"truststore '{entry.alias}'", data["subject"], tenant
        ) as db:
            store.put_object(db, tenant, "trust", entry.alias, "admin", data)
        return {key: data[key] for key in ("alias", "subject", "issuer", "not_after", "sha256")}

    @router.delete("/truststore/{alias}", status_code=204, summary="Remove a certificate")
    def remove_trust(alias: str, request: Request, tenant: TenantId = 1) -> None:
        actor = authenticate(request, tenant)
        _get(tenant, "trust", "truststore entry", alias)
        with store.write(actor, "remove", f"truststore '{alias}'", "", tenant) as db:
            store.delete_object(db, tenant, "trust", alias)

    # --- processes, data pools, sub-processes -------------------------------------------------

    @router.get("/processes", summary="Processes with their tasks")
    def processes(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [_public_process(obj) for obj in store.objects(tenant, "process")]

    @router.get("/processes/{name}", summary="One process")
    def process(name: str, request: Request, tenant: TenantId = 1) -> dict[str, Any]:
        authenticate(request, tenant)
        return _public_process(_get(tenant, "process", "process", name))

    @router.put("/processes/{name}/tasks/{task}", summary="Bind a task's data pool and sub-process")
    def bind(
        name: str,
        task: str,
        binding: Annotated[TaskBinding, Body()],
        request: Request,
        tenant: TenantId = 1,
    ) -> dict[str, Any]:
        actor = authenticate(request, tenant)
        obj = _get(tenant, "process", "process", name)
        tasks = [dict(t) for t in obj.data.get("tasks", [])]
        match = [t for t in tasks if t["name"] == task]
        if not match:
            raise HTTPException(404, f"task '{task}' does not exist in process '{name}'")
        if match[0]["type"] != "callActivity":
            raise HTTPException(
                422, f"task '{task}' of process '{name}' takes no data pool or sub-process"
            )
        pools = sorted(o.name for o in store.objects(tenant, "data_pool"))
        subs = sorted(o.name for o in store.objects(tenant, "sub_process"))
        if binding.data_pool is not None and binding.data_pool not in pools:
            raise HTTPException(
                422,
                f"data pool '{binding.data_pool}' does not exist; valid: "
                f"{', '.join(pools) or 'none'}",
            )
        if binding.sub_process is not None and binding.sub_process not in subs:
            raise HTTPException(
                422,
                f"sub-process '{binding.sub_process}' does not exist; "
                f"valid: {', '.join(subs) or 'none'}",
            )
        match[0]["data_pool"] = binding.data_pool
        match[0]["sub_process"] = binding.sub_process
        data = dict(obj.data)
        data["tasks"] = tasks
        _update(
            tenant,
            actor,
            obj,
            "process",
            data,
            binding.version,
            f"task '{task}': data pool {binding.data_pool!r}, sub-process {binding.sub_process!r}",
        )
        return _public_process(_get(tenant, "process", "process", name))

    @router.get("/data-pools", summary="Data pools")
    def data_pools(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [
            {"name": o.name, "description": o.data.get("description", ""), "version": o.version}
            for o in store.objects(tenant, "data_pool")
        ]

    @router.get("/sub-processes", summary="Sub-processes")
    def sub_processes(request: Request, tenant: TenantId = 1) -> list[dict[str, Any]]:
        authenticate(request, tenant)
        return [
            {"name": o.name, "id": o.data.get("id", ""), "version": o.version}
            for o in store.objects(tenant, "sub_process")
        ]

    return router
