"""The PostgreSQL store's migrations: each pending one applied in a transaction of its own,
recorded in `schema_migrations`; then statistics for every table that holds rows and has
never had any."""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from kindred.storage.migrations import Migration, load_migrations

__all__ = ["migrate"]

log = logging.getLogger("kindred.store")

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
    analyze_unanalyzed(conn)
    return max(applied, default=0)


def analyze_unanalyzed(conn: _Connection) -> list[str]:
    """ANALYZE each of this schema's tables that holds rows and was never analyzed (nor
    vacuumed); the tables analyzed.

    Without statistics the planner takes its defaults: it then read `event_log WHERE mpid
    = ANY(...)` (the estimator's read of its sample's batches) with a parallel scan of the
    whole log, ~0.3-0.6 s on 1.1M batches, instead of the MPID index (~5 ms). A store
    filled with autovacuum off (or faster than it runs) has none; ANALYZE samples a
    table, so this costs well under a second, once."""
    tables = [
        str(name)
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples < 0"
        )
    ]
    analyzed = []
    for table in tables:
        name = sql.Identifier(table)
        holds = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name))
        found = holds.fetchone()
        if found is not None and found[0]:
            conn.execute(sql.SQL("ANALYZE {}").format(name))
            analyzed.append(table)
    if analyzed:
        log.info("statistics made for %s (never analyzed)", ", ".join(analyzed))
    return analyzed


def _apply(conn: _Connection, migration: Migration) -> None:
    with conn.transaction():
        # Without parameters psycopg sends the file as one simple query: no splitting needed.
        conn.execute(migration.sql.encode())
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%s, %s, %s)",
            (migration.version, migration.name, int(time.time() * 1000)),
        )
