"""Identity Manager's state in the lab: one SQLite database (WAL), one transaction per write.

Every write goes through `Store.write()`, which runs in a `BEGIN IMMEDIATE` transaction and appends
its audit record in the same transaction: a write and its audit line land together or not at all,
so the audit count is an exact count of the writes that happened.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["AuditRecord", "Store", "StoredObject", "hash_password"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    tenant INTEGER NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,
    installed_at TEXT NOT NULL, PRIMARY KEY (tenant, name));
CREATE TABLE IF NOT EXISTS objects (
    tenant INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, package TEXT NOT NULL,
    data TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (tenant, kind, name));
CREATE TABLE IF NOT EXISTS passwords (
    tenant INTEGER NOT NULL, user TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (tenant, user));
CREATE TABLE IF NOT EXISTS files (
    tenant INTEGER NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (tenant, owner, name));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, tenant INTEGER, actor TEXT NOT NULL,
    action TEXT NOT NULL, object TEXT NOT NULL, detail TEXT NOT NULL);
"""

_ITERATIONS = 20_000
_VERIFIED_LIMIT = 256


def hash_password(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    salt = salt if salt is not None else os.urandom(16)
    return salt, hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)


@dataclass(frozen=True)
class StoredObject:
    kind: str
    name: str
    package: str
    data: dict[str, Any]
    version: int


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: str
    actor: str
    action: str
    object: str
    detail: str


