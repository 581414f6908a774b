"""Identity Manager in the lab: one HTTPS server with the two Tomcat context paths.

Vendor-documented part: the deploy API `GET|POST /idm-admin/ws/deploy/configuration?tenantId=N
[&overwrite=true]` with HTTP Basic, zip in and zip out (in IDM Operator too, under
`/idm-operator/`), and IDM Operator's Hermod callback endpoint.
The admin contract under `/idm-admin/api/v1/` is the lab's own (docs/admin-api.md); with
`documented_only` the lab serves what Nexus documents and nothing else, and the contract answers
404 with Tomcat's HTML page, as a real IDM does.

The lab's own instrumentation: `GET /smartid-lab/requests` counts the requests per path since the
lab started (no real IDM has it), so that a test can show a run made none to the contract.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartid.lab.admin_api import Actions, create_admin_router
from smartid.lab.deploy import DeployConflict, export_configuration, install
from smartid.lab.faults import FaultSet, export_signing, operator_unbound
from smartid.lab.idm_actions import CallbackInbox
from smartid.lab.package import PackageRejected, read_package
from smartid.lab.pki import LabPKI
from smartid.lab.store import Store
from smartid.lab.web import basic_credentials, bounded_body, unauthorized

__all__ = ["HERMOD_CALLBACK_BASE", "MAX_UPLOAD_BYTES", "IdmLab", "create_idm_app"]

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
ADMIN_ROLE = "Administrator"
HERMOD_ROLE = "Hermod callback"
# IDM Operator's base for Hermod's callbacks: the callback-url a lab site gives Hermod.
HERMOD_CALLBACK_BASE = "/idm-operator/ws/hermod"
DEFAULT_TENANT = 1
REALM = "Identity Manager"
CONTRACT_PREFIX = "/idm-admin/api/"
# What Tomcat answers for a path no web application serves.
_TOMCAT_404 = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 404 \u2013 Not Found</title>'
    '</head><body><h1>HTTP Status 404 \u2013 Not Found</h1><hr class="line" /><p><b>Type'
    "</b> Status Report</p><p><b>Description</b> The origin server did not find a current "
    "representation for the target resource or is not willing to disclose that one exists.</p>"
    '<hr class="line" /><h3>Apache Tomcat</h3></body></html>'
)


class RequestCounts:
    """Requests per path (no query string) since the lab started, for tests to read."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, path: str) -> None:
        with self._lock:
            self._counts[path] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _Counting:
    """ASGI middleware: every HTTP request is counted before anything else sees it."""

    def __init__(self, app: ASGIApp, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.counts.add(scope["path"])
        await self.app(scope, receive, send)


# What IDM's Tomcat sends with its HttpHeaderSecurityFilter's HSTS on, one year (TLS-008).
HSTS = "max-age=31536000; includeSubDomains"


class _StrictTransportSecurity:
    """ASGI middleware: every answer carries Strict-Transport-Security, unless the fault
    `idm-hsts-missing` is on."""

    def __init__(self, app: ASGIApp, lab: IdmLab) -> None:
        self.app = app
        self.lab = lab

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.lab.fault("idm-hsts-missing"):
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"strict-transport-security", HSTS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_header)


@dataclass
class IdmLab:
    """What the IDM app needs from the lab."""

    store: Store
    actions: Actions = field(default_factory=Actions)
    inbox: CallbackInbox = field(default_factory=CallbackInbox)
    faults: FaultSet | None = None
    documented_only: bool = False
    requests: RequestCounts = field(default_factory=RequestCounts)
    # The lab PKI whose configuration signer signs the export; without one it is not signed.
    pki: LabPKI | None = None

    # Where Hermod's callbacks arrive under HERMOD_CALLBACK_BASE: the suffix the lab's Hermod
    # appends to the callback-url, <type> standing for the command type.
    callback_suffix: str = "/callback/<type>"

    @property
    def hermod_callback_path(self) -> str:
        return HERMOD_CALLBACK_BASE + self.callback_suffix.replace("<type>", "{command}")

    def fault(self, name: str) -> bool:
        return self.faults is not None and self.faults.is_on(name)

    def export(self, tenant: int, *, operator: bool = False) -> bytes:
        """The configuration download (IDM Admin's, or IDM Operator's when `operator`): a JAR
        signed by the lab's configuration signer, or by the fault's variant of it. The lab
        serves the download whatever the signer's validity (a real IDM blocks it when the signer
        has expired), so that the suite can show the signer. Both applications export the one
        tenant configuration, except where a fault makes Operator's stale."""
        on = self.faults.active() if self.faults is not None else frozenset()
        unbound = operator_unbound(on) if operator else frozenset()
        signing = export_signing(self.pki, on) if self.pki is not None else None
        return export_configuration(self.store, tenant, signing, unbound=unbound)


