"""The PostgreSQL store's reads of what it logs: the event log (in id order, by profile, by
a range of MPIDs), the merges ledger and the rejected batches; each on a connection of the
store's pool."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow, kwargs_row
from psycopg_pool import ConnectionPool

from kindred.ports import LogEntry, MergeEntry, RejectEntry
from kindred.storage.codec import MERGE_COLUMNS, merge_of

__all__ = ["PostgresLogReads"]

_LOG_COLUMNS = (
    "id, input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body, event_stamps"
)
# The same, with the body of a batch that has its stamps left unread (empty).
_LOG_COLUMNS_STAMPED_WITHOUT_BODY = _LOG_COLUMNS.replace(
    "body", "CASE WHEN event_stamps IS NULL THEN body ELSE ''::bytea END AS body"
)
_REJECT_COLUMNS = "id, input, received_ms, kind, reason, body, replayed_ms"


class PostgresLogReads:
    """The reads of the event log, the merges and the rejects (a part of PostgresStore)."""

    _pool: ConnectionPool[psycopg.Connection[TupleRow]]

    def _rows(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> list[TupleRow]:
        """The rows of a read (StoreUnavailable when the database cannot answer)."""
        raise NotImplementedError

    def read_log(self, after_id: int, limit: int) -> list[LogEntry]:
        query = f"SELECT {_LOG_COLUMNS} FROM event_log WHERE id > %s ORDER BY id LIMIT %s"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (after_id, limit)).fetchall()

    def latest_log(self, limit: int) -> list[LogEntry]:
        query = f"SELECT {_LOG_COLUMNS} FROM event_log ORDER BY id DESC LIMIT %s"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (limit,)).fetchall()

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        query = f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid = %s ORDER BY id DESC LIMIT %s"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (mpid, limit)).fetchall()

    def log_for_profiles(self, mpids: Sequence[int]) -> list[LogEntry]:
        if not mpids:
            return []
        query = f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid = ANY(%s) ORDER BY id"
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (list(mpids),)).fetchall()

    def log_for_mpid_range(
        self, first: int, last: int, to_id: int, *, stamped_bodies: bool = True
    ) -> list[LogEntry]:
        columns = _LOG_COLUMNS if stamped_bodies else _LOG_COLUMNS_STAMPED_WITHOUT_BODY
        query = (
            f"SELECT {columns} FROM event_log"
            " WHERE mpid BETWEEN %s AND %s AND id <= %s ORDER BY mpid, id"
        )
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=kwargs_row(LogEntry))
            return cursor.execute(query, (first, last, to_id)).fetchall()

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
