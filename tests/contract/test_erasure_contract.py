"""The store contract of a subject's erasure and of data subject requests: each part's
`erase` removes the subject's rows and nothing else; requests are kept, found, listed,
updated from the version read, and an open one per type and subject; on memory, SQLite and
PostgreSQL."""

from __future__ import annotations

import json

import msgspec
import pytest

from kindred.audiences.definition import ERASED_EXIT, MembershipChange
from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.domain.identities import IdentityKey
from kindred.domain.receipts import RESIDUE_PARTS, row_digest
from kindred.ports import Delivery, MergeEntry, Removed, Store
from tests.contract.samples import SCOPE, log_entry, receipt_record, reject, rich_profile, save

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
        assert len(uow.log.erase([SUBJECT], [NEEDLE])) == 2
        assert len(uow.rejects.erase([NEEDLE])) == 1
        assert len(uow.ledger.erase([SUBJECT])) == 2
        assert len(uow.memberships.erase_log([SUBJECT])) == 1
        outbox, dead = uow.outbox.erase([SUBJECT])
        assert (len(outbox), len(dead)) == (0, 1)  # its one row is a dead letter now
        # Rows this transaction adds are not erased.
        uow.memberships.append([_change(SUBJECT, 2, 9)])
        assert uow.memberships.erase_log([SUBJECT]) == []
    log = store.read_log(0, 100)
    assert [(e.mpid, e.received_ms) for e in log] == [(OTHER, 2), (None, 4)]
    assert [r.received_ms for r in store.list_rejects(None, 10)] == [6]
    assert [(m.survivor, m.merged) for m in store.list_merges(None, 10)] == [(OTHER, 78)]
    changes = store.membership_log(audience_id=None, mpid=None, until_ms=100, limit=10)
    assert [(c.mpid, c.audience_id) for c in changes] == [(OTHER, 1), (SUBJECT, 2)]
    assert [d.mpid for d in store.pending_deliveries("hook", 10)] == [OTHER, None]
    assert store.dead_letters(None, 10) == []
    assert store.get_profile(OTHER) is not None


def test_erase_tells_each_removed_row_by_id_and_digest(store: Store) -> None:
    """The digests a receipt lists are the same on every store: SHA-256 over the row's
    fields as `row_digest` takes them."""
    _fill(store)
    log = {e.id: e for e in store.read_log(0, 100)}
    rejects = {r.id: r for r in store.list_rejects(None, 10)}
    merges = {m.id or 0: m for m in store.list_merges(None, 10)}
    changes = store.membership_log(audience_id=None, mpid=None, until_ms=100, limit=10)
    dead = {d.id: d for d in store.dead_letters(None, 10)}
    with store.unit_of_work() as uow:
        erased_log = uow.log.erase([SUBJECT], [NEEDLE])
        erased_rejects = uow.rejects.erase([NEEDLE])
        erased_merges = uow.ledger.erase([SUBJECT])
        erased_changes = uow.memberships.erase_log([SUBJECT])
        _, erased_dead = uow.outbox.erase([SUBJECT])
    assert [r.digest for r in erased_log] == [
        row_digest("event_log", i, log[i].body) for i in sorted(r.id for r in erased_log)
    ]
    assert {log[r.id].received_ms for r in erased_log} == {1, 3}
    (gone,) = erased_rejects
    assert gone.digest == row_digest("rejects", gone.id, rejects[gone.id].body)
    assert sorted(r.id for r in erased_merges) == sorted(
        i for i, m in merges.items() if SUBJECT in (m.survivor, m.merged)
    )
    for r in erased_merges:
        m = merges[r.id]
        expected = ("merge_ledger", r.id, m.survivor, m.merged, m.survivor_before, m.merged_before)
        assert r.digest == row_digest(*expected)
    (change,) = [c for c in changes if c.mpid == SUBJECT]
    assert erased_changes == [
        Removed(
            change.id or 0,
            row_digest("membership_log", change.id, change.audience_id, SUBJECT, True, 1),
        )
    ]
    (letter,) = erased_dead
    kept = dead[letter.id].delivery
    assert letter.digest == row_digest("dead_letters", letter.id, kept.connection, kept.body)


