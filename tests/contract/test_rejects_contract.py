"""The store contract, `uow.rejects`: refused and quarantined batches kept with their
reason and replay time, on memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

from kindred.ports import (
    RejectEntry,
    Store,
)

__all__: list[str] = []
from tests.contract.samples import (
    reject,
)


def record(store: Store, entry: RejectEntry) -> RejectEntry:
    """Record `entry` and return it as stored (with the id the store gave it)."""
    with store.unit_of_work() as uow:
        uow.rejects.record(entry)
    return store.list_rejects(None, 1)[0]


def test_rejects_list_newest_first_by_kind(store: Store) -> None:
    kinds = ["rejected", "quarantined", "rejected", "quarantined", "rejected"]
    entries = [record(store, reject(kind, t, reason=f"r{t}")) for t, kind in enumerate(kinds)]
    newest_first = entries[::-1]
    assert store.list_rejects(None, 10) == newest_first
    assert store.list_rejects(None, 2) == newest_first[:2]
    assert store.list_rejects("rejected", 10) == [e for e in newest_first if e.kind == "rejected"]
    assert store.list_rejects("quarantined", 1) == [entries[3]]
    assert store.list_rejects("other", 10) == []


def test_rejects_keep_their_replay_time(store: Store) -> None:
    entry = record(store, reject("quarantined", 1, replayed_ms=2))
    assert store.list_rejects(None, 1) == [entry]
