"""An erasure request completed in the erasure's own transaction: its completed callback,
made there, names the erasure messages that transaction queued as pending (not read from
the store, which has not seen them committed); the key signing it is loaded before the
transaction opens, even for a request taken up again after its process died; a request
another process took over meanwhile is left to it (`kindred dsr run --now`: a conflict)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import msgspec
import pytest

from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.domain.errors import Conflict
from kindred.domain.profile import Profile
from kindred.domain.tenancy import AccountPolicy, WorkspaceDef
from kindred.ports import Delivery, UnitOfWork
from kindred.services.forwarding.router import ERASURE_KIND, ErasureNote
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.callbacks import CALLBACK_CONNECTION, CallbackNote, StatusCallbacks
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.requests import DsrPolicy, DsrService
from kindred.services.privacy.signing import ProcessorKey, generate_bundle
from kindred.services.privacy.subjects import SubjectFinder
from kindred.storage.memory import MemoryStore
from kindred.wire.dsr import parse_request
from tests.fakes import FakeClock
from tests.unit.services.test_receipts import EMAIL, SUBJECT, _subject_in, _Watched

WORKSPACE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return generate_bundle("opendsr.test")


class _ErasureMessages(Transactions):
    """A forwarding step that queues an erasure message for an output "crm" per erased
    profile, as an output that accepts erasures is sent one."""

    def write_outbox(
        self,
        uow: UnitOfWork,
        erased: Mapping[int, Profile] | None = None,
        queued: list[Delivery] | None = None,
        *,
        erasure_id: str | None = None,
        erased_ms: int = 0,
    ) -> None:
        rows = [
            Delivery(
                connection="crm-erasures",
                kind=ERASURE_KIND,
                workspace_id=1,
                created_ms=erased_ms,
                body=msgspec.json.encode(
                    ErasureNote(
                        erasure_id=erasure_id or "",
                        output="crm",
                        mpid=mpid,
                        merged_mpids=[],
                        identities=[],
                        erased_ms=erased_ms,
                    )
                ),
                source=f"{erasure_id}:crm",
                mpid=mpid,
            )
            for mpid in erased or {}
        ]
        uow.outbox.enqueue(rows)
        if queued is not None:
            queued.extend(rows)


def _service(
    store: MemoryStore,
    transactions: Transactions,
    key: ProcessorKey,
    clock: FakeClock,
    *,
    receipts: bool = False,
) -> DsrService:
    """`receipts`: erasures get signed receipts (with the same key)."""
    subjects = SubjectFinder(store)
    service = DsrService(
        store,
        Erasure(subjects, transactions, clock),
        subjects,
        clock,
        DsrPolicy(),
        receipts=Receipts(store, key, clock, "opendsr.test") if receipts else None,
    )
    service.on_change(StatusCallbacks(key, clock, service.status_object))
    return service


def _create(service: DsrService) -> DsrRequest:
    body = msgspec.json.encode(
        {
            "regulation": "gdpr",
            "subject_request_id": "3c9e7a11-5b2d-4e8f-a1c3-7d6e5f4a3b2c",
            "subject_request_type": "erasure",
            "submitted_time": "2024-05-01T10:00:00Z",
            "subject_identities": {"email": {"value": EMAIL.value, "encoding": "raw"}},
            "status_callback_urls": ["https://a.example/cb"],
            "extensions": {"opendsr.mparticle.com": {"skip_waiting_period": True}},
        }
    )
    return service.create(WORKSPACE, "server", parse_request(body), body)


def _notes(store: MemoryStore) -> list[CallbackNote]:
    rows = store.pending_deliveries(CALLBACK_CONNECTION, 100)
    return [msgspec.json.decode(r.body, type=CallbackNote) for r in rows]


def test_the_completed_callback_names_the_erasure_messages_queued_with_it_pending(
    bundle: bytes,
) -> None:
    store = _subject_in(WORKSPACE.identity_scope)
    clock = FakeClock()
    key = ProcessorKey(lambda: bundle)
    service = _service(store, _ErasureMessages(store), key, clock, receipts=True)
    made = _create(service)
    service.run_due()
    done = service.get(1, made.request_id)
    assert done.status == DsrStatus.COMPLETED
    assert [m.output for m in done.erasure_messages] == ["crm"]
    completed = msgspec.json.decode(_notes(store)[-1].body)
    assert completed["request_status"] == "completed"
    extension = completed["extensions"]["opendsr.mparticle.com"]
    assert extension["erasure_messages"] == [
        {"output": "crm", "connection": "crm-erasures", "status": "pending"}
    ]
    # Read back once committed, the status says the same.
    status = service.status_object(done)
    assert (
        status["extensions"]["opendsr.mparticle.com"]["erasure_messages"]
        == (extension["erasure_messages"])
    )


def test_the_callbacks_key_is_loaded_before_the_erasures_transaction_of_a_request_taken_up_again(
    bundle: bytes,
) -> None:
    """Its process died in progress; this one has not signed anything yet (taking a request
    up again tells no new status). Loading the key may write to the store, which a store
    with one writer could not do inside the erasure's transaction."""
    store = _subject_in(WORKSPACE.identity_scope)
    clock = FakeClock()
    made = _create(_service(store, Transactions(store), ProcessorKey(lambda: bundle), clock))
    claimed = msgspec.structs.replace(
        made, status=DsrStatus.IN_PROGRESS, status_ms=clock.now_ms(), version=made.version + 1
    )
    assert store.update_dsr(claimed)
    clock.advance(DsrPolicy().stale_ms + 1)
    watched = _Watched(store)
    loaded_inside: list[bool] = []

    def load() -> bytes:
        loaded_inside.append(watched.open)
        return bundle

    service = _service(store, Transactions(watched), ProcessorKey(load), clock)
    report = service.run_due()
    assert report.completed == 1
    assert loaded_inside == [False]
    assert [n.status for n in _notes(store)] == ["pending", "completed"]


def test_run_now_of_a_request_taken_over_meanwhile_is_a_conflict_and_erases_nothing(
    bundle: bytes,
) -> None:
    store = _subject_in(WORKSPACE.identity_scope)
    clock = FakeClock()
    taken: list[DsrRequest] = []

    class _TakenOver:
        """Another process takes the request over as the erasure's transaction opens."""

        @contextmanager
        def unit_of_work(self) -> Iterator[UnitOfWork]:
            claimed = service.get(1, made.request_id)
            moved = msgspec.structs.replace(claimed, version=claimed.version + 1)
            assert store.update_dsr(moved)
            taken.append(moved)
            with store.unit_of_work() as uow:
                yield uow

    service = _service(store, Transactions(_TakenOver()), ProcessorKey(lambda: bundle), clock)
    made = _create(service)
    with pytest.raises(Conflict, match="taken over"):
        service.process(1, made.request_id)
    assert service.get(1, made.request_id) == taken[0]
    assert store.get_profile(SUBJECT) is not None
    assert store.list_receipts(None, 10) == []
