"""The store contract of the audience estimator (AUD-7): a scope's sample is its profiles of
smallest `sample_key` with an exact bound, computed by every store as the pure function
computes it (SQLite and PostgreSQL in SQL, migration 0020), kept as profiles come and go;
the event log read for many profiles at once, oldest first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo

from kindred.audiences.sample import SAMPLE_MODULUS, sample_key
from kindred.domain.profile import Profile
from kindred.ports import Store
from kindred.storage.migrations import Migration, load_migrations
from kindred.storage.postgres import PostgresStore
from kindred.storage.sqlite import SqliteStore
from tests.contract.samples import (
    BIG_A,
    BIG_B,
    EDGE_MPIDS,
    SCOPE,
    assert_same,
    log_entry,
    next_version,
    rich_profile,
    save,
)

__all__: list[str] = []

_SAMPLE_MIGRATION = 20
_LATER = 9_999
_MPIDS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _bare(mpid: int, scope: str = SCOPE) -> Profile:
    return msgspec.structs.replace(rich_profile(mpid), scope=scope, memberships={})


def _expected(mpids: set[int], size: int) -> tuple[list[int], int]:
    """The sample the contract promises: the `size` smallest keys, those tied with the
    next one left out, and the bound."""
    keyed = sorted((sample_key(m), m) for m in mpids)
    bound = keyed[size][0] if len(keyed) > size else SAMPLE_MODULUS
    return [m for k, m in keyed[:size] if k < bound], bound


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mpids=st.sets(_MPIDS, min_size=0, max_size=40), size=st.integers(1, 45))
def test_sample_is_the_smallest_keys_with_an_exact_bound(
    store: Store, mpids: set[int], size: int
) -> None:
    save(store, *(_bare(m) for m in mpids))
    sample = store.sample_profiles(SCOPE, size)
    wanted, bound = _expected(mpids, size)
    assert [p.mpid for p in sample.profiles] == wanted
    assert sample.bound == bound
    # Exactly the profiles below the bound: stable whatever else the scope holds.
    assert {p.mpid for p in sample.profiles} == {m for m in mpids if sample_key(m) < bound}
    with store.unit_of_work() as uow:
        for profile in uow.profiles.load(list(mpids)).values():
            uow.profiles.delete(profile)


@pytest.mark.parametrize("mpid", EDGE_MPIDS)
def test_sample_keys_match_the_pure_function_at_the_edges(store: Store, mpid: int) -> None:
    """The database's arithmetic (SQLite, PostgreSQL) is Python's, at the extremes of
    signed 64-bit MPIDs: the one profile is the whole sample, and a second one with a
    smaller key would come first."""
    save(store, rich_profile(mpid))
    sample = store.sample_profiles(SCOPE, 1)
    assert [p.mpid for p in sample.profiles] == [mpid]
    assert sample.bound == SAMPLE_MODULUS
    assert_same(sample.profiles[0], rich_profile(mpid))  # whole, memberships included
    other = BIG_A if mpid != BIG_A else BIG_B
    save(store, _bare(other))
    first = min((sample_key(m), m) for m in (mpid, other))
    second = max((sample_key(m), m) for m in (mpid, other))
    found = store.sample_profiles(SCOPE, 1)
    assert [p.mpid for p in found.profiles] == [first[1]]
    assert found.bound == second[0]


def test_sample_is_per_scope_and_follows_deletes(store: Store) -> None:
    in_a = [_bare(m) for m in range(1, 30)]
    in_b = [_bare(m, "b2") for m in range(100, 110)]
    save(store, *in_a, *in_b)
    sample = store.sample_profiles(SCOPE, 10)
    assert [p.mpid for p in sample.profiles] == _expected(set(range(1, 30)), 10)[0]
    assert all(p.scope == SCOPE for p in sample.profiles)
    assert store.sample_profiles("zz", 10).profiles == []
    assert store.sample_profiles("zz", 10).bound == SAMPLE_MODULUS
    gone = sample.profiles[0]
    with store.unit_of_work() as uow:
        uow.profiles.delete(gone)
    after = store.sample_profiles(SCOPE, 10)
    assert [p.mpid for p in after.profiles] == _expected(set(range(1, 30)) - {gone.mpid}, 10)[0]
    # The others sampled before stay sampled: the sample is stable.
    assert {p.mpid for p in sample.profiles[1:]} <= {p.mpid for p in after.profiles}


def test_a_sample_read_after_another_is_what_a_fresh_read_gives(store: Store) -> None:
    """Given the previous read, a store decodes only the rows stored since in another way
    (a document saved, memberships changed, profiles come and gone): the answer is a fresh
    read's, and a profile stored as it was is the object read before."""
    save(store, *(rich_profile(m) if m % 2 else _bare(m) for m in range(1, 17)))
    before = store.sample_profiles(SCOPE, 40)  # every profile of the scope
    members = [p for p in before.profiles if p.memberships]
    others = [p for p in before.profiles if not p.memberships]
    assert len(members) == 8
    assert len(others) == 8
    saved, left = members[:2]
    gone, same, also_saved = others[:3]
    with store.unit_of_work() as uow:
        uow.profiles.save(next_version(saved, last_stored_ms=saved.last_stored_ms + 1))
        uow.profiles.save(next_version(also_saved, ip="198.51.100.7"))
        uow.profiles.delete(gone)
    with store.unit_of_work() as uow:
        # Every member of audience 9 leaves; their documents stay as they were.
        uow.memberships.remove_all(9, _LATER, "audience deleted")
    save(store, *(_bare(m) for m in range(100, 108)))
    after = store.sample_profiles(SCOPE, 40, before)
    fresh = store.sample_profiles(SCOPE, 40)
    assert after.bound == fresh.bound
    assert [p.mpid for p in after.profiles] == [p.mpid for p in fresh.profiles]
    for found, read in zip(after.profiles, fresh.profiles, strict=True):
        assert_same(found, read)
    by_mpid = {p.mpid: p for p in after.profiles}
    assert by_mpid[saved.mpid].last_stored_ms == saved.last_stored_ms + 1
    assert by_mpid[also_saved.mpid].ip == "198.51.100.7"
    assert list(by_mpid[left.mpid].memberships) == [17802]
    assert len(after.profiles) == 16 - 1 + 8
    assert gone.mpid not in by_mpid
    assert by_mpid[same.mpid] is same  # stored as it was: not decoded again


