"""The PostgreSQL flush: what every ingested batch writes goes as one statement per table
over arrays (not a statement per row), in the order it was written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest

from kindred.domain.identities import IdentityKey
from kindred.storage.postgres import PostgresStore
from tests.contract.samples import log_entry, rich_profile
from tests.pg import pg_url, temporary_database

MPID = 4_611_686_018_427_387_904
# An ingested batch's profile: in no audience yet.
PROFILE = msgspec.structs.replace(rich_profile(MPID), memberships={})
EMAIL = IdentityKey("email", "a@example.com")


@pytest.fixture
def pg_store() -> Iterator[PostgresStore]:
    with temporary_database() as conninfo:
        store = PostgresStore(pg_url(conninfo), pool_size=2)
        store.migrate()
        yield store
        store.close()


def test_a_batchs_writes_are_one_statement_per_table_in_order(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_row: list[str] = []
    executemany = psycopg.Cursor.executemany

    def spy(cursor: psycopg.Cursor[Any], query: Any, params: Any, **kw: Any) -> None:
        per_row.append(str(query))
        executemany(cursor, query, params, **kw)

    monkeypatch.setattr(psycopg.Cursor, "executemany", spy)
    with pg_store.unit_of_work() as uow:
        uow.profiles.save(PROFILE)
        uow.identities.link("1", MPID, [EMAIL])
        assert uow.log.claim_request("web", "r-1", 5)
        for received_ms in (30, 10, 20):
            uow.log.append(log_entry(MPID, received_ms))
    assert per_row == []
    assert pg_store.find_profiles("1", EMAIL) == [MPID]
    assert [e.received_ms for e in pg_store.read_log(0, 10)] == [30, 10, 20]
    assert pg_store.get_profile(MPID) == PROFILE
    with pg_store.unit_of_work() as uow:
        assert not uow.log.claim_request("web", "r-1", 6)
