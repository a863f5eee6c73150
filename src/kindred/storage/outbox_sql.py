"""The outbox, dead letters, connection states and run-time definitions (ENR-3), in SQL that
SQLite and PostgreSQL both speak. A store mixes in `SqlDeliveryStore` and says how it runs
one transaction (`_delivery_tx`) and which placeholder its driver uses (`_MARK`)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from kindred.ports import ConnectionState, DeadLetter, Delivery, SyncState

__all__ = ["DELIVERY_COLUMNS", "Cursor", "SqlDeliveryStore", "delivery_row"]

DELIVERY_COLUMNS = (
    "connection, kind, workspace_id, created_ms, mpid, source, client_ip, historical, body"
)
_STATE_COLUMNS = (
    "connection, failures, failing_since_ms, retry_at_ms, faulted_ms, last_error, delivered"
)


class Cursor(Protocol):
    """What both drivers' cursors offer."""

    def execute(self, query: Any, params: Any = ...) -> Any: ...

    def executemany(self, query: Any, params_seq: Any) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...


def delivery_row(d: Delivery) -> tuple[object, ...]:
    return (
        d.connection,
        d.kind,
        d.workspace_id,
        d.created_ms,
        d.mpid,
        d.source,
        d.client_ip,
        d.historical,
        d.body,
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        connection=row[1],
        kind=row[2],
        workspace_id=row[3],
        created_ms=row[4],
        mpid=row[5],
        source=row[6],
        client_ip=row[7],
        historical=bool(row[8]),
        body=bytes(row[9]),
    )


def _sync(row: Sequence[Any]) -> SyncState:
    return SyncState(
        connection=row[0],
        status=row[1],
        audience_id=row[2],
        generation=row[3],
        cursor_mpid=row[4],
        members_done=row[5],
        members_total=row[6],
        started_ms=row[7],
        finished_ms=row[8],
    )


def _state(row: Sequence[Any]) -> ConnectionState:
    return ConnectionState(
        connection=row[0],
        failures=row[1],
        failing_since_ms=row[2],
        retry_at_ms=row[3],
        faulted_ms=row[4],
        last_error=row[5],
        delivered=row[6],
    )


def _state_row(s: ConnectionState) -> tuple[object, ...]:
    return (
        s.connection,
        s.failures,
        s.failing_since_ms,
        s.retry_at_ms,
        s.faulted_ms,
        s.last_error,
        s.delivered,
    )


_SAVE_STATE = (
    f"INSERT INTO connection_states ({_STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (connection) DO UPDATE SET failures = excluded.failures,"
    " failing_since_ms = excluded.failing_since_ms, retry_at_ms = excluded.retry_at_ms,"
    " faulted_ms = excluded.faulted_ms, last_error = excluded.last_error,"
    " delivered = excluded.delivered"
)

_CLAIM = (
    "INSERT INTO connection_states (connection, lease_owner, lease_until_ms) VALUES (?, ?, ?)"
    " ON CONFLICT (connection) DO UPDATE SET lease_owner = excluded.lease_owner,"
    " lease_until_ms = excluded.lease_until_ms"
    " WHERE connection_states.lease_owner IS NULL"
    " OR connection_states.lease_owner = excluded.lease_owner"
    " OR connection_states.lease_until_ms < ?"
)


_DELETE_ROW = "DELETE FROM outbox WHERE id = ? AND connection = ?"

_SYNC_COLUMNS = (
    "connection, status, audience_id, generation, cursor_mpid, members_done, members_total,"
    " started_ms, finished_ms"
)

_SET_SYNC = (
    "INSERT INTO connection_syncs (connection, status) VALUES (?, ?)"
    " ON CONFLICT (connection) DO UPDATE SET status = excluded.status, audience_id = NULL,"
    " cursor_mpid = NULL, members_done = 0, members_total = 0, started_ms = NULL,"
    " finished_ms = NULL"
)

# Begun only over the generation the caller read (0: none stored) and never while "off".
_BEGIN_SYNC = (
    "INSERT INTO connection_syncs (connection, status, audience_id, generation, members_total,"
    " started_ms) VALUES (?, 'running', ?, ?,"
    " (SELECT count(*) FROM audience_members WHERE audience_id = ?), ?)"
    " ON CONFLICT (connection) DO UPDATE SET status = excluded.status,"
    " audience_id = excluded.audience_id, generation = excluded.generation,"
    " cursor_mpid = NULL, members_done = 0, members_total = excluded.members_total,"
    " started_ms = excluded.started_ms, finished_ms = NULL"
    " WHERE connection_syncs.generation = ? AND connection_syncs.status <> 'off'"
)


