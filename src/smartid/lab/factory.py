"""The lab's factory state (docs/lab.md): IDM with admin/admin and the Users package installed;
SharedCredentials absent."""

from __future__ import annotations

from smartid.lab.deploy import install
from smartid.lab.package import demo_package, read_package
from smartid.lab.store import Store

__all__ = ["DEFAULT_TENANT", "create", "reset"]

DEFAULT_TENANT = 1
ADMIN = "admin"
DEFAULT_ADMIN_PASSWORD = "admin"  # noqa: S105 - the vendor's documented default


def create(store: Store) -> None:
    with store.write("factory", "create", "tenant 1", "factory state") as db:
        store.add_tenant(db, DEFAULT_TENANT, "Default")
        store.put_object(
            db,
            DEFAULT_TENANT,
            "user",
            ADMIN,
            "bootstrap",
            {"name": ADMIN, "full_name": "Administrator", "roles": ["Administrator"]},
        )
        store.set_password(db, DEFAULT_TENANT, ADMIN, DEFAULT_ADMIN_PASSWORD)
    install(
        store, DEFAULT_TENANT, read_package(demo_package("users")), overwrite=False, actor="factory"
    )


def reset(store: Store) -> None:
    """Back to factory state in place, so that a running lab keeps serving."""
    with store.write("factory", "reset", "all tenants", "back to factory state") as db:
        for table in ("objects", "packages", "passwords", "tenants", "files"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    create(store)
