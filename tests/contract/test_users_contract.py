"""The store contract for users and their admin API keys, on every store: saved and
listed, replaced by name or key id, removed with every key of theirs; each write raises the
definitions' version (every process sees a removed user or a revoked key at once)."""

from __future__ import annotations

from kindred.domain.users import UserKeyRecord, UserRecord
from kindred.ports import Store

__all__: list[str] = []


def user(name: str, role: str = "editor", created_ms: int = 1_000) -> UserRecord:
    return UserRecord(
        name=name, role=role, password_hash=f"scrypt$hash-of-{name}", created_ms=created_ms
    )


def key(
    key_id: str, owner: str, created_ms: int = 2_000, revoked_ms: int | None = None
) -> UserKeyRecord:
    return UserKeyRecord(
        key_id=key_id,
        user=owner,
        secret_hash=f"scrypt$hash-of-{key_id}",
        created_ms=created_ms,
        revoked_ms=revoked_ms,
    )


def test_users_are_listed_by_name_and_replaced_by_name(store: Store) -> None:
    assert store.list_users() == []
    store.save_user(user("zoe"))
    store.save_user(user("ann", "viewer"))
    assert store.list_users() == [user("ann", "viewer"), user("zoe")]
    store.save_user(user("ann", "admin"))
    assert store.list_users() == [user("ann", "admin"), user("zoe")]


def test_keys_are_listed_by_creation_and_a_revocation_replaces_the_key(store: Store) -> None:
    store.save_user(user("ann"))
    store.save_user_key(key("k2", "ann", created_ms=3_000))
    store.save_user_key(key("k1", "ann", created_ms=3_000))
    store.save_user_key(key("k0", "ann", created_ms=5_000))
    assert [k.key_id for k in store.list_user_keys()] == ["k1", "k2", "k0"]
    store.save_user_key(key("k2", "ann", created_ms=3_000, revoked_ms=9_000))
    assert store.list_user_keys()[1] == key("k2", "ann", created_ms=3_000, revoked_ms=9_000)


def test_a_user_saved_again_keeps_their_keys(store: Store) -> None:
    """Saved again (a new role, a new password) the user is updated in place: a store that
    deleted and inserted the row could take their keys with it."""
    store.save_user(user("ann"))
    store.save_user_key(key("a1", "ann"))
    store.save_user(user("ann", "admin"))
    assert store.list_users() == [user("ann", "admin")]
    assert store.list_user_keys() == [key("a1", "ann")]


def test_removing_a_user_removes_their_keys_only(store: Store) -> None:
    store.save_user(user("ann"))
    store.save_user(user("bob"))
    store.save_user_key(key("a1", "ann"))
    store.save_user_key(key("b1", "bob"))
    assert store.remove_user("ann") is True
    assert store.remove_user("ann") is False
    assert store.list_users() == [user("bob")]
    assert store.list_user_keys() == [key("b1", "bob")]


def test_every_write_raises_the_definitions_version(store: Store) -> None:
    seen = [store.definitions_version()]
    store.save_user(user("ann"))
    seen.append(store.definitions_version())
    store.save_user_key(key("a1", "ann"))
    seen.append(store.definitions_version())
    store.remove_user("ann")
    seen.append(store.definitions_version())
    assert seen == sorted(set(seen)), seen
