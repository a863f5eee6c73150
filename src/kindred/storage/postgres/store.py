"""PostgreSQL store: one psycopg connection pool shared by reads and units of work.

Many API and worker processes may share one database, so nothing here relies on a lock in
this process: profile saves are optimistic (a version check in the statement), identity
resolution is serialized with transaction-scoped advisory locks, and migrations with a
session-scoped one.

What jsonb and text cannot hold, and so this store does not keep: NUL characters (saving
fails), a float's negative zero (read back as 0.0) and the order of keys in a document (dicts
come back equal, in another order).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors
from psycopg.abc import Params
from psycopg.rows import TupleRow, kwargs_row
from psycopg_pool import ConnectionPool

from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.ports import ConcurrentUpdate, LogEntry, RejectEntry
from kindred.storage.codec import (
    LOG_INSERT_COLUMNS,
    REJECT_INSERT_COLUMNS,
    decode_profile,
    encode_profile,
    log_row,
    reject_row,
)
from kindred.storage.migrations import Migration, load_migrations

__all__ = ["PostgresStore"]

_Connection = psycopg.Connection[TupleRow]

# The two-int advisory key space never overlaps the bigint one used for identities.
_MIGRATION_LOCK = (0x6B696E64, 1)  # "kind"

# The server reports these when two transactions collide; the caller's remedy is the same as
# for a lost version check: run the transaction again.
_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)

_LOG_COLUMNS = (
    "id, input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body"
)
_REJECT_COLUMNS = "id, input, received_ms, kind, reason, body, replayed_ms"

_INSERT_PROFILE = (
    "INSERT INTO profiles (mpid, scope, version, created_ms, last_stored_ms, doc)"
    " VALUES (%(mpid)s, %(scope)s, %(version)s, %(created_ms)s, %(last_stored_ms)s,"
    " %(doc)s::jsonb) ON CONFLICT (mpid) DO NOTHING"
)
# Row locks make a concurrent UPDATE wait, then re-check `version` against the committed row.
_UPDATE_PROFILE = (
    "UPDATE profiles SET version = %(version)s, last_stored_ms = %(last_stored_ms)s,"
    " doc = %(doc)s::jsonb WHERE mpid = %(mpid)s AND version = %(version)s - 1"
)
_FIND_IDENTITIES = (
    "SELECT i.id_type, i.id_value, i.mpid FROM identities AS i"
    " JOIN unnest(%s::text[], %s::text[]) AS k (id_type, id_value)"
    " ON i.id_type = k.id_type AND i.id_value = k.id_value"
    " WHERE i.scope = %s ORDER BY i.mpid"
)
_LINK_IDENTITIES = (
    "INSERT INTO identities (scope, id_type, id_value, mpid)"
    " SELECT %s, k.id_type, k.id_value, %s"
    " FROM unnest(%s::text[], %s::text[]) AS k (id_type, id_value)"
    " ON CONFLICT DO NOTHING"
)
_UNLINK_IDENTITIES = (
    "DELETE FROM identities AS i USING unnest(%s::text[], %s::text[]) AS k (id_type, id_value)"
    " WHERE i.scope = %s AND i.mpid = %s AND i.id_type = k.id_type AND i.id_value = k.id_value"
)
# ORDER BY makes the server take the locks in key order (volatile output expressions are
# evaluated after the sort), so two transactions wanting overlapping sets cannot deadlock.
_LOCK_IDENTITIES = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k"
_APPEND_LOG = (
    f"INSERT INTO event_log ({LOG_INSERT_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
_RECORD_REJECT = (
    f"INSERT INTO rejects ({REJECT_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
)
_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
)


class _PostgresUnitOfWork:
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def _execute(self, query: str, params: Params) -> psycopg.Cursor[TupleRow]:
        try:
            return self.conn.execute(query, params)
        except _RETRYABLE as exc:
            raise ConcurrentUpdate(str(exc)) from exc

    def lock_identities(self, scope: str, keys: Sequence[IdentityKey]) -> None:
        lock_ids = list({_identity_lock_id(scope, key) for key in keys})
        if lock_ids:
            self._execute(_LOCK_IDENTITIES, (lock_ids,))

    def find_identities(
        self, scope: str, keys: Sequence[IdentityKey]
    ) -> dict[IdentityKey, list[int]]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        found: dict[IdentityKey, list[int]] = {}
        for id_type, id_value, mpid in self._execute(_FIND_IDENTITIES, (*_columns(wanted), scope)):
            found.setdefault(IdentityKey(id_type, id_value), []).append(mpid)
        return {key: found[key] for key in wanted if key in found}

    def load_profiles(self, mpids: Iterable[int]) -> dict[int, Profile]:
        wanted = list(mpids)
        if not wanted:
            return {}
        rows = self._execute(
            "SELECT mpid, doc::text FROM profiles WHERE mpid = ANY(%s::bigint[])", (wanted,)
        )
        loaded = {mpid: decode_profile(doc) for mpid, doc in rows}
        return {mpid: loaded[mpid] for mpid in wanted if mpid in loaded}

    def save_profile(self, profile: Profile) -> None:
        # An upsert would also create a missing profile at version 5; the contract wants
        # version 1 for a new profile, so creating and replacing are separate statements.
        query = _INSERT_PROFILE if profile.version == 1 else _UPDATE_PROFILE
        params = {
            "mpid": profile.mpid,
            "scope": profile.scope,
            "version": profile.version,
            "created_ms": profile.created_ms,
            "last_stored_ms": profile.last_stored_ms,
            "doc": _jsonb_text(encode_profile(profile)),
        }
        if self._execute(query, params).rowcount != 1:
            raise ConcurrentUpdate(f"profile {profile.mpid} changed since it was loaded")

    def link_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        wanted = list(dict.fromkeys(keys))
        if wanted:
            self._execute(_LINK_IDENTITIES, (scope, mpid, *_columns(wanted)))

    def unlink_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        wanted = list(dict.fromkeys(keys))
        if wanted:
            self._execute(_UNLINK_IDENTITIES, (*_columns(wanted), scope, mpid))

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool:
        cursor = self._execute(
            "INSERT INTO request_ids (input, request_id, received_ms) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (input_name, request_id, now_ms),
        )
        return cursor.rowcount == 1

    def append_log(self, entry: LogEntry) -> int:
        return _returned_id(self._execute(_APPEND_LOG, log_row(entry)))

    def set_log_status(self, entry_id: int, status: str, reason: str | None) -> None:
        query = "UPDATE event_log SET status = %s, reason = %s WHERE id = %s"
        self._execute(query, (status, reason, entry_id))

    def record_reject(self, entry: RejectEntry) -> int:
        return _returned_id(self._execute(_RECORD_REJECT, reject_row(entry)))


class PostgresStore:
    """Connections are opened on demand up to `pool_size`; each is in autocommit mode, so a
    read is one round trip and a unit of work is an explicit BEGIN ... COMMIT."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="kindred",
        )
        # Waiting here makes a wrong URL fail at start-up rather than at the first request.
        self._pool.open(wait=True)

    def migrate(self) -> int:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", _MIGRATION_LOCK)
            try:
                return _migrate(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", _MIGRATION_LOCK)

    @contextmanager
    def unit_of_work(self) -> Iterator[_PostgresUnitOfWork]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresUnitOfWork(conn)

    def _rows(self, query: str, params: Sequence[Any]) -> list[TupleRow]:
        with self._pool.connection() as conn:
            return conn.execute(query, params).fetchall()

    def get_profile(self, mpid: int) -> Profile | None:
        rows = self._rows("SELECT doc::text FROM profiles WHERE mpid = %s", (mpid,))
        return decode_profile(rows[0][0]) if rows else None

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]:
        rows = self._rows(
            "SELECT mpid FROM identities WHERE scope = %s AND id_type = %s AND id_value = %s"
            " ORDER BY mpid",
            (scope, key.type, key.value),
        )
        return [row[0] for row in rows]

    def count_profiles(self) -> int:
        return int(self._rows("SELECT count(*) FROM profiles", ())[0][0])

    def read_log(self, after_id: int, limit: int) -> list[LogEntry]:
        query = f"SELECT {_LOG_COLUMNS} FROM event_log WHERE id > %s ORDER BY id LIMIT %s"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (after_id, limit)).fetchall()

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        query = f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid = %s ORDER BY id DESC LIMIT %s"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (mpid, limit)).fetchall()

    def list_rejects(self, kind: str | None, limit: int) -> list[RejectEntry]:
        # Two texts rather than `%s IS NULL OR kind = %s`, which would keep the index unused.
        where, params = ("", (limit,)) if kind is None else ("WHERE kind = %s", (kind, limit))
        query = f"SELECT {_REJECT_COLUMNS} FROM rejects {where} ORDER BY id DESC LIMIT %s"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(RejectEntry))
            return cursor.execute(query, params).fetchall()

    def close(self) -> None:
        self._pool.close()


