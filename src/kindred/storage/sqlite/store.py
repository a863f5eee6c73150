"""SQLite store: WAL, a single writer connection behind a lock, one reader per thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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
from kindred.storage.migrations import load_migrations

__all__ = ["SqliteStore"]

# A WAL past this size is restarted (and truncated back to it) by the checkpointer.
WAL_RESTART_BYTES = 64 * 1024 * 1024

_LOG_COLUMNS = (
    "id, input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body"
)
_REJECT_COLUMNS = "id, input, received_ms, kind, reason, body, replayed_ms"


class _SqliteUnitOfWork:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def lock_identities(self, scope: str, keys: Sequence[IdentityKey]) -> None:
        """The write transaction (BEGIN IMMEDIATE) already excludes every other writer."""

    def find_identities(
        self, scope: str, keys: Sequence[IdentityKey]
    ) -> dict[IdentityKey, list[int]]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        # One round trip; UNION ALL of point lookups keeps every lookup on the primary key
        # (row-value IN lists make SQLite scan the whole scope).
        point = "SELECT id_type, id_value, mpid FROM identities"
        point += " WHERE scope = ? AND id_type = ? AND id_value = ?"
        params: list[object] = []
        for key in keys:
            params += [scope, key.type, key.value]
        rows = self.conn.execute(" UNION ALL ".join([point] * len(keys)), params)
        found: dict[IdentityKey, list[int]] = {}
        for id_type, id_value, mpid in rows:
            found.setdefault(IdentityKey(id_type, id_value), []).append(mpid)
        return found

    def load_profiles(self, mpids: Iterable[int]) -> dict[int, Profile]:
        wanted = list(mpids)
        if not wanted:
            return {}
        marks = ", ".join(["?"] * len(wanted))
        rows = self.conn.execute(f"SELECT doc FROM profiles WHERE mpid IN ({marks})", wanted)
        profiles = (decode_profile(doc) for (doc,) in rows)
        return {p.mpid: p for p in profiles}

    def save_profile(self, profile: Profile) -> None:
        doc = encode_profile(profile).decode()
        if profile.version == 1:
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO profiles"
                " (mpid, scope, version, created_ms, last_stored_ms, doc)"
                " VALUES (?, ?, 1, ?, ?, ?)",
                (profile.mpid, profile.scope, profile.created_ms, profile.last_stored_ms, doc),
            )
        else:
            cursor = self.conn.execute(
                "UPDATE profiles SET version = ?, last_stored_ms = ?, doc = ?"
                " WHERE mpid = ? AND version = ?",
                (profile.version, profile.last_stored_ms, doc, profile.mpid, profile.version - 1),
            )
        if cursor.rowcount != 1:
            raise ConcurrentUpdate(f"profile {profile.mpid} changed since it was loaded")

    def link_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO identities (scope, id_type, id_value, mpid) VALUES (?,?,?,?)",
            [(scope, k.type, k.value, mpid) for k in keys],
        )

    def unlink_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        self.conn.executemany(
            "DELETE FROM identities WHERE scope = ? AND id_type = ? AND id_value = ? AND mpid = ?",
            [(scope, k.type, k.value, mpid) for k in keys],
        )

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool:
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO request_ids (input, request_id, received_ms) VALUES (?, ?, ?)",
            (input_name, request_id, now_ms),
        )
        return cursor.rowcount == 1

    def append_log(self, entry: LogEntry) -> int:
        cursor = self.conn.execute(
            f"INSERT INTO event_log ({LOG_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            log_row(entry),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def set_log_status(self, entry_id: int, status: str, reason: str | None) -> None:
        self.conn.execute(
            "UPDATE event_log SET status = ?, reason = ? WHERE id = ?", (status, reason, entry_id)
        )

    def record_reject(self, entry: RejectEntry) -> int:
        cursor = self.conn.execute(
            f"INSERT INTO rejects ({REJECT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            reject_row(entry),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


class SqliteStore:
    """`synchronous` is FULL by default: a committed batch survives power loss, not only a
    process crash; group commit keeps that to one fsync per group of batches.

    The writer never checkpoints the WAL itself (a checkpoint inside a commit stalls every
    batch of that group); a background thread with its own connection does, passively.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        checkpoint_interval_s: float = 0.5,
        wal_limit_bytes: int = WAL_RESTART_BYTES,
    ) -> None:
        self.path = str(path)
        self._synchronous = synchronous
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._writer.execute(f"PRAGMA journal_size_limit = {wal_limit_bytes}")
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(checkpoint_interval_s, wal_limit_bytes),
            name="kindred-sqlite-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval_s: float, wal_limit_bytes: int) -> None:
        """Copy the WAL back into the database without stopping the writer; when the WAL
        has grown past `wal_limit_bytes` anyway (a writer that never pauses keeps a
        passive checkpoint from ever finishing), hold the writer off briefly and restart it,
        so the WAL stays bounded."""
        conn = self._connect()
        wal = Path(f"{self.path}-wal")
        try:
            while not self._closed.wait(interval_s):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if wal.exists() and wal.stat().st_size > wal_limit_bytes:
                    # Between two groups: SQLite's own busy polling would miss the gaps of
                    # a writer that commits back to back. The passive pass above already
                    # copied most frames, so the writer waits only for the rest.
                    with self._write_lock:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA foreign_keys = OFF")
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
            current = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0
            for migration in load_migrations("kindred.storage.sqlite"):
                if migration.version > current:
                    conn.execute("BEGIN IMMEDIATE")
                    for statement in _statements(migration.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (migration.version, migration.name, int(time.time() * 1000)),
                    )
                    conn.execute("COMMIT")
                    current = migration.version
            return int(current)

    @contextmanager
    def unit_of_work(self) -> Iterator[_SqliteUnitOfWork]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteUnitOfWork(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def get_profile(self, mpid: int) -> Profile | None:
        row = self._reader().execute("SELECT doc FROM profiles WHERE mpid = ?", (mpid,)).fetchone()
        return None if row is None else decode_profile(row[0])

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]:
        rows = self._reader().execute(
            "SELECT mpid FROM identities WHERE scope = ? AND id_type = ? AND id_value = ?"
            " ORDER BY mpid",
            (scope, key.type, key.value),
        )
        return [r[0] for r in rows]

    def count_profiles(self) -> int:
        return int(self._reader().execute("SELECT count(*) FROM profiles").fetchone()[0])

    def read_log(self, after_id: int, limit: int) -> list[LogEntry]:
        rows = self._rows().execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [_log_entry(r) for r in rows]

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        rows = self._rows().execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid = ? ORDER BY id DESC LIMIT ?",
            (mpid, limit),
        )
        return [_log_entry(r) for r in rows]

    def list_rejects(self, kind: str | None, limit: int) -> list[RejectEntry]:
        rows = self._reader().execute(
            f"SELECT {_REJECT_COLUMNS} FROM rejects WHERE ? IS NULL OR kind = ?"
            " ORDER BY id DESC LIMIT ?",
            (kind, kind, limit),
        )
        return [
            RejectEntry(
                id=r[0],
                input=r[1],
                received_ms=r[2],
                kind=r[3],
                reason=r[4],
                body=bytes(r[5]),
                replayed_ms=r[6],
            )
            for r in rows
        ]

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join(10)
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            self._writer.close()


def _log_entry(row: sqlite3.Row) -> LogEntry:
    return LogEntry(
        id=row["id"],
        input=row["input"],
        workspace_id=row["workspace_id"],
        received_ms=row["received_ms"],
        status=row["status"],
        reason=row["reason"],
        mpid=row["mpid"],
        source_request_id=row["source_request_id"],
        client_ip=row["client_ip"],
        historical=bool(row["historical"]),
        body=bytes(row["body"]),
    )


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (they hold no semicolons in literals)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
