"""The store contract, `uow.log.position` and `move_position`: how far a batch log
partition has been applied moves with the transaction that applies its batches, per
partition, on memory, SQLite and PostgreSQL alike; on PostgreSQL a second worker reading
the same partition waits for the first, then sees how far it went."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kindred.ports import Store, UnitOfWork
from kindred.storage.postgres import PostgresStore
from tests.contract.samples import Boom, run

__all__: list[str] = []


def test_a_position_is_per_partition_and_seen_by_its_own_transaction(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.log.position(0) == 0
        uow.log.move_position(0, 5)
        assert uow.log.position(0) == 5
        uow.log.move_position(0, 9)
        uow.log.move_position(1, 2)
    with store.unit_of_work() as uow:
        assert [uow.log.position(p) for p in (0, 1, 2)] == [9, 2, 0]


def test_a_position_moved_in_a_transaction_that_fails_did_not_move(store: Store) -> None:
    def move_then_fail(uow: UnitOfWork) -> None:
        uow.log.move_position(3, 7)
        raise Boom

    with pytest.raises(Boom):
        run(store, move_then_fail)
    with store.unit_of_work() as uow:
        assert uow.log.position(3) == 0


@pytest.mark.postgres
def test_two_workers_on_one_partition_take_turns(
    fresh_pg_store: PostgresStore, other_thread: ThreadPoolExecutor
) -> None:
    store = fresh_pg_store
    first_holds = threading.Event()
    with store.unit_of_work() as uow:
        assert uow.log.position(4) == 0
        uow.log.move_position(4, 10)
        first_holds.set()

        def second() -> int:
            # Blocks on the partition's row until the first transaction commits.
            with store.unit_of_work() as other:
                return other.log.position(4)

        waiting = other_thread.submit(second)
        first_holds.wait()
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.3)
    assert waiting.result(timeout=10) == 10
    assert store.position(4) == 10
