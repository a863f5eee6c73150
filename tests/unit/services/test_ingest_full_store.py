"""A group the store cannot take: its batches are answered each, those committed keep
their outcomes and those the store refused get StoreUnavailable (503 upstream)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from kindred.domain.errors import StoreUnavailable
from kindred.ports import BatchStatus
from kindred.services.write_path import write_path
from kindred.services.writes.commands import Accepted
from kindred.storage.memory import MemoryStore
from kindred.wire.observe import observe
from tests.fakes import NullMetrics, SequentialMpids
from tests.unit.services.test_audience_membership import NOW, SERVER


class _FillsUp(MemoryStore):
    """The first transaction fails for a reason of its own; after `room` more, the store
    is full."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.transactions = 0
        self.room = room

    @contextmanager
    def unit_of_work(self) -> Iterator[Any]:
        self.transactions += 1
        if self.transactions == 1:
            raise RuntimeError("a fault of this group alone")
        if self.transactions > 1 + self.room:
            raise StoreUnavailable("store unavailable: database or disk is full")
        with super().unit_of_work() as uow:
            yield uow


def _batch(n: int) -> Accepted:
    body = msgspec.json.encode({"user_identities": {"customer_id": f"full-{n}"}})
    return Accepted(SERVER, observe(body, SERVER, NOW), body)


def test_batches_applied_before_the_store_filled_keep_their_outcomes() -> None:
    store = _FillsUp(room=2)
    ingest = write_path(store, SequentialMpids(), NullMetrics(), lambda _: SERVER)
    results = ingest.apply([_batch(n) for n in range(4)])
    assert [getattr(r, "status", None) for r in results[:2]] == [BatchStatus.APPLIED] * 2
    assert all(isinstance(r, StoreUnavailable) for r in results[2:])
    logged = [e.status for e in store.read_log(0, 10)]
    assert logged == [BatchStatus.APPLIED] * 2  # the refused ones are not stored


def test_a_group_the_store_refuses_is_refused_whole() -> None:
    store = _FillsUp(room=0)
    store.transactions = 1  # no fault of its own: the store is full from the start
    ingest = write_path(store, SequentialMpids(), NullMetrics(), lambda _: SERVER)
    results = ingest.apply([_batch(n) for n in range(3)])
    assert all(isinstance(r, StoreUnavailable) for r in results)
    assert store.transactions == 2  # one try for the group, none batch by batch
