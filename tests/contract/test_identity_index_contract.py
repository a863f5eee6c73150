"""The store contract, `uow.identities`: links found, made and removed exactly, scopes
apart, resolution serialized by the identity locks, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.rows import TupleRow

from kindred.domain.identities import IdentityKey
from kindred.ports import (
    Store,
)
from kindred.storage.postgres import PostgresStore

__all__: list[str] = []
from tests.contract.samples import (
    BIG_A,
    BIG_B,
    CUSTOMER,
    EMAIL,
    IDFV,
    SCOPE,
    assert_waits,
)


def test_identities_link_find_and_unlink(store: Store) -> None:
    missing = IdentityKey("email", "nobody@example.com")
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, BIG_A, [EMAIL, CUSTOMER, EMAIL])
        uow.identities.link(SCOPE, BIG_B, iter([EMAIL]))
        uow.identities.link(SCOPE, BIG_A, [EMAIL])  # linking again changes nothing
        found = uow.identities.find(SCOPE, [EMAIL, CUSTOMER, missing])
    assert found == {EMAIL: [BIG_B, BIG_A], CUSTOMER: [BIG_A]}
    assert store.find_profiles(SCOPE, EMAIL) == [BIG_B, BIG_A]
    assert store.find_profiles(SCOPE, missing) == []
    with store.unit_of_work() as uow:
        uow.identities.unlink(SCOPE, BIG_A, [EMAIL, missing])
        uow.identities.unlink(SCOPE, BIG_B, [CUSTOMER])  # not linked to BIG_B: a no-op
        assert uow.identities.find(SCOPE, [EMAIL, CUSTOMER]) == {EMAIL: [BIG_B], CUSTOMER: [BIG_A]}
    with store.unit_of_work() as uow:
        uow.identities.unlink(SCOPE, BIG_B, [EMAIL])
        assert uow.identities.find(SCOPE, [EMAIL]) == {}


def test_repeated_keys_find_each_link_once(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, BIG_A, [EMAIL])
        uow.identities.link(SCOPE, BIG_B, [EMAIL])
        assert uow.identities.find(SCOPE, [EMAIL, CUSTOMER, EMAIL]) == {EMAIL: [BIG_B, BIG_A]}


def test_empty_identity_calls_do_nothing(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.identities.lock(SCOPE, [])
        uow.identities.link(SCOPE, BIG_A, [])
        uow.identities.unlink(SCOPE, BIG_A, [])
        assert uow.identities.find(SCOPE, []) == {}


def test_identity_scopes_are_apart(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, 1, [EMAIL])
        uow.identities.link("other", 2, [EMAIL])
        uow.identities.unlink("other", 1, [EMAIL])  # mpid 1 is linked in SCOPE only
        assert uow.identities.find(SCOPE, [EMAIL]) == {EMAIL: [1]}
        assert uow.identities.find("other", [EMAIL]) == {EMAIL: [2]}
    assert store.find_profiles(SCOPE, EMAIL) == [1]
    assert store.find_profiles("other", EMAIL) == [2]
    assert store.find_profiles("third", EMAIL) == []


def test_identity_values_are_exact(store: Store) -> None:
    shouting = IdentityKey("email", EMAIL.value.upper())
    other_type = IdentityKey("other", EMAIL.value)
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, 1, [EMAIL])
        assert uow.identities.find(SCOPE, [shouting, other_type]) == {}


def test_identity_lock_serializes_resolution(
    store: Store, other_thread: ThreadPoolExecutor
) -> None:
    """Two resolutions of one identity: the second waits, then sees the first one's link."""

    def resolve() -> dict[IdentityKey, list[int]]:
        with store.unit_of_work() as uow:
            uow.identities.lock(SCOPE, [CUSTOMER, EMAIL])
            found = uow.identities.find(SCOPE, [EMAIL])
            if not found:
                uow.identities.link(SCOPE, 2, [EMAIL])
            return found

    with store.unit_of_work() as uow:
        uow.identities.lock(SCOPE, [EMAIL, IDFV, EMAIL])
        assert uow.identities.find(SCOPE, [EMAIL]) == {}
        second = other_thread.submit(resolve)
        assert_waits(second)
        uow.identities.link(SCOPE, 1, [EMAIL])
    assert second.result(timeout=10) == {EMAIL: [1]}
    assert store.find_profiles(SCOPE, EMAIL) == [1]


@pytest.mark.postgres
def test_identity_locks_are_advisory_and_released_at_commit(
    fresh_pg_store: PostgresStore, pg_admin: psycopg.Connection[TupleRow]
) -> None:
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with fresh_pg_store.unit_of_work() as uow:
        uow.identities.lock(SCOPE, [EMAIL, CUSTOMER, EMAIL])
        # The unit of work is pipelined: the locks travel with its next read, which they
        # serialize (the port's promise); once that read has answered, they are held.
        uow.identities.find(SCOPE, [EMAIL])
        assert pg_admin.execute(held).fetchone() == (2,)
    assert pg_admin.execute(held).fetchone() == (0,)


def test_linked_identities_are_found_in_one_read(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, BIG_A, [EMAIL, CUSTOMER])
        uow.identities.link(SCOPE, BIG_B, [EMAIL])
        uow.identities.link("other", BIG_B, [IDFV])
    assert store.find_linked(SCOPE, [EMAIL, CUSTOMER, IDFV]) == {
        EMAIL: sorted([BIG_A, BIG_B]),
        CUSTOMER: [BIG_A],
    }
    assert store.find_linked(SCOPE, []) == {}
