"""An erasure and its signed receipt commit together or not at all (BEY-6), on memory,
SQLite and PostgreSQL: the receipt is kept through the erasure's own unit of work
(`uow.receipts`), after the forwarding step; a transaction that fails after the receipt is
written keeps neither the erasure nor the receipt, and a retried one keeps one receipt."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from kindred.domain.apply import identity_keys
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.receipts import OutputRemoval, ReceiptRecord
from kindred.ports import ConcurrentUpdate, Delivery, Store, UnitOfWork
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.erasure import Erased, Erasure, ReceiptMaker
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.signing import ProcessorKey, generate_bundle
from kindred.services.privacy.subjects import SubjectFinder
from tests.contract.samples import SCOPE, log_entry, receipt_record, rich_profile, run, save
from tests.fakes import FakeClock

SUBJECT = 2**62 + 21
EMAIL = IdentityKey("email", "ada-receipt@example.com")


class _Died(Exception):
    """The process stopped after the transaction's last step, before COMMIT."""


class _FailingBeforeCommit:
    """The store's units of work, the next `failures` of which raise `error` once
    everything in them has run (the erasure, its forwarding step, its receipt), before
    they commit."""

    def __init__(self, store: Store, error: type[Exception], failures: int = 1) -> None:
        self._store = store
        self._error = error
        self.failures = failures

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._store.unit_of_work() as uow:
            yield uow
            if self.failures:
                self.failures -= 1
                raise self._error("failed before commit")


class _Forwarding(Transactions):
    """A forwarding step that queues one row for a connection "crm" per erased profile (as
    an audience output's removal would), so that the receipt has outputs to list."""

    def write_outbox(
        self,
        uow: UnitOfWork,
        erased: Mapping[int, Profile] | None = None,
        queued: list[Delivery] | None = None,
        *,
        erasure_id: str | None = None,
        erased_ms: int = 0,
    ) -> None:
        del erasure_id  # no output here accepts erasure messages
        rows = [
            Delivery(connection="crm", kind="batch", workspace_id=1, created_ms=erased_ms, body=b"")
            for _ in erased or {}
        ]
        uow.outbox.enqueue(rows)
        if queued is not None:
            queued.extend(rows)


@pytest.fixture(scope="module")
def receipts_key() -> ProcessorKey:
    bundle = generate_bundle("opendsr.test")
    return ProcessorKey(lambda: bundle)


def _with_subject(store: Store) -> Profile:
    profile = rich_profile(SUBJECT)
    save(store, profile)
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, SUBJECT, [*identity_keys(profile), EMAIL])
        uow.log.append(log_entry(SUBJECT, 10))
    return profile


def test_a_receipt_kept_in_a_unit_of_work_commits_with_the_erasure(store: Store) -> None:
    profile = _with_subject(store)
    with store.unit_of_work() as uow:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [])
        uow.receipts.save(receipt_record("kept"))
    assert store.get_profile(SUBJECT) is None
    assert store.log_for_profile(SUBJECT, 10) == []
    assert store.get_receipt("kept") == receipt_record("kept")
    assert [r.receipt_id for r in store.list_receipts(1, 10)] == ["kept"]


def test_a_receipt_kept_in_a_unit_of_work_is_rolled_back_with_the_erasure(store: Store) -> None:
    profile = _with_subject(store)

    def erase_then_die(uow: UnitOfWork) -> None:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [])
        uow.receipts.save(receipt_record("lost"))
        raise _Died

    with pytest.raises(_Died):
        run(store, erase_then_die)
    assert store.get_profile(SUBJECT) is not None
    assert len(store.log_for_profile(SUBJECT, 10)) == 1
    assert store.get_receipt("lost") is None
    assert store.list_receipts(None, 10) == []


def _erasure(store: Store, transactions: Transactions) -> Erasure:
    return Erasure(SubjectFinder(store), transactions, FakeClock(1_000_000))


def _maker(receipts: Receipts, made: list[str]) -> ReceiptMaker:
    """The receipts' maker, noting each receipt it makes."""
    sign = receipts.maker(origin="dsr", request_id="r-1", workspace_id=1)
    assert sign is not None

    def make(erased: Erased) -> ReceiptRecord | None:
        record = sign(erased)
        assert record is not None
        made.append(record.receipt_id)
        return record

    return make


def test_an_erasure_commits_with_its_receipt_which_lists_the_forwarded_removals(
    store: Store, receipts_key: ProcessorKey
) -> None:
    _with_subject(store)
    receipts = Receipts(store, receipts_key, FakeClock(1_000_001), "opendsr.test")
    made: list[str] = []
    erased = _erasure(store, _Forwarding(store)).erase(
        SCOPE, {EMAIL.type: EMAIL.value}, None, _maker(receipts, made)
    )
    assert erased.receipt_id is not None
    assert made == [erased.receipt_id]
    assert store.get_profile(SUBJECT) is None
    kept = receipts.get(erased.receipt_id)
    assert [r.receipt_id for r in store.list_receipts(None, 10)] == [erased.receipt_id]
    receipt = kept.signed.receipt()
    assert receipt.subject_mpids == [SUBJECT]
    # Made after the forwarding step: the rows it queued are listed.
    assert receipt.outputs == [OutputRemoval(connection="crm", kind="removal", rows=1)]
    assert receipts.verify(erased.receipt_id).ok


def test_an_erasure_failing_after_its_receipt_is_written_keeps_neither(
    store: Store, receipts_key: ProcessorKey
) -> None:
    profile = _with_subject(store)
    receipts = Receipts(store, receipts_key, FakeClock(1_000_001), "opendsr.test")
    made: list[str] = []
    failing = _FailingBeforeCommit(store, _Died)
    with pytest.raises(_Died):
        _erasure(store, _Forwarding(failing)).erase(
            SCOPE, {EMAIL.type: EMAIL.value}, None, _maker(receipts, made)
        )
    assert len(made) == 1  # the receipt was made and written in the transaction...
    assert store.get_receipt(made[0]) is None  # ...which rolled back with it
    assert store.list_receipts(None, 10) == []
    assert store.get_profile(SUBJECT) == profile
    assert store.find_profiles(SCOPE, EMAIL) == [SUBJECT]
    assert len(store.log_for_profile(SUBJECT, 10)) == 1
    assert store.pending_deliveries("crm", 10) == []


def test_an_erasure_retried_after_a_lost_race_keeps_one_receipt(
    store: Store, receipts_key: ProcessorKey
) -> None:
    """The first attempt's receipt goes with its transaction; the retry signs its own."""
    _with_subject(store)
    receipts = Receipts(store, receipts_key, FakeClock(1_000_001), "opendsr.test")
    made: list[str] = []
    racing = _FailingBeforeCommit(store, ConcurrentUpdate)
    erased = _erasure(store, _Forwarding(racing)).erase(
        SCOPE, {EMAIL.type: EMAIL.value}, None, _maker(receipts, made)
    )
    assert len(made) == 2
    assert erased.receipt_id == made[1]
    assert [r.receipt_id for r in store.list_receipts(None, 10)] == [made[1]]
    assert store.get_profile(SUBJECT) is None
    assert len(store.pending_deliveries("crm", 10)) == 1
