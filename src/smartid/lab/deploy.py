"""Installing and exporting configuration packages: the behaviour behind IDM's deploy API.

An upload installs all of a package's objects in one transaction or nothing. Process definitions
are versioned as in the BPMN engine: a package may bring a new version of a process that another
package installed. Any other object that exists with different content is a conflict unless the
caller asked to overwrite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, get_args

from smartid.lab.jarsign import Signing, signed_jar
from smartid.lab.package import ObjectKind, Package, PackageObject, bind_task, package_files
from smartid.lab.store import Store
from smartid.safezip import deterministic_zip

__all__ = ["DeployConflict", "InstallResult", "export_configuration", "install"]

VERSIONED_KINDS = frozenset({"process", "sub_process"})
EXPORTED_KINDS = frozenset(get_args(ObjectKind))


class DeployConflict(Exception):
    """The package would replace objects that differ, and overwrite was not asked for."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        super().__init__(
            f"objects exist with different content: {listed}; "
            "upload again with overwrite=true to replace them"
        )


@dataclass(frozen=True)
class InstallResult:
    package: str
    version: str
    sha256: str
    created: tuple[str, ...]
    replaced: tuple[str, ...]
    unchanged: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "sha256": self.sha256,
            "created": list(self.created),
            "replaced": list(self.replaced),
            "unchanged": list(self.unchanged),
        }


def _object_data(obj: PackageObject) -> dict[str, Any]:
    data = dict(obj.data)
    if obj.kind in VERSIONED_KINDS:
        data["tasks"] = [dict(task) for task in data.get("tasks", [])]
    return data


def install(
    store: Store, tenant: int, package: Package, *, overwrite: bool, actor: str
) -> InstallResult:
    created: list[str] = []
    replaced: list[str] = []
    unchanged: list[str] = []
    with store.write(
        actor,
        "deploy",
        f"package {package.name}",
        f"version {package.version} sha256 {package.sha256}",
        tenant,
    ) as db:
        conflicts = []
        for obj in package.objects:
            current = store.get(tenant, obj.kind, obj.name)
            label = f"{obj.kind} '{obj.name}'"
            if current is None:
                created.append(label)
            elif current.data == _object_data(obj):
                unchanged.append(label)
            elif obj.kind in VERSIONED_KINDS or overwrite:
                replaced.append(label)
            else:
                conflicts.append(label)
        if conflicts:
            raise DeployConflict(conflicts)
        for obj in package.objects:
            label = f"{obj.kind} '{obj.name}'"
            if label not in unchanged:
                store.put_object(db, tenant, obj.kind, obj.name, package.name, _object_data(obj))
        store.put_package(db, tenant, package.name, package.version, package.sha256)
    return InstallResult(
        package.name,
        package.version,
        package.sha256,
        tuple(created),
        tuple(replaced),
        tuple(unchanged),
    )


def export_configuration(
    store: Store,
    tenant: int,
    signing: Signing | None = None,
    *,
    unbound: frozenset[tuple[str, str]] = frozenset(),
) -> bytes:
    """The tenant's live configuration as one package zip, task bindings included, a signed JAR
    when `signing` is given (as IDM signs by default). What is not configuration (the truststore,
    which lives in IDM's Java runtime) is not exported; a messaging server's token is exported
    as its sha256 fingerprint. The (process, task) pairs in `unbound` are exported as their
    package brought them, without the bindings made since (a fault's stale runtime)."""
    objects = []
    for stored in store.objects(tenant):
        if stored.kind not in EXPORTED_KINDS:
            continue
        data = dict(stored.data)
        if stored.kind in VERSIONED_KINDS and "bpmn" in data:
            bpmn = str(data["bpmn"])
            for task in data.get("tasks", []):
                if (stored.name, task.get("name")) in unbound:
                    continue
                if task.get("type") == "callActivity":
                    bpmn = bind_task(
                        bpmn, task["name"], task.get("data_pool"), task.get("sub_process")
                    )
            data["bpmn"] = bpmn
        if stored.kind == "messaging_server" and data.get("authentication_token"):
            # The lab exports the token as its fingerprint: what the download needs for a
            # comparison, and no secret in a file that leaves IDM.
            token = str(data.pop("authentication_token"))
            data["authentication_token_sha256"] = hashlib.sha256(token.encode()).hexdigest()
        objects.append(PackageObject(kind=stored.kind, name=stored.name, data=data))  # type: ignore[arg-type]
    files = package_files("configuration", "export", f"configuration of tenant {tenant}", objects)
    if signing is None:
        return deterministic_zip(files, mode=0o644)
    return signed_jar(files, signing)
