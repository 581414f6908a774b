"""The lab's password check: PBKDF2 once per good credential, never for a remembered one, always
for a wrong one, and a changed password (from any process) is not remembered."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartid.lab import store as store_module
from smartid.lab.store import Store

TENANT = 1
RIGHT = "Right-Passw0rd-1"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    created = Store(tmp_path / "idm.sqlite")
    with created.write("test", "create", "user alice", tenant=TENANT) as db:
        Store.set_password(db, TENANT, "alice", RIGHT)
    return created


@pytest.fixture
def pbkdf2_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = store_module.hash_password

    def counted(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
        calls.append(password)
        return real(password, salt)

    monkeypatch.setattr(store_module, "hash_password", counted)
    return calls


def test_a_good_credential_is_derived_once(store: Store, pbkdf2_calls: list[str]) -> None:
    assert store.check_password(TENANT, "alice", RIGHT)
    assert store.check_password(TENANT, "alice", RIGHT)
    assert len(pbkdf2_calls) == 1


def test_a_wrong_password_always_pays_and_is_refused(store: Store, pbkdf2_calls: list[str]) -> None:
    assert store.check_password(TENANT, "alice", RIGHT)
    for _ in range(3):
        assert not store.check_password(TENANT, "alice", "Wrong-Passw0rd-1")
    assert not store.check_password(TENANT, "alice", RIGHT + "x")
    assert not store.check_password(TENANT, "bob", RIGHT)  # unknown user: same cost
    assert len(pbkdf2_calls) == 1 + 3 + 1 + 1


def test_a_password_changed_by_another_process_is_not_remembered(
    store: Store, tmp_path: Path
) -> None:
    assert store.check_password(TENANT, "alice", RIGHT)
    other = Store(tmp_path / "idm.sqlite")  # as the CLI's reset or another lab process sees it
    with other.write("test", "set-password", "user alice", tenant=TENANT) as db:
        Store.set_password(db, TENANT, "alice", "Changed-Passw0rd-2")
    assert not store.check_password(TENANT, "alice", RIGHT)
    assert store.check_password(TENANT, "alice", "Changed-Passw0rd-2")


def test_nothing_remembered_holds_the_password(store: Store) -> None:
    assert store.check_password(TENANT, "alice", RIGHT)
    remembered = b"".join(store._verified)
    assert RIGHT.encode() not in remembered
    assert len(store._verified) == 1
