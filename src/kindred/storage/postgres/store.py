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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec
import psycopg
from psycopg import errors
from psycopg.abc import Params
from psycopg.rows import TupleRow, kwargs_row
from psycopg_pool import ConnectionPool, PoolTimeout

from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import StoreUnavailable
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.ports import (
    ConcurrentUpdate,
    LogEntry,
    MembershipCounts,
    MergeEntry,
    Needles,
    RejectEntry,
)
from kindred.storage.codec import (
    CREDENTIAL_COLUMNS,
    LOG_INSERT_COLUMNS,
    MEMBERSHIP_COLUMNS,
    MERGE_COLUMNS,
    REJECT_INSERT_COLUMNS,
    audience_doc,
    audience_of,
    credential_of,
    credential_row,
    decode_profile,
    encode_profile,
    log_row,
    membership_counts_of,
    membership_of,
    membership_row,
    merge_of,
    merge_row,
    reject_row,
)
from kindred.storage.migrations import Migration, load_migrations
from kindred.storage.writebehind import PendingWrites, ScopedKey, WriteBehindUnitOfWork

__all__ = ["PostgresStore"]

_Connection = psycopg.Connection[TupleRow]

# The two-int advisory key space never overlaps the bigint one used for identities.
_MIGRATION_LOCK = (0x6B696E64, 1)  # "kind"

# The server reports these when two transactions collide; the caller's remedy is the same as
# for a lost version check: run the transaction again.
_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure)

# How long a point read waits for a free pooled connection before answering "overloaded".
_READ_WAIT_S = 2.0

_LOG_COLUMNS = (
    "id, input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body"
)
_REJECT_COLUMNS = "id, input, received_ms, kind, reason, body, replayed_ms"

