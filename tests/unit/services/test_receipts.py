"""Erasure receipts (BEY-6) and the processor key: a signature checks with the certificate
alone and fails on any change of the signed bytes or under another key; a receipt lists
every store part with the rows' ids and digests; a verification fails when the receipt was
altered, when it is not signed by this processor, and when something of the subject is
stored again; a receipt signed before a key rotation still verifies. Each status change of
a request queues its callbacks, signed, in the order of the statuses. A request's or a bulk
deletion's receipt is kept with its erasure, the key loaded before the erasure's
transaction; one that cannot be made is logged and the erasure completes without it."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest

from kindred.domain.apply import identity_keys
from kindred.domain.dsr import DsrStatus
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership
from kindred.domain.receipts import PART_NAMES, ErasureReceipt, row_digest
from kindred.domain.tenancy import AccountPolicy, Tenancy, WorkspaceDef
from kindred.ports import Store, UnitOfWork
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.bulk import BulkDeletion, IdentityName
from kindred.services.privacy.callbacks import CALLBACK_CONNECTION, CallbackNote, StatusCallbacks
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.requests import DsrPolicy, DsrService
from kindred.services.privacy.signing import (
    ProcessorKey,
    certificate_fingerprint,
    generate_bundle,
    split_certificates,
    verify_signature,
)
from kindred.services.privacy.subjects import SubjectFinder
from kindred.storage.memory import MemoryStore
from kindred.wire.dsr import parse_request
from tests.contract.samples import SCOPE, rich_profile
from tests.fakes import FakeClock

SUBJECT = 4242
EMAIL = IdentityKey("email", "ada-receipt@example.com")


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return generate_bundle("opendsr.test")


class _Kept:
    """A processor key kept in memory, rotated as the store keeps one."""

    def __init__(self, first: bytes) -> None:
        self.bundle = first
        self.retired = b""

    def rotate(self) -> None:
        self.retired += split_certificates(self.bundle)[0].encode()
        self.bundle = generate_bundle("opendsr.test")

    def key(self) -> ProcessorKey:
        return ProcessorKey(lambda: self.bundle, retired=lambda: self.retired, rotate=self.rotate)


def test_a_signature_checks_with_the_certificate_and_fails_when_anything_changes(
    bundle: bytes,
) -> None:
    key = ProcessorKey(lambda: bundle)
    body = b'{"request_status":"completed"}'
    signature = key.sign(body)
    assert verify_signature(key.certificate, body, signature)
    assert not verify_signature(key.certificate, body.replace(b"completed", b"pending"), signature)
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 1
    assert not verify_signature(key.certificate, body, base64.b64encode(bytes(raw)).decode())
    assert not verify_signature(key.certificate, body, "not base64!")
    other = ProcessorKey(lambda: generate_bundle("someone-else"))
    assert not verify_signature(other.certificate, body, signature)
    assert key.fingerprint == certificate_fingerprint(key.certificate)
    assert key.certificate.startswith("-----BEGIN CERTIFICATE-----")


def _store_with_subject() -> Store:
    store = MemoryStore()
    profile = rich_profile(SUBJECT)
    profile = msgspec.structs.replace(
        profile,
        memberships={3: Membership(audience_id=3, name="Gold", since_ms=5)},
    )
    with store.unit_of_work() as uow:
        uow.profiles.save(profile)
        uow.identities.link(SCOPE, SUBJECT, [*identity_keys(profile), EMAIL])
    return store


def _erase(store: Store, receipts: Receipts) -> str:
    maker = receipts.maker(
        origin="dsr", request_id="r-1", workspace_id=7, identities={"email": EMAIL.value}
    )
    erased = Erasure(SubjectFinder(store), Transactions(store), FakeClock(1_000_000)).erase(
        SCOPE, {EMAIL.type: EMAIL.value}, None, maker
    )
    assert erased.receipt_id is not None
    return erased.receipt_id


def test_a_receipt_lists_every_part_and_verifies(bundle: bytes) -> None:
    store = _store_with_subject()
    before = store.get_profile(SUBJECT)
    assert before is not None
    receipts = Receipts(store, ProcessorKey(lambda: bundle), FakeClock(1_000_001), "opendsr.test")
    receipt_id = _erase(store, receipts)
    receipt: ErasureReceipt = receipts.get(receipt_id).signed.receipt()
    assert [p.part for p in receipt.parts] == list(PART_NAMES)
    assert receipt.subject_mpids == [SUBJECT]
    profiles = receipt.part("profiles")
    assert profiles.ids == [str(SUBJECT)]
    assert profiles.digests == [row_digest("profiles", SUBJECT, msgspec.json.encode(before))]
    assert receipt.part("audience_memberships").ids == [f"3:{SUBJECT}"]
    assert receipt.part("identity_links").count == len(identity_keys(before))
    # No identity in the clear: only digests.
    assert EMAIL.value not in receipts.get(receipt_id).signed.payload
    checked = receipts.verify(receipt_id)
    assert checked.ok, checked.problems
    assert checked.signature_valid
    assert checked.certificate_trusted
    assert set(checked.residue.values()) == {0}


def test_an_altered_receipt_fails_verification(bundle: bytes) -> None:
    store = _store_with_subject()
    receipts = Receipts(store, ProcessorKey(lambda: bundle), FakeClock(1), "opendsr.test")
    record = receipts.get(_erase(store, receipts))
    tampered = record.signed.payload.replace(
        '"part":"profiles","count":1', '"part":"profiles","count":0'
    )
    assert tampered != record.signed.payload
    store.save_receipt(
        msgspec.structs.replace(
            record, signed=msgspec.structs.replace(record.signed, payload=tampered)
        )
    )
    checked = receipts.verify(record.receipt_id)
    assert not checked.ok
    assert not checked.signature_valid
    assert any("signature" in p for p in checked.problems)


def test_a_receipt_signed_by_another_key_is_not_trusted(bundle: bytes) -> None:
    store = _store_with_subject()
    stranger = Receipts(
        store, ProcessorKey(lambda: generate_bundle("x")), FakeClock(1), "opendsr.test"
    )
    receipt_id = _erase(store, stranger)
    ours = Receipts(store, ProcessorKey(lambda: bundle), FakeClock(1), "opendsr.test")
    checked = ours.verify(receipt_id)
    assert checked.signature_valid  # it is signed, by its own certificate...
    assert not checked.certificate_trusted  # ...which is not this processor's
    assert not checked.ok


def test_something_of_the_subject_stored_again_fails_verification(bundle: bytes) -> None:
    store = _store_with_subject()
    receipts = Receipts(store, ProcessorKey(lambda: bundle), FakeClock(1), "opendsr.test")
    receipt_id = _erase(store, receipts)
    assert receipts.verify(receipt_id).ok
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, SUBJECT, [EMAIL])
    checked = receipts.verify(receipt_id)
    assert not checked.ok
    assert checked.signature_valid
    assert checked.residue["identity_links"] >= 1
    assert any(p.startswith("identity_links") for p in checked.problems)


def test_a_receipt_signed_before_a_rotation_still_verifies(bundle: bytes) -> None:
    kept = _Kept(bundle)
    key = kept.key()
    store = _store_with_subject()
    receipts = Receipts(store, key, FakeClock(1), "opendsr.test")
    receipt_id = _erase(store, receipts)
    old = key.fingerprint
    assert key.rotate() != old
    assert set(key.trusted()) == {old, key.fingerprint}
    assert receipts.verify(receipt_id).ok


def _service(store: MemoryStore, key: ProcessorKey, clock: FakeClock) -> DsrService:
    subjects = SubjectFinder(store)
    service = DsrService(
        store,
        Erasure(subjects, Transactions(store), clock),
        subjects,
        clock,
        DsrPolicy(public_url="https://kindred.example.com"),
        receipts=Receipts(store, key, clock, "opendsr.test"),
    )
    service.on_change(StatusCallbacks(key, clock, service.status_object))
    return service


def test_each_status_change_queues_its_signed_callbacks_in_order(bundle: bytes) -> None:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.profiles.save(msgspec.structs.replace(rich_profile(SUBJECT), scope="a1"))
        uow.identities.link("a1", SUBJECT, [EMAIL])
    key = ProcessorKey(lambda: bundle)
    clock = FakeClock()
    service = _service(store, key, clock)
    workspace = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
    body = msgspec.json.encode(
        {
            "regulation": "gdpr",
            "subject_request_id": "0b0a6f35-3d5e-4b8e-9f2a-2f5c1f8e2a11",
            "subject_request_type": "erasure",
            "submitted_time": "2024-05-01T10:00:00Z",
            "subject_identities": {"email": {"value": EMAIL.value, "encoding": "raw"}},
            "status_callback_urls": ["https://a.example/cb", "http://b.example/cb"],
            "extensions": {"opendsr.mparticle.com": {"skip_waiting_period": True}},
        }
    )
    made = service.create(workspace, "server", parse_request(body), body)
    service.run_due()
    rows = store.pending_deliveries(CALLBACK_CONNECTION, 100)
    notes = [msgspec.json.decode(r.body, type=CallbackNote) for r in rows]
    assert [(n.status, n.url) for n in notes] == [
        (status, url)
        for status in ("pending", "in_progress", "completed")
        for url in ("https://a.example/cb", "http://b.example/cb")
    ]
    for note in notes:
        assert verify_signature(key.certificate, note.body.encode(), note.signature)
        assert msgspec.json.decode(note.body)["subject_request_id"] == made.request_id
    done = msgspec.json.decode(notes[-1].body)
    extension = done["extensions"]["opendsr.mparticle.com"]
    assert extension["receipt_url"] == (
        f"https://kindred.example.com/v3/requests/{made.request_id}/receipt"
    )
    assert service.receipt(1, made.request_id).receipt_id == extension["receipt_id"]
    assert service.receipts is not None
    assert service.receipts.verify(extension["receipt_id"]).ok


def _subject_in(scope: str) -> MemoryStore:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.profiles.save(msgspec.structs.replace(rich_profile(SUBJECT), scope=scope))
        uow.identities.link(scope, SUBJECT, [EMAIL])
    return store


def _erasure_request(service: DsrService) -> str:
    workspace = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
    body = msgspec.json.encode(
        {
            "regulation": "gdpr",
            "subject_request_id": "5d7c1a52-0a43-4d3f-8f7e-0c1d2e3f4a5b",
            "subject_request_type": "erasure",
            "submitted_time": "2024-05-01T10:00:00Z",
            "subject_identities": {"email": {"value": EMAIL.value, "encoding": "raw"}},
            "extensions": {"opendsr.mparticle.com": {"skip_waiting_period": True}},
        }
    )
    return service.create(workspace, "server", parse_request(body), body).request_id


class _Watched:
    """The store's units of work, telling whether one is open."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.open = False

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._store.unit_of_work() as uow:
            self.open = True
            try:
                yield uow
            finally:
                self.open = False


