"""The SQLite store's reads of the membership log take its indexes: one profile's history
(audiences of P at T) and one audience's (members of X at T) never walk the whole log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kindred.storage.membership_log import log_query
from kindred.storage.sqlite import SqliteStore
from kindred.storage.sqlite.log_reads import _STAMPED_RANGE


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    store = SqliteStore(tmp_path / "kindred.db")
    store.migrate()
    store.close()
    return sqlite3.connect(tmp_path / "kindred.db")


def plan(conn: sqlite3.Connection, audience_id: int | None, mpid: int | None) -> str:
    statement, params = log_query(audience_id, mpid, 10**13, 1000, "?")
    rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("audience_id", "mpid", "index"),
    [
        (None, 42, "membership_log_by_mpid"),
        (7, None, "membership_log_by_audience"),
    ],
)
def test_a_history_is_read_through_its_index(
    conn: sqlite3.Connection, audience_id: int | None, mpid: int | None, index: str
) -> None:
    found = plan(conn, audience_id, mpid)
    assert f"USING INDEX {index}" in found, found


def test_an_activations_read_of_stamped_batches_takes_the_index_alone(
    conn: sqlite3.Connection,
) -> None:
    """The batches with stamps come from the covering index (no table row, no body page);
    those without from the index, then the table."""
    rows = conn.execute(f"EXPLAIN QUERY PLAN {_STAMPED_RANGE}", (1, 2, 3) * 2).fetchall()
    searches = [str(row[-1]) for row in rows if "SEARCH" in str(row[-1])]
    assert searches == [
        "SEARCH event_log USING COVERING INDEX event_log_by_mpid (mpid>? AND mpid<?)",
        "SEARCH event_log USING INDEX event_log_by_mpid (mpid>? AND mpid<?)",
    ], searches