def test_log_for_profiles_reads_theirs_oldest_first(store: Store) -> None:
    with store.unit_of_work() as uow:
        for t, mpid in enumerate([BIG_A, BIG_B, None, 7, BIG_A, 7]):
            uow.log.append(log_entry(mpid, t + 1))
    stored = store.read_log(0, 100)
    mine = store.log_for_profiles([BIG_A, 7])
    assert mine == [e for e in stored if e.mpid in (BIG_A, 7)]
    assert [e.received_ms for e in mine] == [1, 4, 5, 6]
    assert store.log_for_profiles([]) == []
    assert store.log_for_profiles([12345]) == []


def test_log_for_mpid_range_reads_a_range_of_profiles_by_mpid_then_id(store: Store) -> None:
    with store.unit_of_work() as uow:
        for t, mpid in enumerate([BIG_B, 9, None, 7, BIG_B, 7, 8, 12]):
            uow.log.append(log_entry(mpid, t + 1))
    stored = {e.received_ms: e for e in store.read_log(0, 100)}
    newest = max((e.id or 0) for e in stored.values())
    found = store.log_for_mpid_range(7, 9, newest)
    assert [(e.mpid, e.received_ms) for e in found] == [(7, 4), (7, 6), (8, 7), (9, 2)]
    assert found[0] == stored[4]
    # Up to an id: the batches logged after it are left out.
    cut = stored[6].id or 0
    assert [e.received_ms for e in store.log_for_mpid_range(7, 9, cut)] == [4, 6, 2]
    # 64-bit MPIDs at both ends, and a range holding none.
    assert [e.received_ms for e in store.log_for_mpid_range(BIG_B, BIG_B, newest)] == [1, 5]
    assert store.log_for_mpid_range(10, 11, newest) == []


def _all_but_0020(package: str) -> list[Migration]:
    """Every migration but 0020, and one numbered after every other (a later branch's,
    landed first): its number alone must not make the runner skip 0020."""
    later = Migration(_LATER, "a_later_branch", "SELECT 1")
    return [m for m in load_migrations(package) if m.version != _SAMPLE_MIGRATION] + [later]


def test_sqlite_applies_0020_to_a_store_that_holds_later_migrations(tmp_path: Path) -> None:
    """Migrations land out of order: a store already at a later number gets 0020 too."""
    path = tmp_path / "older.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
        )
        for migration in _all_but_0020("kindred.storage.sqlite"):
            conn.executescript(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
    store = SqliteStore(path)
    try:
        assert store.migrate() == _LATER
        save(store, rich_profile(BIG_A))
        assert [p.mpid for p in store.sample_profiles(SCOPE, 5).profiles] == [BIG_A]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert (_SAMPLE_MIGRATION,) in conn.execute("SELECT version FROM schema_migrations")


@pytest.mark.postgres
def test_postgres_applies_0020_to_a_store_that_holds_later_migrations(pg_database: str) -> None:
    schema = "older_store"
    url = make_conninfo(pg_database, options=f"-c search_path={schema}")
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
                )
                for migration in _all_but_0020("kindred.storage.postgres"):
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, 0)",
                        (migration.version, migration.name),
                    )
            store = PostgresStore(url, pool_size=1)
            try:
                assert store.migrate() == _LATER
                save(store, rich_profile(BIG_A))
                assert [p.mpid for p in store.sample_profiles(SCOPE, 5).profiles] == [BIG_A]
            finally:
                store.close()
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
