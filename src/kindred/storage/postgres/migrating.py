"""The PostgreSQL store's migrations: each pending one applied in a transaction of its own,
recorded in `schema_migrations`."""

from __future__ import annotations

import time

import psycopg
from psycopg.rows import TupleRow

from kindred.storage.migrations import Migration, load_migrations

__all__ = ["migrate"]

_Connection = psycopg.Connection[TupleRow]

_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
)


def migrate(conn: _Connection) -> int:
    """Apply the pending migrations, each in its own transaction; the caller holds the lock."""
    conn.execute(_CREATE_MIGRATIONS)
    # Every migration not applied yet, older numbers included: branches land their
    # migrations out of order (a store may hold 22 before 20 exists).
    applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    for migration in load_migrations("kindred.storage.postgres"):
        if migration.version not in applied:
            _apply(conn, migration)
            applied.add(migration.version)
    return max(applied, default=0)


def _apply(conn: _Connection, migration: Migration) -> None:
    with conn.transaction():
        # Without parameters psycopg sends the file as one simple query: no splitting needed.
        conn.execute(migration.sql.encode())
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%s, %s, %s)",
            (migration.version, migration.name, int(time.time() * 1000)),
        )
