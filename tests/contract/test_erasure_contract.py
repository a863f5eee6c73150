"""The store contract of a subject's erasure and of data subject requests: each part's
`erase` removes the subject's rows and nothing else; requests are kept, found, listed,
updated from the version read, and an open one per type and subject; on memory, SQLite and
PostgreSQL."""

from __future__ import annotations

import msgspec
import pytest

from kindred.audiences.definition import MembershipChange
from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.ports import Delivery, MergeEntry, Store
from tests.contract.samples import SCOPE, log_entry, reject, rich_profile, save

SUBJECT, OTHER = 2**62 + 11, -(2**62) - 5
NEEDLE = b'"ada@example.com"'


def _delivery(mpid: int | None, n: int) -> Delivery:
    return Delivery(
        connection="hook", kind="batch", workspace_id=1, created_ms=n, body=b"{}", mpid=mpid
    )


def _merge(survivor: int, merged: int) -> MergeEntry:
    return MergeEntry(
        scope=SCOPE,
        survivor=survivor,
        merged=merged,
        rule="login",
        merged_ms=5,
        survivor_before=b"{}",
        merged_before=b"{}",
    )


def _change(mpid: int, audience_id: int, at_ms: int) -> MembershipChange:
    return MembershipChange(
        audience_id=audience_id, mpid=mpid, entered=True, at_ms=at_ms, reason="x"
    )


def _fill(store: Store) -> None:
    save(store, rich_profile(SUBJECT), rich_profile(OTHER))
    with store.unit_of_work() as uow:
        uow.log.append(log_entry(SUBJECT, 1))
        uow.log.append(log_entry(OTHER, 2))
        uow.log.append(log_entry(None, 3, body=b'{"user_identities":{"email":"ada@example.com"}}'))
        uow.log.append(log_entry(None, 4, body=b'{"user_identities":{"email":"bo@example.com"}}'))
        uow.rejects.record(reject("quarantined", 5, body=b'{"email":"ada@example.com"'))
        uow.rejects.record(reject("rejected", 6, body=b'{"email":"bo@example.com"'))
        uow.ledger.record(_merge(SUBJECT, 77))
        uow.ledger.record(_merge(OTHER, 78))
        uow.ledger.record(_merge(79, SUBJECT))
        uow.memberships.append([_change(SUBJECT, 1, 1), _change(OTHER, 1, 2)])
        uow.outbox.enqueue([_delivery(SUBJECT, 1), _delivery(OTHER, 2), _delivery(None, 3)])
    store.bury_deliveries("hook", [store.pending_deliveries("hook", 1)[0].id or 0], "no", 9)


def test_erase_removes_the_subjects_rows_and_nothing_else(store: Store) -> None:
    _fill(store)
    with store.unit_of_work() as uow:
        assert uow.log.erase([SUBJECT], [NEEDLE]) == 2
        assert uow.rejects.erase([NEEDLE]) == 1
        assert uow.ledger.erase([SUBJECT]) == 2
        assert uow.memberships.erase_log([SUBJECT]) == 1
        assert uow.outbox.erase([SUBJECT]) == (0, 1)  # its one row is a dead letter now
        # Rows this transaction adds are not erased.
        uow.memberships.append([_change(SUBJECT, 2, 9)])
        assert uow.memberships.erase_log([SUBJECT]) == 0
    log = store.read_log(0, 100)
    assert [(e.mpid, e.received_ms) for e in log] == [(OTHER, 2), (None, 4)]
    assert [r.received_ms for r in store.list_rejects(None, 10)] == [6]
    assert [(m.survivor, m.merged) for m in store.list_merges(None, 10)] == [(OTHER, 78)]
    changes = store.membership_log(audience_id=None, mpid=None, until_ms=100, limit=10)
    assert [(c.mpid, c.audience_id) for c in changes] == [(OTHER, 1), (SUBJECT, 2)]
    assert [d.mpid for d in store.pending_deliveries("hook", 10)] == [OTHER, None]
    assert store.dead_letters(None, 10) == []
    assert store.get_profile(OTHER) is not None


def test_ids_keep_growing_after_an_erasure(store: Store) -> None:
    _fill(store)
    before = max(e.id or 0 for e in store.read_log(0, 100))
    with store.unit_of_work() as uow:
        uow.log.erase([OTHER], [b'"bo@example.com"'])
        uow.log.append(log_entry(SUBJECT, 10))
    newest = store.read_log(0, 100)[-1]
    assert (newest.id or 0) > before
    assert store.read_log(before, 10) == [newest]


