"""The access records both SQL stores keep alike: API credentials, the server's secrets, UI
users, their keys and their sessions. The statements are written once, with `?` for the
placeholder (`SqlDeliveryStore._sql` gives each store its own), and upsert with `ON
CONFLICT ... DO UPDATE`, which both databases take: a row is updated in place, never
deleted and inserted again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kindred.domain.credentials import ApiCredential
from kindred.domain.sessions import UiSession
from kindred.domain.users import UserKeyRecord, UserRecord
from kindred.storage.codec import CREDENTIAL_COLUMNS, credential_of, credential_row
from kindred.storage.outbox_sql import SqlDeliveryStore
from kindred.storage.sessions_sql import (
    SESSION_COLUMNS,
    session_of,
    session_row,
)
from kindred.storage.users_sql import (
    KEY_COLUMNS,
    USER_COLUMNS,
    key_of,
    key_row,
    user_of,
    user_row,
)

__all__ = ["SqlAccessRecords"]


def _upsert(table: str, columns: str) -> str:
    """Insert a row, or update every column but the first (the key) of the one it meets."""
    names = [c.strip() for c in columns.split(",")]
    marks = ", ".join("?" for _ in names)
    updates = ", ".join(f"{c} = excluded.{c}" for c in names[1:])
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        f" ON CONFLICT ({names[0]}) DO UPDATE SET {updates}"
    )


_SAVE_CREDENTIAL = _upsert("api_credentials", CREDENTIAL_COLUMNS)
_LIST_CREDENTIALS = (
    f"SELECT {CREDENTIAL_COLUMNS} FROM api_credentials ORDER BY created_ms, client_id"
)
_SAVE_USER = _upsert("users", USER_COLUMNS)
_SAVE_USER_KEY = _upsert("user_keys", KEY_COLUMNS)
_SAVE_SESSION = _upsert("ui_sessions", SESSION_COLUMNS)
_KEEP_SECRET = (
    "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
)
_REPLACE_SECRET = (
    "INSERT INTO server_secrets (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_SECRET = "SELECT value FROM server_secrets WHERE name = ?"
_SESSION_BY_KEY = f"SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE session_key = ?"
_END_SESSION = "UPDATE ui_sessions SET ended_ms = ? WHERE session_key = ? AND ended_ms IS NULL"
_PURGE_SESSIONS = "DELETE FROM ui_sessions WHERE expires_ms < ? OR ended_ms < ?"
_LIST_USERS = f"SELECT {USER_COLUMNS} FROM users ORDER BY name"
_DELETE_USER_KEYS = "DELETE FROM user_keys WHERE user_name = ?"
_DELETE_USER = "DELETE FROM users WHERE name = ?"
_LIST_USER_KEYS = f"SELECT {KEY_COLUMNS} FROM user_keys ORDER BY created_ms, key_id"


class SqlAccessRecords(SqlDeliveryStore):
    """Writes in the store's write transaction (`_delivery_tx`); reads through `_select`."""

    def _select(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows of a read (`?` placeholders), StoreUnavailable when the store cannot
        answer now."""
        raise NotImplementedError

    def save_credential(self, credential: ApiCredential) -> None:
        with self._delivery_tx() as cursor:
            self._raise_definitions_version(cursor)
            cursor.execute(self._sql(_SAVE_CREDENTIAL), credential_row(credential))

    def list_credentials(self) -> list[ApiCredential]:
        return [credential_of(row) for row in self._select(_LIST_CREDENTIALS)]

    def server_secret(self, name: str, candidate: bytes) -> bytes:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(_KEEP_SECRET), (name, candidate))
            cursor.execute(self._sql(_SECRET), (name,))
            row = cursor.fetchone()
        return bytes(row[0])  # inserted just above when there was none

    def replace_server_secret(self, name: str, value: bytes) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(_REPLACE_SECRET), (name, value))

    def save_user(self, user: UserRecord) -> None:
        with self._delivery_tx() as cursor:
            self._raise_definitions_version(cursor)
            cursor.execute(self._sql(_SAVE_USER), user_row(user))

    def remove_user(self, name: str) -> bool:
        with self._delivery_tx() as cursor:
            self._raise_definitions_version(cursor)
            cursor.execute(self._sql(_DELETE_USER_KEYS), (name,))
            cursor.execute(self._sql(_DELETE_USER), (name,))
            return int(cursor.rowcount) > 0

    def list_users(self) -> list[UserRecord]:
        return [user_of(row) for row in self._select(_LIST_USERS)]

    def save_user_key(self, key: UserKeyRecord) -> None:
        with self._delivery_tx() as cursor:
            self._raise_definitions_version(cursor)
            cursor.execute(self._sql(_SAVE_USER_KEY), key_row(key))

    def list_user_keys(self) -> list[UserKeyRecord]:
        return [key_of(row) for row in self._select(_LIST_USER_KEYS)]

    def save_session(self, session: UiSession) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(_SAVE_SESSION), session_row(session))

    def get_session(self, key: str) -> UiSession | None:
        rows = self._select(_SESSION_BY_KEY, (key,))
        return session_of(rows[0]) if rows else None

    def end_session(self, key: str, ended_ms: int) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(_END_SESSION), (ended_ms, key))

    def purge_sessions(self, before_ms: int) -> int:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(_PURGE_SESSIONS), (before_ms, before_ms))
            return int(cursor.rowcount)
