"""The store contract, the store and its units of work as a whole: migrations, a
transaction that commits or rolls back everything, reads of its own writes, compaction;
run against memory, SQLite and PostgreSQL alike (the parts have files of their own:
profiles, identity index, event log, rejects, memberships, ledger, outbox).

MemoryStore defines the semantics; a SQL store that disagrees with it is wrong.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from kindred.domain.profile import (
    Profile,
)
from kindred.ports import (
    ConcurrentUpdate,
    Store,
    UnitOfWork,
)
from kindred.storage.migrations import load_migrations
from kindred.storage.postgres import PostgresStore

__all__: list[str] = []
from tests.contract.samples import (
    BIG_A,
    CUSTOMER,
    EMAIL,
    SCOPE,
    Boom,
    log_entry,
    next_version,
    reject,
    rich_profile,
    run,
    save,
)


def test_migrate_is_idempotent(store: Store) -> None:
    first = store.migrate()
    assert first >= 1
    assert store.migrate() == first


def write_everything_then_fail(uow: UnitOfWork) -> None:
    uow.profiles.save(rich_profile(BIG_A))
    uow.identities.link(SCOPE, BIG_A, [EMAIL, CUSTOMER])
    assert uow.log.claim_request("web", "r-1", 5)
    uow.log.append(log_entry(BIG_A, 5))
    uow.rejects.record(reject("rejected", 5))
    raise Boom


def test_exception_rolls_everything_back(store: Store) -> None:
    with pytest.raises(Boom):
        run(store, write_everything_then_fail)
    assert store.get_profile(BIG_A) is None
    assert store.count_profiles() == 0
    assert store.find_profiles(SCOPE, EMAIL) == []
    assert store.read_log(0, 10) == []
    assert store.log_for_profile(BIG_A, 10) == []
    assert store.list_rejects(None, 10) == []
    with store.unit_of_work() as uow:
        assert uow.identities.find(SCOPE, [EMAIL, CUSTOMER]) == {}
        assert uow.log.claim_request("web", "r-1", 6)


def test_a_lost_version_check_rolls_back_the_rest(store: Store) -> None:
    save(store, rich_profile(BIG_A))

    def link_log_then_save_stale(uow: UnitOfWork) -> None:
        uow.identities.link(SCOPE, BIG_A, [EMAIL])
        uow.log.append(log_entry(BIG_A, 5))
        uow.profiles.save(rich_profile(BIG_A))

    with pytest.raises(ConcurrentUpdate):
        run(store, link_log_then_save_stale)
    assert store.find_profiles(SCOPE, EMAIL) == []
    assert store.read_log(0, 10) == []


def test_committed_work_is_visible_to_reads(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.profiles.save(rich_profile(BIG_A))
        uow.identities.link(SCOPE, BIG_A, [EMAIL])
    assert store.find_profiles(SCOPE, EMAIL) == [BIG_A]
    assert store.count_profiles() == 1


def _migrate_at_once(url: str, processes: int) -> list[int]:
    stores = [PostgresStore(url, pool_size=1) for _ in range(processes)]
    start = threading.Barrier(processes)

    def migrate(store: PostgresStore) -> int:
        start.wait()
        return store.migrate()

    try:
        with ThreadPoolExecutor(max_workers=processes) as pool:
            return list(pool.map(migrate, stores))
    finally:
        for store in stores:
            store.close()


@pytest.mark.postgres
def test_concurrent_migrations_apply_once(pg_database: str) -> None:
    schema = "migrate_race"
    url = make_conninfo(pg_database, options=f"-c search_path={schema}")
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            versions = _migrate_at_once(url, processes=4)
            applied = admin.execute(
                sql.SQL("SELECT count(*) FROM {}.schema_migrations").format(sql.Identifier(schema))
            )
            # Every migration once (numbers may have gaps: they are given out per branch).
            assert applied.fetchone() == (len(load_migrations("kindred.storage.postgres")),)
            assert versions[0] == load_migrations("kindred.storage.postgres")[-1].version
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    assert len(set(versions)) == 1


def test_a_transaction_reads_its_own_writes(store: Store) -> None:
    first = rich_profile(BIG_A)
    with store.unit_of_work() as uow:
        uow.prefetch([(SCOPE, EMAIL)], [BIG_A], [("web", "r-9")])
        uow.profiles.save(first)
        uow.profiles.save(next_version(first, ip="10.9.9.9"))
        assert uow.profiles.load([BIG_A])[BIG_A].ip == "10.9.9.9"
        uow.identities.link(SCOPE, BIG_A, [EMAIL, CUSTOMER])
        uow.identities.unlink(SCOPE, BIG_A, [CUSTOMER])
        assert uow.identities.find(SCOPE, [EMAIL, CUSTOMER]) == {EMAIL: [BIG_A]}
        assert uow.log.claim_request("web", "r-9", 1)
        assert not uow.log.claim_request("web", "r-9", 2)
    stored = store.get_profile(BIG_A)
    assert stored is not None
    assert stored.version == 2
    assert stored.ip == "10.9.9.9"
    assert store.find_profiles(SCOPE, EMAIL) == [BIG_A]
    assert store.find_profiles(SCOPE, CUSTOMER) == []
    with store.unit_of_work() as uow:
        assert not uow.log.claim_request("web", "r-9", 3)


def test_compacting_keeps_every_profile(store: Store) -> None:
    profile = Profile(mpid=4242, scope="s", created_ms=1, last_stored_ms=2, version=1)
    with store.unit_of_work() as uow:
        uow.profiles.save(profile)
    before, after = store.compact()
    assert before >= 0
    assert after >= 0
    assert store.get_profile(4242) == profile
