"""PostgreSQL without statistics plans by its defaults, and read the estimator's batches
(`event_log WHERE mpid = ANY(...)`) with a scan of the whole log. Every migration run (each
start) analyzes the tables that hold rows and were never analyzed: once, and never an
empty one."""

from __future__ import annotations

import pytest

from kindred.storage.postgres import PostgresStore
from kindred.storage.postgres.migrating import analyze_unanalyzed
from tests.contract.samples import log_entry, rich_profile, save
from tests.pg import connect, pg_url, temporary_database

pytestmark = pytest.mark.postgres


def _analyzed(conninfo: str) -> set[str]:
    with connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples >= 0"
            " AND relnamespace = 'public'::regnamespace"
        ).fetchall()
    return {str(name) for (name,) in rows}


def test_tables_with_rows_and_no_statistics_are_analyzed_once() -> None:
    with temporary_database() as conninfo:
        store = PostgresStore(pg_url(conninfo), pool_size=2)
        try:
            store.migrate()
            assert not {"profiles", "event_log"} & _analyzed(conninfo)  # empty: left alone
            save(store, rich_profile(11))
            with store.unit_of_work() as uow:
                uow.log.append(log_entry(11, 1_000))
            store.migrate()
            assert {"profiles", "event_log"} <= _analyzed(conninfo)
            with connect(conninfo) as conn:
                stats = conn.execute(
                    "SELECT count(*) FROM pg_stats WHERE tablename = 'event_log'"
                    " AND attname = 'mpid'"
                ).fetchone()
            assert stats == (1,)
        finally:
            store.close()


def test_a_table_analyzed_before_is_not_analyzed_again() -> None:
    with temporary_database() as conninfo:
        store = PostgresStore(pg_url(conninfo), pool_size=2)
        try:
            store.migrate()
            save(store, rich_profile(12))
        finally:
            store.close()
        with connect(conninfo) as conn:
            assert "profiles" in analyze_unanalyzed(conn)
            assert analyze_unanalyzed(conn) == []
