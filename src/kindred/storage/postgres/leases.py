"""Which worker reads which partition of the batch log (ports.batch_log.PartitionLeases),
in PostgreSQL, on the database's clock."""

from __future__ import annotations

import math
from collections.abc import Sequence

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from kindred.ports.batch_log import PartitionState

__all__ = ["PostgresLeases"]

_Connection = psycopg.Connection[TupleRow]

_NOW_MS = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"


class PostgresLeases:
    """A lease round is one transaction holding every partition row (FOR UPDATE), so two
    workers' rounds never interleave; a round is a handful of statements every few
    seconds per worker."""

    _pool: ConnectionPool[_Connection]

    def lease(self, owner: str, partitions: int, lease_ms: int) -> list[int]:
        with self._pool.connection() as conn, conn.transaction():
            now = _now_ms(conn)
            _ensure_rows(conn, partitions)
            conn.execute(
                "INSERT INTO partition_workers (owner, expires_ms) VALUES (%s, %s)"
                " ON CONFLICT (owner) DO UPDATE SET expires_ms = excluded.expires_ms",
                (owner, now + lease_ms),
            )
            conn.execute("DELETE FROM partition_workers WHERE expires_ms < %s", (now,))
            row = conn.execute("SELECT count(*) FROM partition_workers").fetchone()
            share = math.ceil(partitions / max(1, int(row[0]) if row else 1))
            rows = conn.execute(
                "SELECT partition_no, owner, expires_ms FROM partition_leases"
                " WHERE partition_no < %s ORDER BY partition_no FOR UPDATE",
                (partitions,),
            ).fetchall()
            mine = [p for p, o, e in rows if o == owner and e >= now]
            free = [p for p, o, e in rows if e < now or not o]
            keep = mine[:share]
            take = free[: max(0, share - len(keep))]
            conn.execute(
                "UPDATE partition_leases SET owner = %s, expires_ms = %s"
                " WHERE partition_no = ANY(%s)",
                (owner, now + lease_ms, keep + take),
            )
            _give_back(conn, owner, mine[share:])
            return sorted(keep + take)

    def release(self, owner: str, partitions: Sequence[int] | None = None) -> None:
        with self._pool.connection() as conn, conn.transaction():
            if partitions is None:
                conn.execute("DELETE FROM partition_workers WHERE owner = %s", (owner,))
                conn.execute(
                    "UPDATE partition_leases SET owner = '', expires_ms = 0 WHERE owner = %s",
                    (owner,),
                )
            else:
                _give_back(conn, owner, list(partitions))

    def position(self, partition: int) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT seq FROM log_positions WHERE partition_no = %s", (partition,)
            ).fetchone()
        return int(row[0]) if row else 0

    def partition_states(self, partitions: int) -> list[PartitionState]:
        with self._pool.connection() as conn:
            now = _now_ms(conn)
            rows = conn.execute(
                "SELECT n, coalesce(p.seq, 0), coalesce(l.owner, ''), coalesce(l.expires_ms, 0)"
                " FROM generate_series(0, %s - 1) AS n"
                " LEFT JOIN log_positions AS p ON p.partition_no = n"
                " LEFT JOIN partition_leases AS l ON l.partition_no = n ORDER BY n",
                (partitions,),
            ).fetchall()
        return [
            PartitionState(n, seq, owner if expires >= now else "", expires)
            for n, seq, owner, expires in rows
        ]


def _now_ms(conn: _Connection) -> int:
    row = conn.execute(_NOW_MS).fetchone()
    assert row is not None
    return int(row[0])


def _ensure_rows(conn: _Connection, partitions: int) -> None:
    conn.execute(
        "INSERT INTO partition_leases (partition_no)"
        " SELECT generate_series(0, %s - 1) ON CONFLICT DO NOTHING",
        (partitions,),
    )


def _give_back(conn: _Connection, owner: str, partitions: list[int]) -> None:
    if partitions:
        conn.execute(
            "UPDATE partition_leases SET owner = '', expires_ms = 0"
            " WHERE owner = %s AND partition_no = ANY(%s)",
            (owner, partitions),
        )