def _migrate(conn: _Connection) -> int:
    """Apply the pending migrations, each in its own transaction; the caller holds the lock."""
    conn.execute(_CREATE_MIGRATIONS)
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row is not None else 0
    for migration in load_migrations("kindred.storage.postgres"):
        if migration.version > current:
            _apply(conn, migration)
            current = migration.version
    return current


def _apply(conn: _Connection, migration: Migration) -> None:
    with conn.transaction():
        # Without parameters psycopg sends the file as one simple query: no splitting needed.
        conn.execute(migration.sql.encode())
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%s, %s, %s)",
            (migration.version, migration.name, int(time.time() * 1000)),
        )


def _columns(keys: Sequence[IdentityKey]) -> tuple[list[str], list[str]]:
    """Identity keys as two parallel arrays, for `unnest`: one round trip whatever their number."""
    return [key.type for key in keys], [key.value for key in keys]


def _returned_id(cursor: psycopg.Cursor[TupleRow]) -> int:
    row = cursor.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return int(row[0])


def _identity_lock_id(scope: str, key: IdentityKey) -> int:
    """A 64-bit advisory lock key that every process computes alike (unlike `hash`).

    NUL cannot occur in PostgreSQL text, so it separates the parts unambiguously; a rare
    collision only makes two unrelated resolutions wait for each other.
    """
    material = "\0".join((scope, key.type, key.value)).encode()
    digest = hashlib.blake2b(material, digest_size=8, person=b"kindred-id").digest()
    return int.from_bytes(digest, "big", signed=True)


# jsonb keeps numbers as `numeric` and prints 1e16 back as 10000000000000000, which would
# decode as an int. Written positionally with a fraction, a float keeps its type and value.
_EXPONENT_HINT = re.compile(rb"\d[eE][-+]?\d")
_STRING_OR_EXPONENT = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?[eE][-+]?\d+')


def _jsonb_text(doc: bytes) -> str:
    if _EXPONENT_HINT.search(doc) is not None:
        doc = _STRING_OR_EXPONENT.sub(_positional, doc)
    return doc.decode()


def _positional(match: re.Match[bytes]) -> bytes:
    token = match.group()
    if token.startswith(b'"'):
        return token
    text = format(Decimal(token.decode()), "f")
    return (text if "." in text else f"{text}.0").encode()
