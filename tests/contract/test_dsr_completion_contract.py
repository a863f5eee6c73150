"""An erasure request's completed status is stored in the erasure's own transaction (RET-3,
BEY-6), on memory, SQLite and PostgreSQL: through the unit of work (`uow.dsr.update`, from
the version read, its callbacks written only when it is replaced), the request commits
completed with the erasure and its receipt, or is rolled back with them; a request another
process moved on meanwhile rolls the erasure back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import msgspec
import pytest

from kindred.domain.apply import identity_keys
from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.tenancy import AccountPolicy, WorkspaceDef
from kindred.ports import ConcurrentUpdate, Delivery, Store, UnitOfWork
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.callbacks import CALLBACK_CONNECTION, CallbackNote, StatusCallbacks
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.requests import DsrService
from kindred.services.privacy.signing import ProcessorKey, generate_bundle
from kindred.services.privacy.subjects import SubjectFinder
from kindred.wire.dsr import parse_request
from tests.contract.samples import (
    SCOPE,
    assert_waits,
    log_entry,
    receipt_record,
    rich_profile,
    run,
    save,
)
from tests.fakes import FakeClock

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


# --- the service: an erasure request processed -------------------------------------------


@pytest.fixture(scope="module")
def processor_key() -> ProcessorKey:
    bundle = generate_bundle("opendsr.test")
    return ProcessorKey(lambda: bundle)


class _Units:
    """The store's units of work (the erasure's: the service writes nothing else through
    them), with a hook before each opens, one once it is open, one after everything in it
    has run (the erasure, its forwarding step, its receipt, its last step) before it
    commits, and one after it commits."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.before_open: Callable[[], None] = lambda: None
        self.opened: Callable[[UnitOfWork], None] = lambda _uow: None
        self.before_commit: Callable[[], None] = lambda: None
        self.after_commit: Callable[[], None] = lambda: None

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        self.before_open()
        with self._store.unit_of_work() as uow:
            self.opened(uow)
            yield uow
            self.before_commit()
        self.after_commit()


def _service(store: Store, units: _Units, key: ProcessorKey) -> DsrService:
    clock = FakeClock(1_000_000)
    subjects = SubjectFinder(store)
    service = DsrService(
        store,
        Erasure(subjects, Transactions(units), clock),
        subjects,
        clock,
        receipts=Receipts(store, key, clock, "opendsr.test"),
    )
    service.on_change(StatusCallbacks(key, clock, service.status_object))
    return service


def _created(service: DsrService) -> DsrRequest:
    body = msgspec.json.encode(
        {
            "regulation": "gdpr",
            "subject_request_id": "7e2b9c4d-1f3a-4b5c-8d6e-9f0a1b2c3d4e",
            "subject_request_type": "erasure",
            "submitted_time": "2024-05-01T10:00:00Z",
            "subject_identities": {"email": {"value": EMAIL.value, "encoding": "raw"}},
            "status_callback_urls": [CALLBACK_URL],
            "extensions": {"opendsr.mparticle.com": {"skip_waiting_period": True}},
        }
    )
    return service.create(WORKSPACE, "server", parse_request(body), body)


def _notes(store: Store) -> list[CallbackNote]:
    rows = store.pending_deliveries(CALLBACK_CONNECTION, 100)
    return [msgspec.json.decode(r.body, type=CallbackNote) for r in rows]


def test_an_erasure_request_is_completed_by_the_erasures_own_commit(
    store: Store, processor_key: ProcessorKey
) -> None:
    """As the erasure's transaction commits, and before anything else is written, the
    request is stored completed, naming the receipt committed with it, its completed
    callback queued: no later write completes it (none could be lost)."""
    _with_subject(store, WORKSPACE.identity_scope)
    units = _Units(store)
    service = _service(store, units, processor_key)
    made = _created(service)
    seen: list[tuple[DsrRequest | None, list[str], list[str]]] = []
    units.after_commit = lambda: seen.append(
        (
            store.get_dsr(1, made.request_id),
            [r.receipt_id for r in store.list_receipts(None, 10)],
            [n.status for n in _notes(store)],
        )
    )
    report = service.run_due()
    assert (report.completed, report.failed) == (1, 0)
    assert len(seen) == 1  # one transaction: the erasure's
    stored, receipts, callbacks = seen[0]
    assert stored is not None
    assert stored.status == DsrStatus.COMPLETED
    assert stored.receipt_id is not None
    assert receipts == [stored.receipt_id]
    assert stored.summary is not None
    assert stored.summary.profiles == 1
    assert callbacks == ["pending", "in_progress", "completed"]
    # Nothing after it: the request as that commit left it.
    assert service.get(1, made.request_id) == stored
    assert [n.status for n in _notes(store)] == callbacks
    assert store.get_profile(SUBJECT) is None
    completed = msgspec.json.decode(_notes(store)[-1].body)
    assert completed["request_status"] == "completed"


