"""The store contract, `uow.ledger`: merges kept whole with both profiles as they were,
listed newest first by either side, marked undone; on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import msgspec
import pytest

from kindred.ports import MergeEntry, Store, UnitOfWork
from tests.contract.samples import EDGE_MPIDS, SCOPE, Boom, rich_profile, run

_ENCODE = msgspec.json.Encoder()


def _entry(survivor: int, merged: int, merged_ms: int, **changes: object) -> MergeEntry:
    entry = MergeEntry(
        scope=SCOPE,
        survivor=survivor,
        merged=merged,
        rule="login",
        merged_ms=merged_ms,
        survivor_before=_ENCODE.encode(rich_profile(survivor)),
        merged_before=_ENCODE.encode(rich_profile(merged)),
    )
    return msgspec.structs.replace(entry, **changes)


def _record(store: Store, *entries: MergeEntry) -> list[MergeEntry]:
    with store.unit_of_work() as uow:
        for entry in entries:
            uow.ledger.record(entry)
    return store.list_merges(None, 1000)[::-1]


def test_a_merge_is_kept_whole(store: Store) -> None:
    survivor, merged = EDGE_MPIDS[0], EDGE_MPIDS[-1]
    entry = _entry(
        survivor,
        merged,
        1_000,
        identity_type="email",
        identity_value="ada@example.com",
        moved_log_ids=[3, 5, 8],
        detail="events 1..2",
    )
    (stored,) = _record(store, entry)
    assert stored.id is not None
    assert msgspec.structs.replace(stored, id=None) == entry
    assert store.get_merge(stored.id) == stored
    assert store.get_merge(stored.id + 1000) is None


def test_merges_list_newest_first_by_either_side(store: Store) -> None:
    first, second, third = _record(store, _entry(1, 2, 10), _entry(3, 1, 20), _entry(4, 5, 30))
    assert [e.id for e in store.list_merges(None, 10)] == [third.id, second.id, first.id]
    assert [e.id for e in store.list_merges(1, 10)] == [second.id, first.id]
    assert [e.id for e in store.list_merges(5, 10)] == [third.id]
    assert [e.id for e in store.list_merges(None, 2)] == [third.id, second.id]
    assert store.list_merges(99, 10) == []


def test_an_unmerge_is_marked_on_its_entry_alone(store: Store) -> None:
    kept, undone = _record(store, _entry(1, 2, 10), _entry(3, 4, 20))
    assert undone.id is not None
    with store.unit_of_work() as uow:
        uow.ledger.mark_unmerged(undone.id, 99)
    assert store.get_merge(undone.id) == msgspec.structs.replace(undone, unmerged_ms=99)
    assert kept.id is not None
    assert store.get_merge(kept.id) == kept


def _record_then_fail(uow: UnitOfWork) -> None:
    uow.ledger.record(_entry(1, 2, 10))
    raise Boom


def test_a_merge_rolled_back_is_not_kept(store: Store) -> None:
    with pytest.raises(Boom):
        run(store, _record_then_fail)
    assert store.list_merges(None, 10) == []
