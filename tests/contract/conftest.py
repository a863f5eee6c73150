"""The three stores the contract suite runs against: memory, SQLite (a file) and PostgreSQL.

PostgreSQL tests get a database of their own per test session (so per xdist worker), made
on the server named by KINDRED_TEST_PG_URL and dropped at the end; tables are emptied
between tests. When the server cannot be reached those tests fail, they never skip: a
contract silently not checked against the scale-out store is worse than a red run.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import psycopg
import pytest
from psycopg.rows import TupleRow

from kindred.ports import Store
from kindred.storage.memory import MemoryStore
from kindred.storage.postgres import PostgresStore
from kindred.storage.sqlite import SqliteStore
from tests.pg import PG_URL_ENV, connect, temporary_database

__all__ = ["BACKENDS", "PG_URL_ENV"]

_TABLES = (
    "profiles",
    "identities",
    "request_ids",
    "event_log",
    "rejects",
    "api_credentials",
    "server_secrets",
    "ui_sessions",
    "users",
    "user_keys",
    "merges",
    "audiences",
    "audience_versions",
    "calculated_attributes",
    "membership_log",
    "audience_members",
    "outbox",
    "dead_letters",
    "connection_states",
    "connection_syncs",
    "forwarding_definitions",
    "dsr_requests",
    "erasure_receipts",
    "log_positions",
    "partition_leases",
    "partition_workers",
)
# DELETE, not TRUNCATE: on tables this small it is ~100x faster (no new files to fsync).
_EMPTY_TABLES = "".join(f"DELETE FROM {table};" for table in _TABLES)

BACKENDS = ("memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database that lives as long as this test session (so per xdist worker)."""
    with temporary_database() as conninfo:
        yield conninfo


@pytest.fixture(scope="session")
def pg_store(pg_database: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_database, pool_size=4)
    store.migrate()
    yield store
    store.close()


@pytest.fixture(scope="session")
def pg_admin(pg_database: str) -> Iterator[psycopg.Connection[TupleRow]]:
    """A connection of the suite's own, to empty tables and inspect the server."""
    with connect(pg_database) as conn:
        yield conn


@pytest.fixture
def fresh_pg_store(
    pg_store: PostgresStore, pg_admin: psycopg.Connection[TupleRow]
) -> PostgresStore:
    pg_admin.execute(_EMPTY_TABLES)
    return pg_store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store of each kind."""
    if backend == "postgres":
        yield cast(PostgresStore, request.getfixturevalue("fresh_pg_store"))
        return
    local: Store = MemoryStore() if backend == "memory" else SqliteStore(tmp_path / "kindred.db")
    local.migrate()
    yield local
    local.close()


@pytest.fixture
def other_thread() -> Iterator[ThreadPoolExecutor]:
    """A second thread standing in for another process; made before the first transaction
    opens so that it is waited for only after that transaction has ended."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool
