"""Users and their admin API keys in the SQL stores (tables `users`, `user_keys`): the rows
both stores read and write (the statements are in access_sql.py)."""

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
