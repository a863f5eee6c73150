"""The store contract, `uow.log`: request ids claimed once, every batch kept as received
with what became of it, read in order, on memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

import msgspec
import pytest

from kindred.ports import (
    BatchStatus,
    LogEntry,
    Store,
    UnitOfWork,
)

__all__: list[str] = []
from tests.contract.samples import (
    BIG_A,
    BIG_B,
    Boom,
    log_entry,
    run,
)


def test_request_ids_are_claimed_once_per_input(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.log.claim_request("web", "r-1", 1)
        assert not uow.log.claim_request("web", "r-1", 2)
        assert uow.log.claim_request("ios", "r-1", 3)
        assert uow.log.claim_request("web", "r-2", 4)
    with store.unit_of_work() as uow:
        assert not uow.log.claim_request("web", "r-1", 5)
        assert not uow.log.claim_request("ios", "r-1", 6)


def append(store: Store, entry: LogEntry) -> LogEntry:
    """Append `entry` and return it as stored (with the id the store gave it)."""
    with store.unit_of_work() as uow:
        uow.log.append(entry)
    return store.read_log(0, 1_000_000)[-1]


def test_log_reads_in_order_and_pages(store: Store) -> None:
    first = append(store, log_entry(BIG_A, 1))

    def append_then_fail(uow: UnitOfWork) -> None:
        uow.log.append(log_entry(BIG_A, 2))  # rolled back: its id may be skipped, never seen
        raise Boom

    with pytest.raises(Boom):
        run(store, append_then_fail)
    rest = [append(store, log_entry(m, t)) for m, t in ((None, 3), (BIG_B, 4), (BIG_A, 5))]
    entries = [first, *rest]
    ids = [e.id for e in entries if e.id is not None]
    assert ids == sorted(set(ids))
    assert len(ids) == len(entries)
    assert store.read_log(0, 10) == entries
    assert store.read_log(0, 2) == entries[:2]
    assert store.read_log(ids[1], 2) == entries[2:]
    assert store.read_log(ids[-1], 10) == []
    assert store.latest_log(2) == entries[:-3:-1]
    assert store.latest_log(10) == entries[::-1]


def test_log_status_changes(store: Store) -> None:
    entry = append(store, log_entry(BIG_A, 1, status=BatchStatus.APPLIED, reason=None))
    assert entry.id is not None
    with store.unit_of_work() as uow:
        uow.log.set_status(entry.id, BatchStatus.FAILED, "boom")
    assert store.read_log(0, 1) == [
        msgspec.structs.replace(entry, status=BatchStatus.FAILED, reason="boom")
    ]
    with store.unit_of_work() as uow:
        uow.log.set_status(entry.id, BatchStatus.APPLIED, None)
    assert store.read_log(0, 1) == [entry]


def test_log_for_profile_is_newest_first(store: Store) -> None:
    entries = [append(store, log_entry(m, t)) for t, m in enumerate([BIG_A, BIG_B, None, BIG_A])]
    mine = [entries[3], entries[0]]
    assert store.log_for_profile(BIG_A, 10) == mine
    assert store.log_for_profile(BIG_A, 1) == mine[:1]
    assert store.log_for_profile(BIG_B, 10) == [entries[1]]
    assert store.log_for_profile(12345, 10) == []


def test_log_keeps_every_field(store: Store) -> None:
    entry = log_entry(
        BIG_B,
        2**53 + 1,
        status=BatchStatus.UNRESOLVED,
        reason="no identity",
        source_request_id=None,
        workspace_id=-(2**40),
        input="s2s \u2603",
        body=bytes(range(256)),
    )
    stored = append(store, entry)
    assert store.read_log(0, 10) == [stored]
    assert store.log_for_profile(BIG_B, 10) == [stored]


def test_log_keeps_event_stamps_and_a_range_read_may_leave_stamped_bodies(store: Store) -> None:
    stamps = b"\x91\x93\xacsome_event\xc0\x01"
    stamped = append(store, log_entry(BIG_A, 1, event_stamps=stamps, body=b"stamped body"))
    plain = append(store, log_entry(BIG_A, 2, body=b"unstamped body"))
    other = append(store, log_entry(BIG_B, 3, event_stamps=stamps))
    assert stamped.event_stamps == stamps
    assert plain.event_stamps is None
    assert store.read_log(0, 10) == [stamped, plain, other]
    assert store.log_for_mpid_range(BIG_A, BIG_A, 10**6) == [stamped, plain]
    # Without stamped bodies, a batch with its stamps comes without its body; one without
    # stamps (logged before they were kept) with it.
    lean = store.log_for_mpid_range(BIG_B, BIG_A, 10**6, stamped_bodies=False)
    assert lean == [  # by MPID (BIG_B < BIG_A), then id
        msgspec.structs.replace(other, body=b""),
        msgspec.structs.replace(stamped, body=b""),
        plain,
    ]
    assert plain.id is not None
    assert store.log_for_mpid_range(BIG_B, BIG_A, plain.id - 1, stamped_bodies=False) == lean[1:2]
