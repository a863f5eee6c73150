"""SQLite store: WAL, a single writer connection behind a lock, one reader per thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import msgspec

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
from kindred.storage.migrations import load_migrations
from kindred.storage.outbox_sql import Cursor
from kindred.storage.parts import PartedUnitOfWork
from kindred.storage.sqlite.files import private_file, tighten
from kindred.storage.sqlite.functions import register_functions
from kindred.storage.sqlite.log_reads import SqliteLogReads
from kindred.storage.sqlite.setops import (
    NOT_MERGED,
    PROFILE_COLUMNS,
    SqliteSetOps,
    sqlite_document,
)
from kindred.storage.sqlite.writing import CommitSync, WriterLock, full_is_unavailable
from kindred.storage.writebehind import WriteBehindUnitOfWork

__all__ = ["SqliteStore"]

# A WAL past this size is checkpointed by the writer after its commit, then starts over.
WAL_RESTART_BYTES = 16 * 1024 * 1024

_RAISE_VERSION = "UPDATE definitions_version SET version = version + 1 WHERE id = 1"
# One statement, so one read transaction (its WAL lock taken once): the version always,
# the profile's columns NULL when there is none.
_VERSIONED_PROFILE = (
    f"SELECT definitions_version.version, {PROFILE_COLUMNS} FROM definitions_version"
    " LEFT JOIN profiles ON profiles.mpid = :mpid WHERE definitions_version.id = 1"
)


class SqliteStore(SqliteLogReads, CalculatedSaves, SqlAccessRecords, SqlDsrStore):
    """`synchronous` is FULL by default: a committed batch survives power loss, not only a
    process crash; group commit keeps that to one fsync per group of batches.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        wal_limit_bytes: int = WAL_RESTART_BYTES,
        writer_cache_mb: int = 256,
        max_size_mb: int = 0,
    ) -> None:
        """`max_size_mb`: the most the database file may grow to (0: no limit but the
        disk's); past it, as on a full disk, writes raise StoreUnavailable."""
        self.path = str(path)
        self._synchronous = synchronous
        if self.path != ":memory:":
            private_file(Path(self.path))
        self._writer = self._connect()
        if self.path != ":memory:":
            # The WAL and shared-memory files SQLite made take the database's mode; files
            # of an older install are tightened too.
            for side in (f"{self.path}-wal", f"{self.path}-shm"):
                tighten(Path(side))
        # The writer's cache holds the identity index and the hot profiles: every miss is a
        # read syscall inside the write transaction, which all batches wait behind.
        self._writer.execute(f"PRAGMA cache_size = -{writer_cache_mb * 1024}")
        # The writer checkpoints right after a commit once the WAL passes the limit: there
        # it always completes (no other writer can be active), so the WAL starts over and
        # stays bounded. (A background checkpointer never finds the WAL fully copied
        # under a writer that commits back to back, and the WAL grows without end.)
        self._writer.execute(f"PRAGMA wal_autocheckpoint = {wal_limit_bytes // 4096}")
        self._writer.execute(f"PRAGMA journal_size_limit = {wal_limit_bytes}")
        if max_size_mb:
            page = self._writer.execute("PRAGMA page_size").fetchone()[0]
            self._writer.execute(f"PRAGMA max_page_count = {max_size_mb * 1024 * 1024 // page}")
        self._write_lock = WriterLock(
            f"{self.path}.writer-lock" if self.path != ":memory:" else None
        )
        self._commit_sync = CommitSync(self._writer, self.path, synchronous, self._connect)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA cache_size = -16384")  # readers: 16 MB each
        conn.execute("PRAGMA foreign_keys = OFF")
        register_functions(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    def _rows(self) -> sqlite3.Cursor:
        """A reader cursor whose rows are addressable by column name."""
        cursor = self._reader().cursor()
        cursor.row_factory = sqlite3.Row
        return cursor

    def migrate(self) -> int:
        with self._write_lock:
            conn = self._writer
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
            )
            # Every migration not applied yet, older numbers included: branches land their
            # migrations out of order (a store may hold 22 before 20 exists).
            applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            for migration in load_migrations("kindred.storage.sqlite"):
                if migration.version not in applied:
                    self._commit_sync.before_begin()
                    conn.execute("BEGIN IMMEDIATE")
                    for statement in _statements(migration.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (migration.version, migration.name, int(time.time() * 1000)),
                    )
                    conn.execute("COMMIT")
                    applied.add(migration.version)
            return max(applied, default=0)

    def compact(self) -> tuple[int, int]:
        with self._write_lock, full_is_unavailable():
            before = self._size()
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            try:
                self._writer.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY":
                    raise
                raise StoreUnavailable(
                    "the store is busy: another process is reading it (stop the server)"
                ) from exc
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return before, self._size()

    def _size(self) -> int:
        files = (Path(self.path), Path(f"{self.path}-wal"))
        return sum(f.stat().st_size for f in files if f.exists())

    def deferred_sync(self, *, copy_meanwhile: bool = False) -> AbstractContextManager[None]:
        """Commits of this thread inside reach the disk at the next `sync()` (CommitSync);
        with `copy_meanwhile` the WAL is copied in the background after each."""
        return self._commit_sync.deferred(copy_meanwhile=copy_meanwhile)

    def sync(self) -> None:
        self._commit_sync.sync()

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._write_lock, full_is_unavailable():
            conn = self._writer
            self._commit_sync.before_begin()
            conn.execute("BEGIN IMMEDIATE")
            try:
                tx = WriteBehindUnitOfWork(SqliteSetOps(conn))
                yield PartedUnitOfWork(tx)
                tx.commit()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._commit_sync.committed()

    def _delivery_tx(self) -> AbstractContextManager[Cursor]:
        return self._write_tx()

    def _raise_definitions_version(self, cursor: Cursor) -> None:
        cursor.execute(_RAISE_VERSION)

    def definitions_version(self) -> int:
        row = self._reader().execute("SELECT version FROM definitions_version WHERE id = 1")
        return int(row.fetchone()[0])

    @contextmanager
    def _write_tx(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction (BEGIN IMMEDIATE: no other writer, no group, meanwhile)."""
        with self._write_lock, full_is_unavailable():
            conn = self._writer
            self._commit_sync.before_begin()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn.cursor()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _delivery_read(self) -> Iterator[Cursor]:
        # A reader: the catalog is read inside writers' transactions, which hold the lock.
        yield self._reader().cursor()

    def _select(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return self._reader().execute(query, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"store unavailable: {exc}") from exc

    def get_profile(self, mpid: int) -> Profile | None:
        try:
            row = (
                self._reader()
                .execute(f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE mpid = ?", (mpid,))
                .fetchone()
            )
        except sqlite3.OperationalError as exc:
            # Busy past the timeout, or the disk failing: tell the caller to retry (503).
            raise StoreUnavailable(f"store unavailable: {exc}") from exc
        return None if row is None else stored_profile(row[0], row[1])

    def versioned_profile(self, mpid: int) -> tuple[int, Profile | None]:
        try:
            version, doc, held = (
                self._reader().execute(_VERSIONED_PROFILE, {"mpid": mpid}).fetchone()
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"store unavailable: {exc}") from exc
        return int(version), None if doc is None else stored_profile(doc, held)

    def get_profiles(self, mpids: Sequence[int]) -> dict[int, Profile]:
        if not mpids:
            return {}
        marks = ", ".join("?" for _ in mpids)
        try:
            rows = (
                self._reader()
                .execute(
                    f"SELECT mpid, {PROFILE_COLUMNS} FROM profiles WHERE mpid IN ({marks})",
                    tuple(mpids),
                )
                .fetchall()
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"store unavailable: {exc}") from exc
        return {int(r[0]): stored_profile(r[1], r[2]) for r in rows}

    def profiles_between(
        self, scope: str, from_mpid: int, below_mpid: int | None, limit: int
    ) -> list[Profile]:
        # `+scope`: walk the primary key in order, as a transaction's page does; the
        # upper bound is part of the range walked, or the walk would go on to the end.
        query = f"SELECT {PROFILE_COLUMNS} FROM profiles WHERE +scope = ? AND mpid >= ?"
        params: tuple[object, ...] = (scope, from_mpid)
        if below_mpid is not None:
            query, params = f"{query} AND mpid < ?", (*params, below_mpid)
        rows = self._select(f"{query} ORDER BY mpid LIMIT ?", (*params, limit))
        return [stored_profile(doc, held) for doc, held in rows]

    def page_starts(self, scope: str, from_mpid: int, page: int, pages: int) -> list[int]:
        rows = self._select(
            "SELECT mpid FROM (SELECT mpid, row_number() OVER (ORDER BY mpid) - 1 AS n"
            " FROM (SELECT mpid FROM profiles INDEXED BY profiles_by_scope_mpid"
            " WHERE scope = ? AND mpid >= ? ORDER BY mpid LIMIT ?)) WHERE n % ? = 0 ORDER BY mpid",
            (scope, from_mpid, page * pages + 1, page),
        )
        return [int(r[0]) for r in rows]

    def prepare_saves(self, profiles: Sequence[Profile]) -> PreparedSaves:
        return PreparedSaves(
            profiles=list(profiles), documents=[sqlite_document(p) for p in profiles]
        )

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]:
        rows = self._reader().execute(
            "SELECT mpid FROM identities WHERE scope = ? AND id_type = ? AND id_value = ?"
            " ORDER BY mpid",
            (scope, key.type, key.value),
        )
        return [r[0] for r in rows]

    def find_linked(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        found = SqliteSetOps(self._reader()).find_identities([(scope, k) for k in keys])
        return {key: sorted(mpids) for (_, key), mpids in found.items()}

    def count_profiles(self) -> int:
        return int(self._reader().execute("SELECT count(*) FROM profiles").fetchone()[0])

    def sample_profiles(
        self, scope: str, size: int, previous: ProfileSample | None = None
    ) -> ProfileSample:
        try:
            rows = (
                self._reader()
                .execute(
                    f"SELECT sample_key, {PROFILE_COLUMNS} FROM profiles"
                    " INDEXED BY profiles_by_scope_sample"
                    " WHERE scope = ? ORDER BY sample_key LIMIT ?",
                    (scope, size + 1),
                )
                .fetchall()
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"store unavailable: {exc}") from exc
        return sample_of(rows, size, previous)

    def save_audience(
        self, audience: AudienceDef, *, progress: bool = False, cut_log: bool = False
    ) -> AudienceDef:
        with self._write_tx() as conn:
            if not progress:
                conn.execute(_RAISE_VERSION)
            if cut_log:
                newest = conn.execute("SELECT coalesce(max(id), 0) FROM event_log").fetchone()
                audience = msgspec.structs.replace(audience, history_to=int(newest[0]))
            if audience.id:
                conn.execute(
                    "UPDATE audiences SET status = ?, doc = ? WHERE id = ?",
                    (audience.status, audience_doc(audience), audience.id),
                )
                saved = audience
            else:
                cursor = conn.execute(
                    "INSERT INTO audiences (status, doc) VALUES (?, ?)",
                    (audience.status, audience_doc(audience)),
                )
                assert cursor.lastrowid is not None
                saved = msgspec.structs.replace(audience, id=cursor.lastrowid)
                conn.execute(
                    "UPDATE audiences SET doc = ? WHERE id = ?", (audience_doc(saved), saved.id)
                )
            if not progress:
                record_version(conn, saved, "?")
            return saved

    def audience_versions(self, audience_id: int) -> list[AudienceVersion]:
        return read_versions(self._reader().cursor(), audience_id, "?")

    def list_audiences(self) -> list[AudienceDef]:
        rows = self._reader().execute("SELECT id, doc FROM audiences ORDER BY id")
        return [audience_of(entry_id, doc) for entry_id, doc in rows]

    def _save_calculated(
        self, definition: CalculatedDef, *, cut_log: bool, bump: bool
    ) -> CalculatedDef:
        with self._write_tx() as cursor:
            if bump:
                cursor.execute(_RAISE_VERSION)
            if cut_log:
                newest = cursor.execute("SELECT coalesce(max(id), 0) FROM event_log").fetchone()
                definition = msgspec.structs.replace(definition, backfill_total=int(newest[0]))
            if not definition.id:
                cursor.execute(
                    "INSERT INTO calculated_attributes (status, doc) VALUES (?, '{}')",
                    (definition.status,),
                )
                assert cursor.lastrowid is not None
                definition = msgspec.structs.replace(definition, id=cursor.lastrowid)
            cursor.execute(
                "UPDATE calculated_attributes SET status = ?, doc = ? WHERE id = ?",
                (definition.status, calculated_doc(definition), definition.id),
            )
            return definition

    def list_calculated(self) -> list[CalculatedDef]:
        rows = self._reader().execute("SELECT id, doc FROM calculated_attributes ORDER BY id")
        return [calculated_of(entry_id, doc) for entry_id, doc in rows]

    def membership_log(
        self, *, audience_id: int | None, mpid: int | None, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        rows = self._reader().execute(*log_query(audience_id, mpid, until_ms, limit, "?"))
        return [membership_of(r) for r in rows]

    def membership_counts(self, audience_id: int, since_ms: int) -> MembershipCounts:
        row = (
            self._reader().execute(_COUNT_MEMBERSHIPS, (since_ms, since_ms, audience_id)).fetchone()
        )
        return membership_counts_of(row)

    def matching_profiles(self, selection: Selection, after_mpid: int, limit: int) -> list[int]:
        criteria = to_sql(
            selection.criteria, "sqlite", sorted(selection.workspace_ids), selection.now_ms
        )
        rows = self._reader().execute(
            # `+scope`: walk the primary key in order; the scope index would sort every row.
            "SELECT mpid FROM profiles WHERE +scope = :scope AND mpid > :after"
            f" AND ({criteria.text}) AND {NOT_MERGED}"
            " ORDER BY mpid LIMIT :limit",
            {**criteria.params, "scope": selection.scope, "after": after_mpid, "limit": limit},
        )
        return [mpid for (mpid,) in rows]

    def close(self) -> None:
        self._commit_sync.close()
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            self._writer.close()
        self._write_lock.close()


_COUNT_MEMBERSHIPS = (
    "SELECT count(*) FILTER (WHERE entered),"
    f" count(*) FILTER (WHERE NOT entered AND reason <> '{ERASED_EXIT}'),"
    " count(*) FILTER (WHERE entered AND at_ms >= ?),"
    " count(*) FILTER (WHERE NOT entered AND at_ms >= ?), max(at_ms)"
    " FROM membership_log WHERE audience_id = ?"
)


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (they hold no semicolons in literals)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