class Store:
    """The lab IDM database; safe to share between threads (one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # Credentials that passed PBKDF2, remembered as an HMAC under a key that lives only in
        # this process, bound to the stored salt and hash: a changed password (from any process)
        # no longer matches, and a wrong password always pays the full PBKDF2 cost. HTTP Basic
        # sends the password with every request; without this each request spends ~10 ms here.
        self._verified_key = os.urandom(32)
        self._verified: set[bytes] = set()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    @contextmanager
    def write(
        self, actor: str, action: str, obj: str, detail: str = "", tenant: int | None = None
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction that records one audit line; an exception rolls both back."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute(
                "INSERT INTO audit (at, tenant, actor, action, object, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    datetime.now(UTC).isoformat(timespec="milliseconds"),
                    tenant,
                    actor,
                    action,
                    obj,
                    detail,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- reads -------------------------------------------------------------------------------

    def tenant_exists(self, tenant: int) -> bool:
        row = self._db.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant,)).fetchone()
        return row is not None

    def packages(self, tenant: int) -> list[dict[str, str]]:
        rows = self._db.execute(
            "SELECT name, version, sha256, installed_at FROM packages WHERE tenant = ? "
            "ORDER BY name",
            (tenant,),
        ).fetchall()
        return [dict(row) for row in rows]

    def objects(self, tenant: int, kind: str | None = None) -> list[StoredObject]:
        query = "SELECT kind, name, package, data, version FROM objects WHERE tenant = ?"
        args: tuple[Any, ...] = (tenant,)
        if kind is not None:
            query += " AND kind = ?"
            args += (kind,)
        rows = self._db.execute(query + " ORDER BY kind, name", args).fetchall()
        return [_object(row) for row in rows]

    def get(self, tenant: int, kind: str, name: str) -> StoredObject | None:
        row = self._db.execute(
            "SELECT kind, name, package, data, version FROM objects "
            "WHERE tenant = ? AND kind = ? AND name = ?",
            (tenant, kind, name),
        ).fetchone()
        return _object(row) if row is not None else None

    def check_password(self, tenant: int, user: str, password: str) -> bool:
        row = self._db.execute(
            "SELECT salt, hash FROM passwords WHERE tenant = ? AND user = ?", (tenant, user)
        ).fetchone()
        if row is None:
            hash_password(password)  # same cost for unknown users
            return False
        remembered = hmac.digest(
            self._verified_key,
            b"\0".join(
                (str(tenant).encode(), user.encode(), row["salt"], row["hash"], password.encode())
            ),
            "sha256",
        )
        if remembered in self._verified:
            return True
        _, computed = hash_password(password, row["salt"])
        if not hmac.compare_digest(computed, row["hash"]):
            return False
        if len(self._verified) >= _VERIFIED_LIMIT:
            self._verified.clear()
        self._verified.add(remembered)
        return True

    def has_password(self, tenant: int, user: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM passwords WHERE tenant = ? AND user = ?", (tenant, user)
        ).fetchone()
        return row is not None

    def file(self, tenant: int, owner: str, name: str) -> bytes | None:
        row = self._db.execute(
            "SELECT data FROM files WHERE tenant = ? AND owner = ? AND name = ?",
            (tenant, owner, name),
        ).fetchone()
        return bytes(row["data"]) if row is not None else None

    def audit_count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM audit").fetchone()
        return int(row[0])

    def audit(self, since: int = 0) -> list[AuditRecord]:
        rows = self._db.execute(
            "SELECT id, at, actor, action, object, detail FROM audit WHERE id > ? ORDER BY id",
            (since,),
        ).fetchall()
        return [AuditRecord(**dict(row)) for row in rows]

    # --- writes (inside `write()`) -------------------------------------------------------------

    @staticmethod
    def put_object(
        db: sqlite3.Connection,
        tenant: int,
        kind: str,
        name: str,
        package: str,
        data: dict[str, Any],
    ) -> int:
        """Insert or replace an object; returns its new version."""
        row = db.execute(
            "SELECT version FROM objects WHERE tenant = ? AND kind = ? AND name = ?",
            (tenant, kind, name),
        ).fetchone()
        version = 1 if row is None else int(row["version"]) + 1
        db.execute(
            "INSERT INTO objects (tenant, kind, name, package, data, version) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, kind, name) DO UPDATE SET "
            "package = excluded.package, data = excluded.data, version = excluded.version",
            (tenant, kind, name, package, json.dumps(data, sort_keys=True), version),
        )
        return version

    @staticmethod
    def update_object(
        db: sqlite3.Connection,
        tenant: int,
        kind: str,
        name: str,
        data: dict[str, Any],
        expected_version: int,
    ) -> int | None:
        """Compare-and-set: the new version, or None when `expected_version` is stale."""
        cursor = db.execute(
            "UPDATE objects SET data = ?, version = version + 1 WHERE tenant = ? AND kind = ? "
            "AND name = ? AND version = ? RETURNING version",
            (json.dumps(data, sort_keys=True), tenant, kind, name, expected_version),
        )
        row = cursor.fetchone()
        return int(row[0]) if row is not None else None

    @staticmethod
    def put_package(
        db: sqlite3.Connection, tenant: int, name: str, version: str, sha256: str
    ) -> None:
        db.execute(
            "INSERT INTO packages (tenant, name, version, sha256, installed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO UPDATE SET "
            "version = excluded.version, sha256 = excluded.sha256, "
            "installed_at = excluded.installed_at",
            (tenant, name, version, sha256, datetime.now(UTC).isoformat(timespec="seconds")),
        )

    @staticmethod
    def set_password(db: sqlite3.Connection, tenant: int, user: str, password: str) -> None:
        salt, digest = hash_password(password)
        db.execute(
            "INSERT INTO passwords (tenant, user, salt, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant, user) DO UPDATE SET salt = excluded.salt, hash = excluded.hash",
            (tenant, user, salt, digest),
        )

    @staticmethod
    def put_file(db: sqlite3.Connection, tenant: int, owner: str, name: str, data: bytes) -> None:
        db.execute(
            "INSERT INTO files (tenant, owner, name, data, sha256) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant, owner, name) DO UPDATE SET data = excluded.data, "
            "sha256 = excluded.sha256",
            (tenant, owner, name, data, hashlib.sha256(data).hexdigest()),
        )

    @staticmethod
    def delete_object(db: sqlite3.Connection, tenant: int, kind: str, name: str) -> bool:
        cursor = db.execute(
            "DELETE FROM objects WHERE tenant = ? AND kind = ? AND name = ?", (tenant, kind, name)
        )
        return cursor.rowcount > 0

    @staticmethod
    def add_tenant(db: sqlite3.Connection, tenant: int, name: str) -> None:
        db.execute("INSERT OR IGNORE INTO tenants (id, name) VALUES (?, ?)", (tenant, name))


def _object(row: sqlite3.Row) -> StoredObject:
    return StoredObject(
        kind=row["kind"],
        name=row["name"],
        package=row["package"],
        data=json.loads(row["data"]),
        version=int(row["version"]),
    )
