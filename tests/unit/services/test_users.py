"""Users and their admin API keys (services.access.users): the config file's and the
store's users merged, a name in both refused, keys shown once and kept hashed, a key's
caller with the user's role as it is now, and wrong keys limited like other secrets."""

from __future__ import annotations

import asyncio

import pytest

from kindred.domain.credentials import hash_secret
from kindred.domain.errors import AuthMissing, Conflict, InvalidBatch, NotFound, RateLimited
from kindred.domain.users import Principal, Role, UserRecord
from kindred.services.access.attempts import AttemptLimit, SecretChecker
from kindred.services.access.users import AdminCallers, KeyLimits, UserDirectory
from kindred.storage.memory import MemoryStore
from kindred.system import SecureSecrets
from tests.fakes import FakeClock

CONFIGURED = [
    UserRecord(name="root", role="admin", password_hash=hash_secret("pw", b"s"), origin="config")
]
PLENTY = KeyLimits(per_key=AttemptLimit(600, 100), per_address=AttemptLimit(600, 100))


def directory(store: MemoryStore | None = None) -> UserDirectory:
    return UserDirectory(CONFIGURED, store or MemoryStore(), FakeClock(), SecureSecrets())


def callers(users: UserDirectory, limits: KeyLimits = PLENTY) -> AdminCallers:
    return AdminCallers(users, "boot-token", FakeClock(), limits=limits, checker=SecretChecker())


def caller(admin: AdminCallers, header: str | None, address: str = "192.0.2.1") -> Principal:
    return asyncio.run(admin.caller(header, address))


def test_config_and_store_users_are_one_directory() -> None:
    users = directory()
    users.add("ann", "editor", "long-password")
    assert [(u.name, u.role, u.origin) for u in users.all()] == [
        ("ann", "editor", "store"),
        ("root", "admin", "config"),
    ]
    assert users.role_of("ann") is Role.EDITOR
    assert users.password_hash("ann") != "long-password"


def test_a_config_users_name_is_refused_in_the_store() -> None:
    users = directory()
    with pytest.raises(Conflict, match="in the config file"):
        users.add("root", "viewer", "long-password")
    with pytest.raises(Conflict, match="change it there"):
        users.set_role("root", "viewer")
    with pytest.raises(Conflict, match="change it there"):
        users.remove("root")


def test_a_clash_made_by_the_config_later_leaves_the_name_unusable() -> None:
    store = MemoryStore()
    UserDirectory([], store, FakeClock(), SecureSecrets()).add("root", "viewer", "long-password")
    users = directory(store)
    assert users.clashes() == ("root",)
    assert users.get("root") is None


def test_bad_users_are_refused() -> None:
    users = directory()
    users.add("ann", "editor", "long-password")
    with pytest.raises(Conflict, match="exists already"):
        users.add("ann", "viewer", "long-password")
    with pytest.raises(InvalidBatch, match="unknown role"):
        users.add("bob", "owner", "long-password")
    with pytest.raises(InvalidBatch, match="at least 8"):
        users.add("bob", "viewer", "short")
    with pytest.raises(NotFound):
        users.set_role("bob", "viewer")


def test_a_key_is_its_users_with_the_role_as_it_is_now() -> None:
    users = directory()
    users.add("ann", "viewer", "long-password")
    issued = users.create_key("ann")
    assert issued.key.startswith(f"kdk_{issued.key_id}_")
    stored = users.keys("ann")[0]
    assert issued.key.split("_", 2)[2] not in stored.secret_hash
    admin = callers(users)
    assert caller(admin, f"Bearer {issued.key}") == Principal("ann", Role.VIEWER)
    users.set_role("ann", "editor")
    assert caller(admin, f"Bearer {issued.key}") == Principal("ann", Role.EDITOR)


def test_a_revoked_key_or_a_removed_user_is_refused_at_once() -> None:
    users = directory()
    users.add("ann", "editor", "long-password")
    first, second = users.create_key("ann"), users.create_key("ann")
    admin = callers(users)
    assert caller(admin, f"Bearer {first.key}").name == "ann"
    users.revoke_key("ann", first.key_id)
    with pytest.raises(AuthMissing, match="revoked"):
        caller(admin, f"Bearer {first.key}")
    assert caller(admin, f"Bearer {second.key}").name == "ann"
    users.remove("ann")
    with pytest.raises(AuthMissing):
        caller(admin, f"Bearer {second.key}")


def test_the_admin_token_is_an_admin_and_anything_else_is_401() -> None:
    users = directory()
    users.add("ann", "editor", "long-password")
    issued = users.create_key("ann")
    admin = callers(users)
    assert caller(admin, "Bearer boot-token") == Principal("admin token", Role.ADMIN, user=False)
    for header in (None, "", "Basic abc", "Bearer ", "Bearer wrong", f"Bearer {issued.key}x"):
        with pytest.raises(AuthMissing):
            caller(admin, header)


def test_wrong_keys_are_limited_per_address_and_per_key_id() -> None:
    users = directory()
    users.add("ann", "editor", "long-password")
    issued = users.create_key("ann")
    tight = KeyLimits(per_key=AttemptLimit(1, 2), per_address=AttemptLimit(1, 100))
    admin = callers(users, tight)
    for _ in range(2):
        with pytest.raises(AuthMissing):
            caller(admin, f"Bearer kdk_{issued.key_id}_wrong", address="198.51.100.7")
    with pytest.raises(RateLimited):
        caller(admin, f"Bearer {issued.key}", address="198.51.100.8")
    by_address = callers(users, KeyLimits(AttemptLimit(1, 100), AttemptLimit(1, 1)))
    with pytest.raises(AuthMissing):
        caller(by_address, "Bearer guess-1", address="198.51.100.9")
    with pytest.raises(RateLimited):
        caller(by_address, "Bearer guess-2", address="198.51.100.9")