def test_receipts_are_kept_whole_and_listed_newest_first(store: Store) -> None:
    store.save_receipt(receipt_record("a", 1, 1))
    store.save_receipt(receipt_record("b", 3, None))
    store.save_receipt(receipt_record("c", 2, 2))
    assert store.get_receipt("a") == receipt_record("a", 1, 1)
    assert store.get_receipt("z") is None
    assert [r.receipt_id for r in store.list_receipts(None, 10)] == ["b", "c", "a"]
    assert [r.receipt_id for r in store.list_receipts(1, 10)] == ["a"]
    assert [r.receipt_id for r in store.list_receipts(None, 1)] == ["b"]
    store.save_receipt(receipt_record("a", 9, 1))  # replaced
    assert store.get_receipt("a") == receipt_record("a", 9, 1)


def test_residue_finds_what_is_left_of_a_subject_part_by_part(store: Store) -> None:
    keys = [IdentityKey("email", "ada@example.com")]

    def residue(before_ms: int = 50) -> dict[str, int]:
        return store.erasure_residue(SCOPE, [SUBJECT], keys, [NEEDLE], before_ms)

    clean = dict.fromkeys(RESIDUE_PARTS, 0)
    assert residue() == clean
    _fill(store)
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, SUBJECT, keys)
        uow.identities.link(SCOPE, OTHER, keys)
    left = residue()
    assert left["profiles"] == 1
    # The subject's link; another profile's link of the identity counts only when that
    # profile was made before the erasure (OTHER was made at 1000).
    assert left["identity_links"] == 1
    assert residue(before_ms=5000)["identity_links"] == 2
    assert left["event_log"] == 2  # the subject's, and one of no profile naming them
    assert left["rejects"] == 1
    assert left["membership_log"] == 1
    assert left["audience_memberships"] == 2
    assert left["merge_ledger"] == 2
    assert left["dead_letters"] == 1
    # Received after the erasure: not theirs (a new profile with the same identities).
    assert residue(before_ms=0)["rejects"] == 0
    with store.unit_of_work() as uow:
        uow.identities.unlink(SCOPE, OTHER, keys)
    profile = store.get_profile(SUBJECT)
    assert profile is not None
    with store.unit_of_work() as uow:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [NEEDLE])
        uow.rejects.erase([NEEDLE])
        uow.ledger.erase([SUBJECT])
        uow.memberships.erase_log([SUBJECT])
        uow.outbox.erase([SUBJECT])
        # An erasure's own exits stay in the log and its removals in the outbox.
        uow.memberships.append(
            [
                MembershipChange(
                    audience_id=1, mpid=SUBJECT, entered=False, at_ms=60, reason=ERASED_EXIT
                )
            ]
        )
        uow.outbox.enqueue([_delivery(SUBJECT, 60)])
    assert residue() == clean
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


def _callback(request_id: str, status: str) -> Delivery:
    return Delivery(
        connection="opendsr-callbacks",
        kind="callback",
        workspace_id=1,
        created_ms=1,
        body=f'{{"request_id":"{request_id}","status":"{status}"}}'.encode(),
    )


def test_callbacks_are_queued_with_the_status_that_made_them(store: Store) -> None:
    """A status's callbacks go into the outbox in the transaction that stores it, and only
    when it is stored: in the order the statuses were stored."""
    assert store.insert_dsr(_request("r-1"), [_callback("r-1", "pending")]) == "created"
    refused = [_callback("r-1", "never")]
    assert store.insert_dsr(_request("r-1"), refused) == "duplicate"
    assert store.insert_dsr(_request("r-2"), refused) == "conflict"
    moved = _request("r-1", status=DsrStatus.IN_PROGRESS, version=2)
    assert store.update_dsr(moved, [_callback("r-1", "in_progress")])
    assert not store.update_dsr(moved, refused)  # from a version no longer stored
    done = _request("r-1", status=DsrStatus.COMPLETED, version=3)
    assert store.update_dsr(done, [_callback("r-1", "completed"), _callback("r-1", "again")])
    queued = store.pending_deliveries("opendsr-callbacks", 10)
    assert [json.loads(d.body)["status"] for d in queued] == [
        "pending",
        "in_progress",
        "completed",
        "again",
    ]
    assert all(d.kind == "callback" and d.mpid is None for d in queued)


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
