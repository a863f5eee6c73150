"""The store contract, `uow.log.advance_position`: a batch log partition's position moves
with the transaction that applies its batches, so a batch read again is skipped, on
memory, SQLite and PostgreSQL alike; on PostgreSQL a second worker applying the same
partition waits for the first and then skips what it applied."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kindred.ports import Store, UnitOfWork
from kindred.storage.postgres import PostgresStore
from tests.contract.samples import Boom, run

__all__: list[str] = []


def test_a_position_moves_forward_only_and_per_partition(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.log.advance_position(0, 5)
        assert not uow.log.advance_position(0, 5)  # read again in the same transaction
        assert uow.log.advance_position(0, 9)
        assert uow.log.advance_position(1, 2)
    with store.unit_of_work() as uow:
        assert not uow.log.advance_position(0, 3)
        assert not uow.log.advance_position(0, 9)
        assert uow.log.advance_position(0, 10)
        assert not uow.log.advance_position(1, 2)
        assert uow.log.advance_position(2, 1)


def test_a_position_moved_in_a_transaction_that_fails_did_not_move(store: Store) -> None:
    def move_then_fail(uow: UnitOfWork) -> None:
        assert uow.log.advance_position(3, 7)
        raise Boom

    with pytest.raises(Boom):
        run(store, move_then_fail)
    with store.unit_of_work() as uow:
        assert uow.log.advance_position(3, 7)


@pytest.mark.postgres
def test_two_workers_on_one_partition_apply_each_seq_once(
    fresh_pg_store: PostgresStore, other_thread: ThreadPoolExecutor
) -> None:
    store = fresh_pg_store
    first_holds = threading.Event()
    with store.unit_of_work() as uow:
        assert uow.log.advance_position(4, 10)
        first_holds.set()

        def second() -> list[bool]:
            # Blocks on the partition's row until the first transaction commits.
            with store.unit_of_work() as other:
                return [other.log.advance_position(4, s) for s in (9, 10, 11)]

        waiting = other_thread.submit(second)
        first_holds.wait()
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.3)
    assert waiting.result(timeout=10) == [False, False, True]
    assert store.position(4) == 11