def test_the_key_is_loaded_before_the_erasures_transaction_opens(bundle: bytes) -> None:
    """Loading may write to the store (the key is made on first use), which a store with
    one writer could not do inside the erasure's transaction."""
    store = _subject_in("a1")
    watched = _Watched(store)
    loaded_inside: list[bool] = []

    def load() -> bytes:
        loaded_inside.append(watched.open)
        return bundle

    clock = FakeClock()
    subjects = SubjectFinder(store)
    service = DsrService(
        store,
        Erasure(subjects, Transactions(watched), clock),
        subjects,
        clock,
        receipts=Receipts(store, ProcessorKey(load), clock, "opendsr.test"),
    )
    request_id = _erasure_request(service)
    service.run_due()
    done = service.get(1, request_id)
    assert done.receipt_id is not None
    assert service.receipt(1, request_id).receipt_id == done.receipt_id
    assert loaded_inside == [False]


def test_a_request_whose_receipt_cannot_be_made_completes_without_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _subject_in("a1")
    clock = FakeClock()
    subjects = SubjectFinder(store)
    unreadable = ProcessorKey(lambda: b"not a key", where="a test")
    service = DsrService(
        store,
        Erasure(subjects, Transactions(store), clock),
        subjects,
        clock,
        receipts=Receipts(store, unreadable, clock, "opendsr.test"),
    )
    request_id = _erasure_request(service)
    with caplog.at_level(logging.ERROR, logger="kindred.privacy"):
        service.run_due()
    done = service.get(1, request_id)
    assert done.status == DsrStatus.COMPLETED
    assert done.receipt_id is None
    assert done.summary is not None
    assert done.summary.profiles == 1
    assert store.get_profile(SUBJECT) is None  # erased all the same
    assert store.list_receipts(None, 10) == []
    assert any("no receipt for the erasure" in r.getMessage() for r in caplog.records)


