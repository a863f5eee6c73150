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

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import ERASED_EXIT, AudienceDef, MembershipChange, Selection
from kindred.audiences.sql import to_sql
from kindred.audiences.versions import AudienceVersion
from kindred.domain.errors import StoreUnavailable
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.ports import (
    MembershipCounts,
    PreparedSaves,
    ProfileSample,
    UnitOfWork,
)
from kindred.storage.access_sql import SqlAccessRecords
from kindred.storage.audience_versions_sql import read_versions, record_version
from kindred.storage.calculated_saves import CalculatedSaves
from kindred.storage.codec import (
    audience_doc,
    audience_of,
    calculated_doc,
    calculated_of,
    membership_counts_of,
    membership_of,
    sample_of,
    stored_profile,
)
from kindred.storage.dsr_sql import SqlDsrStore
from kindred.storage.membership_log import log_query
from kindred.storage.outbox_sql import Cursor
from kindred.storage.parts import PartedUnitOfWork
from kindred.storage.postgres.leases import PostgresLeases
from kindred.storage.postgres.log_reads import PostgresLogReads
from kindred.storage.postgres.migrating import migrate
from kindred.storage.postgres.setops import (
    DEFINITIONS_LOCK,
    FIND_IDENTITIES,
    PROFILE_COLUMNS,
    PostgresSetOps,
    postgres_document,
    retryable,
)
from kindred.storage.writebehind import WriteBehindUnitOfWork

__all__ = ["PostgresStore"]

_Connection = psycopg.Connection[TupleRow]

# The two-int advisory key space never overlaps the bigint one used for identities.
_MIGRATION_LOCK = (0x6B696E64, 1)  # "kind"

_READ_WAIT_S = 2.0
# One round trip: the version always, the profile's columns NULL when there is none.
_VERSIONED_PROFILE = (
    f"SELECT definitions_version.version, {PROFILE_COLUMNS} FROM definitions_version"
    " LEFT JOIN profiles ON profiles.mpid = %(mpid)s WHERE definitions_version.id = 1"
)


