"""A data subject request stored through the unit of work (`uow.dsr.update`, from the
version read, its callbacks written only when it is replaced) commits with the rest of the
transaction or not at all, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest

from kindred.domain.apply import identity_keys
from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.tenancy import AccountPolicy, WorkspaceDef
from kindred.ports import Delivery, Store, UnitOfWork
from kindred.services.privacy.callbacks import CALLBACK_CONNECTION
from tests.contract.samples import (
    SCOPE,
    assert_waits,
    log_entry,
    receipt_record,
    rich_profile,
    run,
    save,
)

SUBJECT = 2**62 + 31
EMAIL = IdentityKey("email", "ada-completion@example.com")
WORKSPACE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
CALLBACK_URL = "https://a.example/cb"


class _Died(Exception):
    """The process stopped after the transaction's last step, before COMMIT."""


def _with_subject(store: Store, scope: str = SCOPE) -> Profile:
    profile = msgspec.structs.replace(rich_profile(SUBJECT), scope=scope)
    save(store, profile)
    with store.unit_of_work() as uow:
        uow.identities.link(scope, SUBJECT, [*identity_keys(profile), EMAIL])
        uow.log.append(log_entry(SUBJECT, 10))
    return profile


def _request(status: str, version: int, **changes: object) -> DsrRequest:
    request = DsrRequest(
        workspace_id=1,
        request_id="r-1",
        input="server",
        scope=SCOPE,
        regulation="gdpr",
        request_type="erasure",
        identities={EMAIL.type: EMAIL.value},
        mpid=None,
        submitted_ms=1,
        received_ms=1,
        due_ms=1,
        status_ms=1,
        status=status,
        version=version,
    )
    return msgspec.structs.replace(request, **changes)


def _callback(status: str) -> Delivery:
    return Delivery(
        connection=CALLBACK_CONNECTION,
        kind="callback",
        workspace_id=1,
        created_ms=1,
        body=f'{{"request_id":"r-1","status":"{status}"}}'.encode(),
    )


def _callback_statuses(store: Store) -> list[str]:
    rows = store.pending_deliveries(CALLBACK_CONNECTION, 100)
    return [json.loads(r.body)["status"] for r in rows]


# --- the part: uow.dsr.update ------------------------------------------------------------


def _claimed(store: Store) -> DsrRequest:
    assert store.insert_dsr(_request(DsrStatus.PENDING, 1)) == "created"
    claimed = _request(DsrStatus.IN_PROGRESS, 2)
    assert store.update_dsr(claimed)
    return claimed


def test_a_request_completed_in_a_unit_of_work_commits_with_the_erasure(store: Store) -> None:
    profile = _with_subject(store)
    _claimed(store)
    done = _request(DsrStatus.COMPLETED, 3, receipt_id="kept")
    with store.unit_of_work() as uow:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [])
        uow.receipts.save(receipt_record("kept"))
        assert uow.dsr.update(done, [_callback("completed"), _callback("again")])
    assert store.get_profile(SUBJECT) is None
    assert store.log_for_profile(SUBJECT, 10) == []
    assert store.get_receipt("kept") == receipt_record("kept")
    assert store.get_dsr(1, "r-1") == done
    assert _callback_statuses(store) == ["completed", "again"]


def test_a_request_completed_in_a_unit_of_work_is_rolled_back_with_the_erasure(
    store: Store,
) -> None:
    profile = _with_subject(store)
    claimed = _claimed(store)

    def erase_complete_then_die(uow: UnitOfWork) -> None:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [])
        uow.receipts.save(receipt_record("lost"))
        assert uow.dsr.update(_request(DsrStatus.COMPLETED, 3), [_callback("completed")])
        raise _Died

    with pytest.raises(_Died):
        run(store, erase_complete_then_die)
    assert store.get_profile(SUBJECT) is not None
    assert len(store.log_for_profile(SUBJECT, 10)) == 1
    assert store.get_receipt("lost") is None
    assert store.get_dsr(1, "r-1") == claimed
    assert _callback_statuses(store) == []


def test_a_request_moved_on_is_not_replaced_in_a_unit_of_work(store: Store) -> None:
    """Another process took it over (version 3): the update from version 2 is refused, its
    callbacks are not written, and the transaction's other writes are the caller's to
    keep or roll back."""
    _claimed(store)
    taken = _request(DsrStatus.IN_PROGRESS, 3, status_ms=9)
    assert store.update_dsr(taken)
    with store.unit_of_work() as uow:
        assert not uow.dsr.update(_request(DsrStatus.COMPLETED, 3), [_callback("never")])
        assert not uow.dsr.update(_request(DsrStatus.COMPLETED, 5), [_callback("never")])
        assert not uow.dsr.update(
            _request(DsrStatus.COMPLETED, 4, request_id="r-9"), [_callback("never")]
        )
    assert store.get_dsr(1, "r-1") == taken
    assert _callback_statuses(store) == []


def test_a_request_completed_in_a_unit_of_work_is_held_until_it_commits(
    store: Store, other_thread: ThreadPoolExecutor
) -> None:
    """A process taking the request up again meanwhile (from the version it read) waits for
    the transaction, then finds the request moved on: one of the two completes it."""
    _claimed(store)
    done = _request(DsrStatus.COMPLETED, 3)
    with store.unit_of_work() as uow:
        assert uow.dsr.update(done)
        retaken = other_thread.submit(
            store.update_dsr, _request(DsrStatus.IN_PROGRESS, 3, status_ms=9)
        )
        assert_waits(retaken)
    assert not retaken.result(timeout=30)
    assert store.get_dsr(1, "r-1") == done