_INSERT_PROFILE = (
    "INSERT INTO profiles (mpid, scope, version, created_ms, last_stored_ms, audience_due_ms,"
    " doc) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (mpid) DO NOTHING"
)
# Row locks make a concurrent UPDATE wait, then re-check `version` against the committed row.
_UPDATE_PROFILE = (
    "UPDATE profiles SET version = %s, last_stored_ms = %s, audience_due_ms = %s,"
    " doc = %s::jsonb WHERE mpid = %s AND version = %s"
)
_FIND_IDENTITIES = (
    "SELECT i.scope, i.id_type, i.id_value, i.mpid FROM identities AS i"
    " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k (scope, id_type, id_value)"
    " ON i.scope = k.scope AND i.id_type = k.id_type AND i.id_value = k.id_value"
    " ORDER BY i.mpid"
)
_KNOWN_REQUESTS = (
    "SELECT r.input, r.request_id FROM request_ids AS r"
    " JOIN unnest(%s::text[], %s::text[]) AS k (input, request_id)"
    " ON r.input = k.input AND r.request_id = k.request_id"
)
# ORDER BY makes the server take the locks in key order (volatile output expressions are
# evaluated after the sort), so two transactions wanting overlapping sets cannot deadlock.
_LOCK_IDENTITIES = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k"
_LINK = "INSERT INTO identities (scope, id_type, id_value, mpid) VALUES (%s, %s, %s, %s)"
_UNLINK = "DELETE FROM identities WHERE scope = %s AND id_type = %s AND id_value = %s AND mpid = %s"
_APPEND_LOG = (
    f"INSERT INTO event_log ({LOG_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_RECORD_MERGE = f"INSERT INTO merges ({MERGE_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"
_RECORD_REJECT = f"INSERT INTO rejects ({REJECT_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
)


class _PostgresSetOps:
    """The bulk operations of the write-behind unit of work: one round trip per read, one
    pipelined `executemany` per table at flush."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def lock_identities(self, keys: Sequence[ScopedKey]) -> None:
        lock_ids = sorted({_identity_lock_id(scope, key) for scope, key in keys})
        with _retryable():
            self.conn.execute(_LOCK_IDENTITIES, (lock_ids,))

    def find_identities(self, keys: Sequence[ScopedKey]) -> dict[ScopedKey, list[int]]:
        columns = ([s for s, _ in keys], [k.type for _, k in keys], [k.value for _, k in keys])
        found: dict[ScopedKey, list[int]] = {}
        with _retryable():
            for scope, id_type, id_value, mpid in self.conn.execute(_FIND_IDENTITIES, columns):
                found.setdefault((scope, IdentityKey(id_type, id_value)), []).append(mpid)
        return found

    def load_profiles(self, mpids: Sequence[int]) -> dict[int, Profile]:
        query = "SELECT doc::text FROM profiles WHERE mpid = ANY(%s::bigint[])"
        with _retryable():
            profiles = [decode_profile(doc) for (doc,) in self.conn.execute(query, (mpids,))]
        return {p.mpid: p for p in profiles}

    def known_requests(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        columns = ([i for i, _ in pairs], [r for _, r in pairs])
        with _retryable():
            return {(i, r) for i, r in self.conn.execute(_KNOWN_REQUESTS, columns)}

    def claim_expired(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        query = (
            "SELECT doc::text FROM profiles WHERE scope = %s AND last_stored_ms < %s"
            " ORDER BY last_stored_ms LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        with _retryable():
            rows = self.conn.execute(query, (scope, stored_before_ms, limit)).fetchall()
        return [decode_profile(doc) for (doc,) in rows]

    def page_profiles(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None
    ) -> list[Profile]:
        """Every profile of the page: `needles` are not applied (jsonb's text form is not
        the stored document's), which the port allows."""
        del needles
        query = (
            # `scope || ''`: walk the primary key in order, as SQLite's `+scope` does.
            "SELECT doc::text FROM profiles WHERE (scope || '') = %s AND mpid >= %s"
            " ORDER BY mpid LIMIT %s FOR UPDATE"
        )
        with _retryable():
            rows = self.conn.execute(query, (scope, from_mpid, limit)).fetchall()
        return [decode_profile(doc) for (doc,) in rows]

    def claim_due(self, before_ms: int, limit: int) -> list[Profile]:
        query = (
            "SELECT doc::text FROM profiles WHERE audience_due_ms <= %s"
            " ORDER BY audience_due_ms LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        with _retryable():
            rows = self.conn.execute(query, (before_ms, limit)).fetchall()
        return [decode_profile(doc) for (doc,) in rows]

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        query = (
            "SELECT id FROM event_log WHERE mpid = %s AND received_ms BETWEEN %s AND %s ORDER BY id"
        )
        with _retryable():
            return [r[0] for r in self.conn.execute(query, (mpid, from_ms, to_ms))]

    def flush(self, writes: PendingWrites) -> None:
        with _retryable(), self.conn.cursor() as cursor:
            if writes.deletes:
                mpids = [(mpid,) for mpid, _ in writes.deletes]
                _many(cursor, "DELETE FROM identities WHERE mpid = %s", mpids)
                deleted = _many(
                    cursor, "DELETE FROM profiles WHERE mpid = %s AND version = %s", writes.deletes
                )
                if deleted != len(writes.deletes):
                    raise ConcurrentUpdate("a profile changed since this transaction read it")
            self._save_profiles(cursor, writes)
            links = [(scope, k.type, k.value, mpid) for scope, k, mpid in writes.links]
            unlinks = [(scope, k.type, k.value, mpid) for scope, k, mpid in writes.unlinks]
            _many(cursor, _LINK, links)
            _many(cursor, _UNLINK, unlinks)
            _many(
                cursor,
                "INSERT INTO request_ids (input, request_id, received_ms) VALUES (%s, %s, %s)",
                writes.requests,
            )
            _many(cursor, _APPEND_LOG, [log_row(entry) for entry in writes.log])
            _many(
                cursor,
                "UPDATE event_log SET status = %s, reason = %s WHERE id = %s",
                [(status, reason, entry_id) for entry_id, status, reason in writes.log_status],
            )
            _many(cursor, _RECORD_REJECT, [reject_row(entry) for entry in writes.rejects])
            _many(cursor, _RECORD_MERGE, [merge_row(m) for m in writes.merges])
            _many(
                cursor,
                "UPDATE merges SET unmerged_ms = %s WHERE id = %s",
                [(ms, merge_id) for merge_id, ms in writes.unmerges],
            )
            _many(
                cursor,
                "UPDATE event_log SET mpid = %s WHERE id = %s",
                [(mpid, entry_id) for entry_id, mpid in writes.repoints],
            )
            _many(
                cursor,
                "UPDATE rejects SET replayed_ms = %s WHERE id = %s",
                [(ms, reject_id) for reject_id, ms in writes.replays],
            )
            _many(
                cursor,
                "INSERT INTO membership_log (audience_id, mpid, entered, at_ms, reason)"
                " VALUES (%s, %s, %s, %s, %s)",
                [membership_row(c) for c in writes.memberships],
            )

    def _save_profiles(self, cursor: psycopg.Cursor[TupleRow], writes: PendingWrites) -> None:
        inserts = [
            (p.mpid, p.scope, p.version, p.created_ms, p.last_stored_ms, p.audience_due_ms, _doc(p))
            for p in writes.inserts
        ]
        updates = [
            (p.version, p.last_stored_ms, p.audience_due_ms, _doc(p), p.mpid, stored)
            for p, stored in writes.updates
        ]
        if _many(cursor, _INSERT_PROFILE, inserts) != len(inserts):
            raise ConcurrentUpdate("a profile this transaction creates already exists")
        if _many(cursor, _UPDATE_PROFILE, updates) != len(updates):
            raise ConcurrentUpdate("a profile changed since this transaction read it")


def _many(cursor: psycopg.Cursor[TupleRow], query: str, rows: Sequence[Params]) -> int:
    """executemany (pipelined by psycopg); returns the rows affected."""
    if not rows:
        return 0
    cursor.executemany(query, rows)
    return cursor.rowcount


def _doc(profile: Profile) -> str:
    return _jsonb_text(encode_profile(profile))


@contextmanager
def _retryable() -> Iterator[None]:
    """Deadlocks and serialization failures mean: run the transaction again."""
    try:
        yield
    except _RETRYABLE as exc:
        raise ConcurrentUpdate(str(exc)) from exc


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
    def unit_of_work(self) -> Iterator[WriteBehindUnitOfWork]:
        with self._pool.connection() as conn, conn.transaction():
            uow = WriteBehindUnitOfWork(_PostgresSetOps(conn))
            yield uow
            uow.commit()

    def _rows(self, query: str, params: Sequence[Any]) -> list[TupleRow]:
        try:
            with self._pool.connection(timeout=_READ_WAIT_S) as conn:
                return conn.execute(query, params).fetchall()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            # Every connection busy for that long, or the server gone: the caller is told
            # to come back later (503), not that something is broken.
            raise StoreUnavailable(f"store unavailable: {exc}") from exc

    def save_credential(self, credential: ApiCredential) -> None:
        updates = ", ".join(
            f"{c.strip()} = EXCLUDED.{c.strip()}" for c in CREDENTIAL_COLUMNS.split(",")[1:]
        )
        marks = ", ".join(["%s"] * 9)
        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO api_credentials ({CREDENTIAL_COLUMNS}) VALUES ({marks})"
                f" ON CONFLICT (client_id) DO UPDATE SET {updates}",
                credential_row(credential),
            )

    def list_credentials(self) -> list[ApiCredential]:
        rows = self._rows(
            f"SELECT {CREDENTIAL_COLUMNS} FROM api_credentials ORDER BY created_ms, client_id", ()
        )
        return [credential_of(row) for row in rows]

    def server_secret(self, name: str, candidate: bytes) -> bytes:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO server_secrets (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, candidate),
            )
            row = conn.execute("SELECT value FROM server_secrets WHERE name = %s", (name,))
            return bytes(row.fetchone()[0])  # type: ignore[index]  # inserted just above

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

    def find_linked(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        columns = ([scope] * len(keys), [k.type for k in keys], [k.value for k in keys])
        found: dict[IdentityKey, list[int]] = {}
        for _, id_type, id_value, mpid in self._rows(_FIND_IDENTITIES, columns):
            found.setdefault(IdentityKey(id_type, id_value), []).append(mpid)
        return found

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

    def save_audience(self, audience: AudienceDef) -> AudienceDef:
        with self._pool.connection() as conn, conn.transaction():
            if audience.id:
                conn.execute(
                    "UPDATE audiences SET status = %s, doc = %s WHERE id = %s",
                    (audience.status, audience_doc(audience), audience.id),
                )
                return audience
            row = conn.execute(
                "INSERT INTO audiences (status, doc) VALUES (%s, %s) RETURNING id",
                (audience.status, audience_doc(audience)),
            ).fetchone()
            assert row is not None
            saved = msgspec.structs.replace(audience, id=int(row[0]))
            conn.execute(
                "UPDATE audiences SET doc = %s WHERE id = %s", (audience_doc(saved), saved.id)
            )
            return saved

    def list_audiences(self) -> list[AudienceDef]:
        rows = self._rows("SELECT id, doc FROM audiences ORDER BY id", ())
        return [audience_of(entry_id, doc) for entry_id, doc in rows]

    def membership_log(
        self, *, audience_id: int | None, mpid: int | None, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        clauses, params = ["at_ms <= %s"], [until_ms]
        if audience_id is not None:
            clauses.append("audience_id = %s")
            params.append(audience_id)
        if mpid is not None:
            clauses.append("mpid = %s")
            params.append(mpid)
        rows = self._rows(
            f"SELECT {MEMBERSHIP_COLUMNS} FROM membership_log"
            f" WHERE {' AND '.join(clauses)} ORDER BY id LIMIT %s",
            (*params, limit),
        )
        return [membership_of(r) for r in rows]

    def membership_counts(self, audience_id: int, since_ms: int) -> MembershipCounts:
        rows = self._rows(
            "SELECT count(*) FILTER (WHERE entered), count(*) FILTER (WHERE NOT entered),"
            " count(*) FILTER (WHERE entered AND at_ms >= %s),"
            " count(*) FILTER (WHERE NOT entered AND at_ms >= %s), max(at_ms)"
            " FROM membership_log WHERE audience_id = %s",
            (since_ms, since_ms, audience_id),
        )
        return membership_counts_of(rows[0] if rows else None)

    def list_merges(self, mpid: int | None, limit: int) -> list[MergeEntry]:
        where, params = (
            ("", (limit,))
            if mpid is None
            else (
                "WHERE survivor = %s OR merged = %s",
                (mpid, mpid, limit),
            )
        )
        query = f"SELECT id, {MERGE_COLUMNS} FROM merges {where} ORDER BY id DESC LIMIT %s"
        return [merge_of(row) for row in self._rows(query, params)]

    def get_merge(self, merge_id: int) -> MergeEntry | None:
        rows = self._rows(f"SELECT id, {MERGE_COLUMNS} FROM merges WHERE id = %s", (merge_id,))
        return merge_of(rows[0]) if rows else None

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