class PostgresStore(
    PostgresLogReads, CalculatedSaves, SqlAccessRecords, SqlDsrStore, PostgresLeases
):
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
        # The Profile API's point read (`versioned_profile`) on a connection of its thread's
        # own, its statement prepared and its cursor kept: a pool checkout and a cursor
        # per read cost more client CPU than the read (one more connection per thread
        # that serves reads: the event loop's).
        self._url = url
        self._point_readers = threading.local()
        self._opened_readers: list[psycopg.Cursor[TupleRow]] = []

    def migrate(self) -> int:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", _MIGRATION_LOCK)
            try:
                return migrate(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", _MIGRATION_LOCK)

    def compact(self) -> tuple[int, int]:
        """VACUUM ANALYZE: space of dead rows reused, statistics fresh (PostgreSQL keeps no
        key order; autovacuum does this too)."""
        size = "SELECT pg_database_size(current_database())"
        with self._pool.connection() as conn:
            was = conn.autocommit
            conn.autocommit = True  # VACUUM runs outside a transaction
            try:
                before = int(conn.execute(size).fetchone()[0])  # type: ignore[index]
                conn.execute("VACUUM ANALYZE")
                after = int(conn.execute(size).fetchone()[0])  # type: ignore[index]
            finally:
                conn.autocommit = was
        return before, after

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """In pipeline mode (see setops): BEGIN goes with the first read, the flush with
        COMMIT, in one round trip. A conflict found by the flush's checks fails that
        round trip and is a ConcurrentUpdate like any other."""
        with (
            _full_is_unavailable(),
            self._pool.connection() as conn,
            retryable(),
            _rolled_back(conn),
            conn.pipeline() as pipeline,
            _drained(pipeline),
        ):
            conn.execute("BEGIN")
            tx = WriteBehindUnitOfWork(PostgresSetOps(conn, pipeline))
            yield PartedUnitOfWork(tx)
            tx.commit()
            conn.execute("COMMIT")
            pipeline.sync()

    _MARK = "%s"
    _CONTAINS = "position(%s::bytea in body) > 0"

    @contextmanager
    def _delivery_tx(self) -> Iterator[Cursor]:
        with (
            _full_is_unavailable(),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            yield cursor

    def _raise_definitions_version(self, cursor: Cursor) -> None:
        _raise_version(cursor)

    def definitions_version(self) -> int:
        (row,) = self._rows("SELECT version FROM definitions_version WHERE id = 1", ())
        return int(row[0])

    def _rows(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> list[TupleRow]:
        try:
            with self._pool.connection(timeout=_READ_WAIT_S) as conn:
                return conn.execute(query, params).fetchall()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            # Every connection busy for that long, or the server gone: the caller is told
            # to come back later (503), not that something is broken.
            raise StoreUnavailable(f"store unavailable: {exc}") from exc

    def _select(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        return self._rows(self._sql(query), params)

    def get_profile(self, mpid: int) -> Profile | None:
        rows = self._rows(f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE mpid = %s", (mpid,))
        return stored_profile(rows[0][0], rows[0][1]) if rows else None

    def versioned_profile(self, mpid: int) -> tuple[int, Profile | None]:
        cursor: psycopg.Cursor[TupleRow] | None = getattr(self._point_readers, "cursor", None)
        try:
            if cursor is None:
                cursor = self._point_reader()
            cursor.execute(_VERSIONED_PROFILE, {"mpid": mpid}, prepare=True)
            ((version, doc, held),) = cursor.fetchall()
        except psycopg.OperationalError as exc:
            # The server gone or restarted: the next read opens a new connection.
            self._point_readers.cursor = None
            if cursor is not None:
                self._opened_readers.remove(cursor)
                cursor.connection.close()
            raise StoreUnavailable(f"store unavailable: {exc}") from exc
        return int(version), None if doc is None else stored_profile(doc, held)

    def _point_reader(self) -> psycopg.Cursor[TupleRow]:
        cursor = psycopg.connect(self._url, autocommit=True).cursor()
        self._point_readers.cursor = cursor
        self._opened_readers.append(cursor)
        return cursor

    def get_profiles(self, mpids: Sequence[int]) -> dict[int, Profile]:
        if not mpids:
            return {}
        rows = self._rows(
            f"SELECT mpid, {PROFILE_COLUMNS} FROM profiles WHERE mpid = ANY(%s)", (list(mpids),)
        )
        return {int(r[0]): stored_profile(r[1], r[2]) for r in rows}

    def profiles_between(
        self, scope: str, from_mpid: int, below_mpid: int | None, limit: int
    ) -> list[Profile]:
        # `scope || ''`: walk the primary key in order, as a transaction's page does.
        query = f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE (scope || '') = %s AND mpid >= %s"
        params: tuple[object, ...] = (scope, from_mpid)
        if below_mpid is not None:
            query, params = f"{query} AND mpid < %s", (*params, below_mpid)
        rows = self._rows(f"{query} ORDER BY mpid LIMIT %s", (*params, limit))
        return [stored_profile(doc, held) for doc, held in rows]

    def page_starts(self, scope: str, from_mpid: int, page: int, pages: int) -> list[int]:
        rows = self._rows(
            "SELECT mpid FROM (SELECT mpid, row_number() OVER (ORDER BY mpid) - 1 AS n"
            " FROM (SELECT mpid FROM profiles WHERE scope = %s AND mpid >= %s"
            " ORDER BY scope, mpid LIMIT %s) AS run) AS numbered WHERE n %% %s = 0 ORDER BY mpid",
            (scope, from_mpid, page * pages + 1, page),
        )
        return [int(r[0]) for r in rows]

    def prepare_saves(self, profiles: Sequence[Profile]) -> PreparedSaves:
        return PreparedSaves(
            profiles=list(profiles), documents=[postgres_document(p) for p in profiles]
        )

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
        for _, id_type, id_value, mpid in self._rows(FIND_IDENTITIES, columns):
            found.setdefault(IdentityKey(id_type, id_value), []).append(mpid)
        return found

    def count_profiles(self) -> int:
        return int(self._rows("SELECT count(*) FROM profiles", ())[0][0])

    def sample_profiles(
        self, scope: str, size: int, previous: ProfileSample | None = None
    ) -> ProfileSample:
        rows = self._rows(
            f"SELECT sample_key, {PROFILE_COLUMNS} FROM profiles"
            " WHERE scope = %s ORDER BY sample_key LIMIT %s",
            (scope, size + 1),
        )
        return sample_of([(int(r[0]), r[1], r[2]) for r in rows], size, previous)

    def save_audience(
        self, audience: AudienceDef, *, progress: bool = False, cut_log: bool = False
    ) -> AudienceDef:
        with self._pool.connection() as conn, conn.transaction():
            if not progress:
                _raise_version(conn)
            if cut_log:
                newest = conn.execute("SELECT coalesce(max(id), 0) FROM event_log").fetchone()
                assert newest is not None
                audience = msgspec.structs.replace(audience, history_to=int(newest[0]))
            if audience.id:
                conn.execute(
                    "UPDATE audiences SET status = %s, doc = %s WHERE id = %s",
                    (audience.status, audience_doc(audience), audience.id),
                )
                saved = audience
            else:
                row = conn.execute(
                    "INSERT INTO audiences (status, doc) VALUES (%s, %s) RETURNING id",
                    (audience.status, audience_doc(audience)),
                ).fetchone()
                assert row is not None
                saved = msgspec.structs.replace(audience, id=int(row[0]))
                conn.execute(
                    "UPDATE audiences SET doc = %s WHERE id = %s", (audience_doc(saved), saved.id)
                )
            if not progress:
                record_version(conn.cursor(), saved, "%s")
            return saved

    def audience_versions(self, audience_id: int) -> list[AudienceVersion]:
        with self._pool.connection() as conn:
            return read_versions(conn.cursor(), audience_id, "%s")

    def list_audiences(self) -> list[AudienceDef]:
        rows = self._rows("SELECT id, doc FROM audiences ORDER BY id", ())
        return [audience_of(entry_id, doc) for entry_id, doc in rows]

    def _save_calculated(
        self, definition: CalculatedDef, *, cut_log: bool, bump: bool
    ) -> CalculatedDef:
        with self._pool.connection() as conn, conn.transaction():
            if bump:
                _raise_version(conn)
            if cut_log:
                newest = conn.execute("SELECT coalesce(max(id), 0) FROM event_log").fetchone()
                assert newest is not None
                definition = msgspec.structs.replace(definition, backfill_total=int(newest[0]))
            return self._write_definition(conn, definition)

    @staticmethod
    def _write_definition(conn: _Connection, definition: CalculatedDef) -> CalculatedDef:
        if not definition.id:
            row = conn.execute(
                "INSERT INTO calculated_attributes (status, doc) VALUES (%s, '{}') RETURNING id",
                (definition.status,),
            ).fetchone()
            assert row is not None
            definition = msgspec.structs.replace(definition, id=int(row[0]))
        conn.execute(
            "UPDATE calculated_attributes SET status = %s, doc = %s WHERE id = %s",
            (definition.status, calculated_doc(definition), definition.id),
        )
        return definition

    def list_calculated(self) -> list[CalculatedDef]:
        rows = self._rows("SELECT id, doc FROM calculated_attributes ORDER BY id", ())
        return [calculated_of(entry_id, doc) for entry_id, doc in rows]

    def membership_log(
        self, *, audience_id: int | None, mpid: int | None, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        rows = self._rows(*log_query(audience_id, mpid, until_ms, limit, "%s"))
        return [membership_of(r) for r in rows]

    def membership_counts(self, audience_id: int, since_ms: int) -> MembershipCounts:
        rows = self._rows(
            "SELECT count(*) FILTER (WHERE entered),"
            f" count(*) FILTER (WHERE NOT entered AND reason <> '{ERASED_EXIT}'),"
            " count(*) FILTER (WHERE entered AND at_ms >= %s),"
            " count(*) FILTER (WHERE NOT entered AND at_ms >= %s), max(at_ms)"
            " FROM membership_log WHERE audience_id = %s",
            (since_ms, since_ms, audience_id),
        )
        return membership_counts_of(rows[0] if rows else None)

    def matching_profiles(self, selection: Selection, after_mpid: int, limit: int) -> list[int]:
        criteria = to_sql(
            selection.criteria, "postgres", sorted(selection.workspace_ids), selection.now_ms
        )
        rows = self._rows(
            "SELECT mpid FROM profiles WHERE scope = %(scope)s AND mpid > %(after)s"
            f" AND doc -> 'merged_into' IS NULL AND ({criteria.text})"
            " ORDER BY mpid LIMIT %(limit)s",
            {**criteria.params, "scope": selection.scope, "after": after_mpid, "limit": limit},
        )
        return [int(mpid) for (mpid,) in rows]

    def close(self) -> None:
        for reader in self._opened_readers:
            reader.connection.close()
        self._pool.close()


@contextmanager
def _full_is_unavailable() -> Iterator[None]:
    """The server out of disk, memory or connections (SQLSTATE class 53), unreachable or
    going away (no SQLSTATE, class 08, 57P: shut down) refuses the write with
    StoreUnavailable (503, come back later); its transaction rolled back."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable(f"store unavailable: {exc}") from exc
    except psycopg.OperationalError as exc:
        state = exc.sqlstate or ""
        if state and not state.startswith(("53", "08", "57P")):
            raise
        raise StoreUnavailable(f"store unavailable: {exc}") from exc


@contextmanager
def _drained(pipeline: psycopg.Pipeline) -> Iterator[None]:
    """On failure, every queued statement's result read before the pipeline ends: those
    queued after a failed one only say so (PipelineAborted), which is no news."""
    try:
        yield
    except BaseException:
        with suppress(psycopg.Error):
            pipeline.sync()
        raise


@contextmanager
def _rolled_back(conn: _Connection) -> Iterator[None]:
    """A unit of work that failed leaves its transaction open (or aborted): rolled back
    here, before the connection goes back to the pool."""
    try:
        yield
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with suppress(psycopg.OperationalError):  # the pool drops a broken connection
                conn.rollback()
        raise


def _raise_version(conn: _Connection | Cursor) -> None:
    """Raise the definitions' version inside the caller's transaction. Waits for every
    group holding the definitions lock shared; groups asking after it queue behind it (an
    advisory lock queues; a row's FOR SHARE lets new sharers jump ahead of a waiting
    update for as long as groups overlap), then see the new version."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", DEFINITIONS_LOCK)
    conn.execute("UPDATE definitions_version SET version = version + 1 WHERE id = 1")
