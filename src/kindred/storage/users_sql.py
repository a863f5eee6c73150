"""Users and their admin API keys in the SQL stores (tables `users`, `user_keys`): the rows
and the statements both stores run, in the placeholder style of each (`?` or `%s`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kindred.domain.users import UserKeyRecord, UserRecord

__all__ = [
    "KEY_COLUMNS",
    "USER_COLUMNS",
    "key_of",
    "key_row",
    "user_of",
    "user_row",
    "user_statements",
]

USER_COLUMNS = "name, role, password_hash, created_ms"
KEY_COLUMNS = "key_id, user_name, secret_hash, created_ms, revoked_ms"


def user_row(user: UserRecord) -> tuple[object, ...]:
    return (user.name, user.role, user.password_hash, user.created_ms)


def user_of(row: Sequence[Any]) -> UserRecord:
    name, role, password_hash, created = row
    return UserRecord(
        name=str(name), role=str(role), password_hash=str(password_hash), created_ms=int(created)
    )


def key_row(key: UserKeyRecord) -> tuple[object, ...]:
    return (key.key_id, key.user, key.secret_hash, key.created_ms, key.revoked_ms)


def key_of(row: Sequence[Any]) -> UserKeyRecord:
    key_id, user, secret_hash, created, revoked = row
    return UserKeyRecord(
        key_id=str(key_id),
        user=str(user),
        secret_hash=str(secret_hash),
        created_ms=int(created),
        revoked_ms=None if revoked is None else int(revoked),
    )


def user_statements(mark: str) -> tuple[str, str, str, str]:
    """(list users, delete a user's keys, delete a user, list keys) with `mark` as the
    placeholder."""
    return (
        f"SELECT {USER_COLUMNS} FROM users ORDER BY name",
        f"DELETE FROM user_keys WHERE user_name = {mark}",
        f"DELETE FROM users WHERE name = {mark}",
        f"SELECT {KEY_COLUMNS} FROM user_keys ORDER BY created_ms, key_id",
    )