def test_an_erasure_request_failing_after_its_completion_is_written_keeps_none_of_it(
    store: Store, processor_key: ProcessorKey
) -> None:
    """The erasure's transaction stored the request completed, then failed before COMMIT:
    neither the erasure, its receipt nor the completion is kept; the request is failed."""
    profile = _with_subject(store, WORKSPACE.identity_scope)
    units = _Units(store)
    service = _service(store, units, processor_key)
    made = _created(service)
    completions: list[bool] = []

    def noting_completions(uow: UnitOfWork) -> None:
        update = uow.dsr.update

        def noted(request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
            completions.append(update(request, callbacks))
            return completions[-1]

        uow.dsr.update = noted  # type: ignore[method-assign]  # a spy in its place

    def die() -> None:
        raise _Died("failed before commit")

    units.opened = noting_completions
    units.before_commit = die
    report = service.run_due()
    assert completions == [True]  # written in the transaction...
    assert (report.completed, report.failed) == (0, 1)  # ...which rolled back with it
    stored = service.get(1, made.request_id)
    assert stored.status == DsrStatus.FAILED
    assert stored.receipt_id is None
    assert stored.failure == "_Died: failed before commit"
    assert store.list_receipts(None, 10) == []
    assert store.get_profile(SUBJECT) == profile
    assert store.find_profiles(WORKSPACE.identity_scope, EMAIL) == [SUBJECT]
    assert [n.status for n in _notes(store)] == ["pending", "in_progress", "failed"]


def test_an_erasure_request_taken_over_meanwhile_rolls_the_erasure_back(
    store: Store, processor_key: ProcessorKey
) -> None:
    """Between this process's claim and its erasure's commit another process took the
    request over (its version moved on): the erasure, its receipt and the completion are
    rolled back, and the request is left as that process stored it, for it to do."""
    profile = _with_subject(store, WORKSPACE.identity_scope)
    units = _Units(store)
    service = _service(store, units, processor_key)
    made = _created(service)
    taken: list[DsrRequest] = []

    def take_over() -> None:
        claimed = service.get(1, made.request_id)
        assert claimed.status == DsrStatus.IN_PROGRESS
        moved = msgspec.structs.replace(claimed, status_ms=2_000_000, version=claimed.version + 1)
        assert store.update_dsr(moved)
        taken.append(moved)

    units.before_open = take_over
    report = service.run_due()
    assert (report.completed, report.failed) == (0, 0)
    assert service.get(1, made.request_id) == taken[0]
    assert store.list_receipts(None, 10) == []
    assert store.get_profile(SUBJECT) == profile
    assert store.find_profiles(WORKSPACE.identity_scope, EMAIL) == [SUBJECT]
    assert [n.status for n in _notes(store)] == ["pending", "in_progress"]


def test_an_erasure_request_retried_after_a_lost_race_completes_once(
    store: Store, processor_key: ProcessorKey
) -> None:
    """The first attempt's completion goes with its transaction; the retry stores its own,
    naming its own receipt, with one completed callback."""
    _with_subject(store, WORKSPACE.identity_scope)
    units = _Units(store)
    service = _service(store, units, processor_key)
    made = _created(service)
    races = [ConcurrentUpdate("a profile changed since this transaction read it")]

    def lose_once() -> None:
        if races:
            raise races.pop()

    units.before_commit = lose_once
    report = service.run_due()
    assert (report.completed, report.failed) == (1, 0)
    stored = service.get(1, made.request_id)
    assert stored.status == DsrStatus.COMPLETED
    assert [r.receipt_id for r in store.list_receipts(None, 10)] == [stored.receipt_id]
    assert [n.status for n in _notes(store)] == ["pending", "in_progress", "completed"]
    assert store.get_profile(SUBJECT) is None
