"""The SQLite store's reads of what it logs: the event log (in id order, by profile, by a
range of MPIDs), the merges ledger and the rejected batches; each on the reading thread's
own connection (`SqliteStore._reader`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from kindred.ports import LogEntry, MergeEntry, RejectEntry
from kindred.storage.codec import MERGE_COLUMNS, merge_of

__all__ = ["SqliteLogReads"]

_LOG_COLUMNS = (
    "id, input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body, event_stamps"
)
# A range of the log by MPID, the body of a batch with its stamps left unread (empty):
# those rows come from the covering index event_log_stamps alone, without the table.
_STAMPED_RANGE = (
    "SELECT " + _LOG_COLUMNS.replace("body", "x'' AS body") + " FROM event_log"
    " WHERE mpid BETWEEN ? AND ? AND id <= ? AND event_stamps IS NOT NULL"
    f" UNION ALL SELECT {_LOG_COLUMNS} FROM event_log"
    " WHERE mpid BETWEEN ? AND ? AND id <= ? AND event_stamps IS NULL ORDER BY mpid, id"
)
_REJECT_COLUMNS = "id, input, received_ms, kind, reason, body, replayed_ms"


# MPIDs per `IN (...)` list (well under SQLite's limit on parameters).
_IN_CHUNK = 5_000


class SqliteLogReads:
    """The reads of the event log, the merges and the rejects (a part of SqliteStore)."""

    def _reader(self) -> sqlite3.Connection:
        """This thread's reading connection."""
        raise NotImplementedError

    def read_log(self, after_id: int, limit: int) -> list[LogEntry]:
        rows = self._reader().execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [_log_entry(r) for r in rows]

    def latest_log(self, limit: int) -> list[LogEntry]:
        rows = self._reader().execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [_log_entry(r) for r in rows]

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        rows = self._reader().execute(
            f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid = ? ORDER BY id DESC LIMIT ?",
            (mpid, limit),
        )
        return [_log_entry(r) for r in rows]

    def log_for_profiles(self, mpids: Sequence[int]) -> list[LogEntry]:
        found: list[LogEntry] = []
        cursor = self._reader()
        for first in range(0, len(mpids), _IN_CHUNK):
            chunk = tuple(mpids[first : first + _IN_CHUNK])
            marks = ", ".join("?" for _ in chunk)
            rows = cursor.execute(
                f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid IN ({marks})", chunk
            )
            found.extend(_log_entry(r) for r in rows)
        found.sort(key=lambda e: e.id or 0)
        return found

    def log_for_mpid_range(
        self, first: int, last: int, to_id: int, *, stamped_bodies: bool = True
    ) -> list[LogEntry]:
        if stamped_bodies:
            rows = self._reader().execute(
                f"SELECT {_LOG_COLUMNS} FROM event_log WHERE mpid BETWEEN ? AND ? AND id <= ?"
                " ORDER BY mpid, id",
                (first, last, to_id),
            )
        else:
            rows = self._reader().execute(_STAMPED_RANGE, (first, last, to_id) * 2)
        return [_log_entry(r) for r in rows]

    def list_merges(self, mpid: int | None, limit: int) -> list[MergeEntry]:
        rows = self._reader().execute(
            f"SELECT id, {MERGE_COLUMNS} FROM merges"
            " WHERE ? IS NULL OR survivor = ? OR merged = ? ORDER BY id DESC LIMIT ?",
            (mpid, mpid, mpid, limit),
        )
        return [merge_of(row) for row in rows]

    def get_merge(self, merge_id: int) -> MergeEntry | None:
        row = (
            self._reader()
            .execute(f"SELECT id, {MERGE_COLUMNS} FROM merges WHERE id = ?", (merge_id,))
            .fetchone()
        )
        return None if row is None else merge_of(row)

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


def _log_entry(row: Sequence[Any]) -> LogEntry:
    """From a row in _LOG_COLUMNS order."""
    (entry_id, input_name, workspace_id, received_ms, status, reason, mpid) = row[:7]
    source_request_id, client_ip, historical, body, stamps = row[7:]
    return LogEntry(
        id=entry_id,
        input=input_name,
        workspace_id=workspace_id,
        received_ms=received_ms,
        status=status,
        reason=reason,
        mpid=mpid,
        source_request_id=source_request_id,
        client_ip=client_ip,
        historical=bool(historical),
        body=bytes(body),
        event_stamps=None if stamps is None else bytes(stamps),
    )