class SqlDeliveryStore:
    _MARK = "?"

    def _delivery_tx(self) -> AbstractContextManager[Cursor]:
        """A cursor inside one write transaction that commits when the block exits."""
        raise NotImplementedError

    def _delivery_read(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads; by default inside a transaction of its own."""
        return self._delivery_tx()

    def _raise_definitions_version(self, cursor: Cursor) -> None:
        """Within the transaction of a definition's change (see UnitOfWork.definitions_version)."""
        raise NotImplementedError

    def _sql(self, query: str) -> str:
        return query.replace("?", self._MARK)

    def _outbox_rows(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        with self._delivery_read() as cursor:
            cursor.execute(self._sql(query), params)
            return list(cursor.fetchall())

    def _outbox_write(self, query: str, params: Sequence[object] = ()) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(query), params)

    def claim_lane(self, connection: str, owner: str, now_ms: int, lease_ms: int) -> bool:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql(_CLAIM), (connection, owner, now_ms + lease_ms, now_ms))
            cursor.execute(
                self._sql("SELECT lease_owner FROM connection_states WHERE connection = ?"),
                (connection,),
            )
            row = cursor.fetchone()
        return row is not None and row[0] == owner

    def release_lane(self, connection: str, owner: str) -> None:
        self._outbox_write(
            "UPDATE connection_states SET lease_owner = NULL, lease_until_ms = 0"
            " WHERE connection = ? AND lease_owner = ?",
            (connection, owner),
        )

    def pending_deliveries(self, connection: str, limit: int) -> list[Delivery]:
        rows = self._outbox_rows(
            f"SELECT id, {DELIVERY_COLUMNS} FROM outbox WHERE connection = ? ORDER BY id LIMIT ?",
            (connection, limit),
        )
        return [_delivery(r) for r in rows]

    def complete_deliveries(
        self, connection: str, ids: Sequence[int], state: ConnectionState
    ) -> None:
        with self._delivery_tx() as cursor:
            _delete_ids(cursor, self._sql(_DELETE_ROW), ids, connection)
            cursor.execute(self._sql(_SAVE_STATE), _state_row(state))

    def bury_deliveries(self, connection: str, ids: Sequence[int], error: str, now_ms: int) -> None:
        with self._delivery_tx() as cursor:
            cursor.executemany(
                self._sql(
                    f"INSERT INTO dead_letters ({DELIVERY_COLUMNS}, failed_ms, error)"
                    f" SELECT {DELIVERY_COLUMNS}, ?, ? FROM outbox WHERE id = ? AND connection = ?"
                ),
                [(now_ms, error, i, connection) for i in ids],
            )
            _delete_ids(cursor, self._sql(_DELETE_ROW), ids, connection)

    def count_pending(self) -> dict[str, int]:
        rows = self._outbox_rows("SELECT connection, count(*) FROM outbox GROUP BY connection")
        return {r[0]: int(r[1]) for r in rows}

    def connection_states(self) -> list[ConnectionState]:
        rows = self._outbox_rows(
            f"SELECT {_STATE_COLUMNS} FROM connection_states ORDER BY connection"
        )
        return [_state(r) for r in rows]

    def save_connection_state(self, state: ConnectionState) -> None:
        self._outbox_write(_SAVE_STATE, _state_row(state))

    def dead_letters(self, connection: str | None, limit: int) -> list[DeadLetter]:
        where, params = _of_connection(connection)
        rows = self._outbox_rows(
            f"SELECT id, {DELIVERY_COLUMNS}, failed_ms, error FROM dead_letters"
            f" {where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [
            DeadLetter(id=r[0], delivery=_delivery(r[:10]), failed_ms=r[10], error=r[11])
            for r in rows
        ]

    def erasure_message_states(self, sources: Sequence[str]) -> dict[str, str]:
        if not sources:
            return {}
        marks = ", ".join("?" * len(sources))
        found: dict[str, str] = {}
        # The outbox last: a dead letter replayed is pending again.
        for table, state in (("dead_letters", "failed"), ("outbox", "pending")):
            rows = self._outbox_rows(
                f"SELECT DISTINCT source FROM {table} WHERE kind = 'erasure'"
                f" AND source IN ({marks})",
                tuple(sources),
            )
            found.update((r[0], state) for r in rows)
        return found

    def replay_dead_letters(self, connection: str | None, ids: Sequence[int] | None) -> int:
        with self._delivery_tx() as cursor:
            where, params = _of_connection(connection)
            cursor.execute(self._sql(f"SELECT id FROM dead_letters {where} ORDER BY id"), params)
            wanted = None if ids is None else set(ids)
            chosen = [r[0] for r in cursor.fetchall() if wanted is None or r[0] in wanted]
            cursor.executemany(
                self._sql(
                    f"INSERT INTO outbox ({DELIVERY_COLUMNS})"
                    f" SELECT {DELIVERY_COLUMNS} FROM dead_letters WHERE id = ?"
                ),
                [(i,) for i in chosen],
            )
            cursor.executemany(
                self._sql("DELETE FROM dead_letters WHERE id = ?"), [(i,) for i in chosen]
            )
        return len(chosen)

    def sync_state(self, connection: str) -> SyncState | None:
        rows = self._outbox_rows(
            f"SELECT {_SYNC_COLUMNS} FROM connection_syncs WHERE connection = ?", (connection,)
        )
        return _sync(rows[0]) if rows else None

    def sync_states(self) -> list[SyncState]:
        rows = self._outbox_rows(
            f"SELECT {_SYNC_COLUMNS} FROM connection_syncs ORDER BY connection"
        )
        return [_sync(r) for r in rows]

    def set_sync(self, connection: str, status: str) -> None:
        with self._delivery_tx() as cursor:
            cursor.execute(self._sql("DELETE FROM outbox WHERE connection = ?"), (connection,))
            cursor.execute(self._sql(_SET_SYNC), (connection, status))

    def begin_sync(
        self, connection: str, audience_id: int, generation: int, now_ms: int, *, discard: bool
    ) -> SyncState | None:
        with self._delivery_tx() as cursor:
            cursor.execute(
                self._sql(_BEGIN_SYNC),
                (connection, audience_id, generation + 1, audience_id, now_ms, generation),
            )
            if cursor.rowcount != 1:
                return None
            if discard:
                cursor.execute(self._sql("DELETE FROM outbox WHERE connection = ?"), (connection,))
            cursor.execute(
                self._sql(f"SELECT {_SYNC_COLUMNS} FROM connection_syncs WHERE connection = ?"),
                (connection,),
            )
            return _sync(cursor.fetchone())

    def advance_sync(
        self, connection: str, generation: int, members_done: int, cursor_mpid: int, count: int
    ) -> bool:
        with self._delivery_tx() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE connection_syncs SET cursor_mpid = ?, members_done = ?"
                    " WHERE connection = ? AND generation = ? AND members_done = ?"
                    " AND status = 'running'"
                ),
                (cursor_mpid, members_done + count, connection, generation, members_done),
            )
            return cursor.rowcount == 1

    def finish_sync(self, connection: str, generation: int, now_ms: int) -> bool:
        with self._delivery_tx() as cursor:
            cursor.execute(
                self._sql(
                    "UPDATE connection_syncs SET status = 'done', finished_ms = ?"
                    " WHERE connection = ? AND generation = ? AND status = 'running'"
                ),
                (now_ms, connection, generation),
            )
            return cursor.rowcount == 1

    def audience_members(self, audience_id: int, after_mpid: int | None, limit: int) -> list[int]:
        # The index on (audience_id, mpid) walks one audience's members in order.
        after, params = ("", ()) if after_mpid is None else (" AND mpid > ?", (after_mpid,))
        rows = self._outbox_rows(
            f"SELECT mpid FROM audience_members WHERE audience_id = ?{after} ORDER BY mpid LIMIT ?",
            (audience_id, *params, limit),
        )
        return [int(r[0]) for r in rows]

    def pending_mpids(self, connection: str, mpids: Sequence[int]) -> set[int]:
        if not mpids:
            return set()
        marks = ", ".join("?" for _ in mpids)
        rows = self._outbox_rows(
            f"SELECT DISTINCT mpid FROM outbox WHERE connection = ? AND mpid IN ({marks})",
            (connection, *mpids),
        )
        return {int(r[0]) for r in rows}

    def add_dead_letters(self, deliveries: Sequence[Delivery], error: str, now_ms: int) -> None:
        with self._delivery_tx() as cursor:
            cursor.executemany(
                self._sql(
                    f"INSERT INTO dead_letters ({DELIVERY_COLUMNS}, failed_ms, error)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [(*delivery_row(d), now_ms, error) for d in deliveries],
            )

    def save_definition(self, kind: str, name: str, doc: bytes) -> None:
        with self._delivery_tx() as cursor:
            self._raise_definitions_version(cursor)
            cursor.execute(
                self._sql(
                    "INSERT INTO forwarding_definitions (kind, name, doc) VALUES (?, ?, ?)"
                    " ON CONFLICT (kind, name) DO UPDATE SET doc = excluded.doc"
                ),
                (kind, name, doc),
            )

    def delete_definition(self, kind: str, name: str) -> bool:
        with self._delivery_tx() as cursor:
            self._raise_definitions_version(cursor)
            cursor.execute(
                self._sql("DELETE FROM forwarding_definitions WHERE kind = ? AND name = ?"),
                (kind, name),
            )
            return bool(cursor.rowcount)

    def list_definitions(self, kind: str) -> list[bytes]:
        rows = self._outbox_rows(
            "SELECT doc FROM forwarding_definitions WHERE kind = ? ORDER BY name", (kind,)
        )
        return [bytes(r[0]) for r in rows]


def _delete_ids(cursor: Cursor, query: str, ids: Sequence[int], connection: str) -> None:
    if ids:
        cursor.executemany(query, [(i, connection) for i in ids])


def _of_connection(connection: str | None) -> tuple[str, tuple[object, ...]]:
    # Two texts rather than `? IS NULL OR ...`: PostgreSQL cannot type a lone NULL parameter.
    return ("", ()) if connection is None else ("WHERE connection = ?", (connection,))