def test_bulk_deletion_keeps_a_receipt_per_profile_found_with_its_erasure(bundle: bytes) -> None:
    workspace = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
    store = _subject_in(workspace.identity_scope)
    clock = FakeClock()
    receipts = Receipts(store, ProcessorKey(lambda: bundle), clock, "opendsr.test")
    bulk = BulkDeletion(
        Erasure(SubjectFinder(store), Transactions(store), clock),
        store,
        Tenancy(org_id=1, workspaces={1: workspace}, inputs_by_key={}, inputs_by_name={}),
        receipts=receipts,
    )
    found, unknown = bulk.by_identities(
        1, [IdentityName(type="email", value=EMAIL.value), IdentityName(type="email", value="x@y")]
    )
    assert found.found
    assert found.receipt_id is not None
    assert not unknown.found
    assert unknown.receipt_id is None
    assert [r.receipt_id for r in store.list_receipts(None, 10)] == [found.receipt_id]
    kept = receipts.get(found.receipt_id)
    assert kept.signed.receipt().origin == "bulk"
    assert kept.identities == {"email": EMAIL.value}
    assert receipts.verify(found.receipt_id).ok


def test_a_bulk_deletion_with_an_unreadable_key_erases_all_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        for mpid in (11, 12, 13):
            uow.profiles.save(msgspec.structs.replace(rich_profile(mpid), scope="a1"))
    clock = FakeClock()
    unreadable = ProcessorKey(lambda: b"not a key", where="a test")
    bulk = BulkDeletion(
        Erasure(SubjectFinder(store), Transactions(store), clock),
        store,
        Tenancy(org_id=1, workspaces={}, inputs_by_key={}, inputs_by_name={}),
        receipts=Receipts(store, unreadable, clock, "opendsr.test"),
    )
    with caplog.at_level(logging.ERROR, logger="kindred.privacy"):
        deleted = bulk.by_mpids([11, 12, 13])
    assert [(d.found, d.receipt_id) for d in deleted] == [(True, None)] * 3
    assert [store.get_profile(m) for m in (11, 12, 13)] == [None] * 3
    said = [
        r.getMessage() for r in caplog.records if "processor key is unreadable" in r.getMessage()
    ]
    assert said == [
        "no receipt for the erasure of a bulk deletion: the processor key is unreadable"
    ]