def authenticate(lab: IdmLab, request: Request, tenant: int, role: str | None) -> str:
    """The authenticated user name; 401 without revealing whether the user exists."""
    user, password = basic_credentials(request, REALM)
    if not lab.store.check_password(tenant, user, password):
        raise unauthorized(REALM)
    if role is not None:
        stored = lab.store.get(tenant, "user", user)
        if stored is None or role not in stored.data.get("roles", []):
            raise HTTPException(403, f"user lacks the role '{role}'")
    return user


def _tenant(lab: IdmLab, tenant_id: int | None) -> int:
    if tenant_id is None:
        raise HTTPException(400, "query parameter tenantId is required")
    if not lab.store.tenant_exists(tenant_id):
        raise HTTPException(400, f"unknown tenant {tenant_id}")
    return tenant_id


def create_idm_app(lab: IdmLab) -> FastAPI:
    app = FastAPI(
        title="Smart ID lab: Identity Manager",
        version="1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None if lab.documented_only else "/idm-admin/api/v1/openapi.json",
    )

    app.add_middleware(_StrictTransportSecurity, lab=lab)
    app.add_middleware(_Counting, counts=lab.requests)

    @app.get("/smartid-lab/requests", include_in_schema=False)
    def requests() -> dict[str, int]:
        return lab.requests.snapshot()

    @app.get("/idm-admin/", include_in_schema=False)
    def admin_banner() -> dict[str, object]:
        return {
            "component": "Identity Manager Admin",
            "lab": "smartid",
            "documented_only": lab.documented_only,
        }

    @app.get("/idm-operator/", include_in_schema=False)
    def operator_banner() -> dict[str, str]:
        return {"component": "Identity Manager Operator", "lab": "smartid"}

    @app.get(
        "/idm-operator/ws/deploy/configuration",
        tags=["deploy"],
        response_class=Response,
        summary="Download the tenant's configuration zip (IDM Operator)",
    )
    @app.get(
        "/idm-admin/ws/deploy/configuration",
        tags=["deploy"],
        response_class=Response,
        summary="Download the tenant's configuration zip",
    )
    def download(
        request: Request, tenant_id: int | None = Query(None, alias="tenantId")
    ) -> Response:
        user_tenant = _tenant(lab, tenant_id)
        authenticate(lab, request, user_tenant, ADMIN_ROLE)
        data = lab.export(user_tenant, operator=request.url.path.startswith("/idm-operator/"))
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="configuration.zip"'},
        )

    @app.post(
        "/idm-operator/ws/deploy/configuration",
        tags=["deploy"],
        summary="Upload a configuration zip (IDM Operator)",
    )
    @app.post(
        "/idm-admin/ws/deploy/configuration", tags=["deploy"], summary="Upload a configuration zip"
    )
    async def upload(
        request: Request,
        tenant_id: int | None = Query(None, alias="tenantId"),
        overwrite: bool = False,
    ) -> JSONResponse:
        tenant = await run_in_threadpool(_tenant, lab, tenant_id)
        user = await run_in_threadpool(authenticate, lab, request, tenant, ADMIN_ROLE)
        body = await bounded_body(request, MAX_UPLOAD_BYTES)
        try:
            package = await run_in_threadpool(read_package, body)
        except PackageRejected as exc:
            raise HTTPException(400, f"package refused: {exc}") from None
        try:
            result = await run_in_threadpool(
                lambda: install(lab.store, tenant, package, overwrite=overwrite, actor=user)
            )
        except DeployConflict as exc:
            raise HTTPException(409, str(exc)) from None
        return JSONResponse(result.as_json())

    @app.post(
        lab.hermod_callback_path,
        tags=["operator"],
        summary="Smart ID Messaging callback (HTTP Basic of the hermod user)",
    )
    async def hermod_callback(command: str, request: Request) -> JSONResponse:
        body = await bounded_body(request, 64 * 1024)
        if lab.fault("hermod-callback-refused"):
            raise HTTPException(403, "callbacks from Smart ID Messaging are refused")
        user: str | None = None
        if not lab.fault("idm-callback-anonymous"):
            user = await run_in_threadpool(authenticate, lab, request, DEFAULT_TENANT, HERMOD_ROLE)
        try:
            message = json.loads(body)
            command_id = str(message["commandId"])
        except (ValueError, KeyError, TypeError):
            raise HTTPException(400, "a callback carries a JSON object with commandId") from None
        lab.inbox.add(command_id, command, user)
        return JSONResponse({"received": command_id})

    def admin(request: Request, tenant: int) -> str:
        if not lab.store.tenant_exists(tenant):
            raise HTTPException(400, f"unknown tenant {tenant}")
        return authenticate(lab, request, tenant, ADMIN_ROLE)

    if lab.documented_only:

        @app.api_route(
            CONTRACT_PREFIX + "{rest:path}",
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        )
        def not_served(rest: str) -> HTMLResponse:
            return HTMLResponse(_TOMCAT_404, status_code=404)

    else:
        app.include_router(create_admin_router(lab.store, admin, lab.actions))
    return app