def _request(request_id: str, **changes: object) -> DsrRequest:
    request = DsrRequest(
        workspace_id=1,
        request_id=request_id,
        input="server",
        scope=SCOPE,
        regulation="gdpr",
        request_type="erasure",
        identities={"email": "ada@example.com"},
        submitted_ms=1,
        received_ms=10,
        due_ms=100,
        status_ms=10,
        raw=b'{"a":1}',
    )
    return msgspec.structs.replace(request, **changes)


def test_a_request_is_kept_whole_and_found_by_workspace(store: Store) -> None:
    request = _request("r-1", group_id="g", callback_urls=["https://cb.example"])
    assert store.insert_dsr(request) == "created"
    assert store.get_dsr(1, "r-1") == request
    assert store.get_dsr(2, "r-1") is None
    assert store.get_dsr(1, "r-2") is None


def test_the_same_id_is_a_duplicate_and_an_open_one_a_conflict(store: Store) -> None:
    assert store.insert_dsr(_request("r-1")) == "created"
    assert store.insert_dsr(_request("r-1", identities={"email": "x@y"})) == "duplicate"
    assert store.insert_dsr(_request("r-2")) == "conflict"
    # Another type, another subject, another workspace: no conflict.
    assert store.insert_dsr(_request("r-3", request_type="access")) == "created"
    assert store.insert_dsr(_request("r-4", identities={"email": "x@y"})) == "created"
    assert store.insert_dsr(_request("r-1", workspace_id=2)) == "created"
    # Once the first is done, the same subject may be asked about again.
    done = _request("r-1", status=DsrStatus.COMPLETED, version=2)
    assert store.update_dsr(done)
    assert store.insert_dsr(_request("r-5")) == "created"


def test_updates_apply_only_from_the_version_read(store: Store) -> None:
    store.insert_dsr(_request("r-1"))
    moved = _request("r-1", status=DsrStatus.IN_PROGRESS, status_ms=50, version=2)
    assert store.update_dsr(moved)
    assert not store.update_dsr(moved)  # a second process read version 1 too
    assert store.get_dsr(1, "r-1") == moved
    assert not store.update_dsr(_request("r-9", version=2))


def test_due_requests_and_stale_ones(store: Store) -> None:
    store.insert_dsr(_request("late", due_ms=300, identities={"email": "a"}))
    store.insert_dsr(_request("soon", due_ms=100, identities={"email": "b"}))
    store.insert_dsr(_request("busy", identities={"email": "c"}))
    store.update_dsr(_request("busy", identities={"email": "c"}, status="in_progress", version=2))
    assert [r.request_id for r in store.due_dsr(200, 0, 10)] == ["soon"]
    # Earliest due first (then by id): busy was due at 100 as well.
    assert [r.request_id for r in store.due_dsr(400, 50, 10)] == ["busy", "soon", "late"]
    assert [r.request_id for r in store.due_dsr(400, 50, 1)] == ["busy"]


def test_requests_list_newest_first_by_workspace_and_group(store: Store) -> None:
    store.insert_dsr(_request("a", received_ms=1, group_id="g", identities={"email": "a"}))
    store.insert_dsr(_request("b", received_ms=2, identities={"email": "b"}))
    store.insert_dsr(_request("c", received_ms=3, workspace_id=2, group_id="g"))
    assert [r.request_id for r in store.list_dsr(None, None, 10)] == ["c", "b", "a"]
    assert [r.request_id for r in store.list_dsr(1, None, 10)] == ["b", "a"]
    assert [r.request_id for r in store.list_dsr(1, "g", 10)] == ["a"]
    assert [r.request_id for r in store.list_dsr(None, None, 1)] == ["c"]


@pytest.mark.parametrize("body", [b"\x00{\xff}", b"{}"])
def test_results_are_kept_and_dropped(store: Store, body: bytes) -> None:
    store.insert_dsr(_request("r-1"))
    assert store.dsr_result(1, "r-1") is None
    store.save_dsr_result(1, "r-1", body)
    assert store.dsr_result(1, "r-1") == body
    assert store.dsr_result(2, "r-1") is None
    store.save_dsr_result(1, "r-1", None)
    assert store.dsr_result(1, "r-1") is None
    assert store.get_dsr(1, "r-1") == _request("r-1")
