"""An erasure's receipt kept through the unit of work (`uow.receipts`) commits with the
rest of the transaction or not at all, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from kindred.domain.apply import identity_keys
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.receipts import ReceiptRecord, SignedReceipt
from kindred.ports import Store, UnitOfWork
from tests.contract.samples import SCOPE, log_entry, rich_profile, run, save

SUBJECT = 2**62 + 21
EMAIL = IdentityKey("email", "ada-receipt@example.com")


class _Died(Exception):
    """The process stopped after the transaction's last step, before COMMIT."""


def _with_subject(store: Store) -> Profile:
    profile = rich_profile(SUBJECT)
    save(store, profile)
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, SUBJECT, [*identity_keys(profile), EMAIL])
        uow.log.append(log_entry(SUBJECT, 10))
    return profile


def _record(receipt_id: str) -> ReceiptRecord:
    signed = SignedReceipt(
        payload=f'{{"receipt_id":"{receipt_id}"}}',
        signature="c2ln",
        certificate="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        certificate_sha256="ab" * 32,
    )
    return ReceiptRecord(
        receipt_id=receipt_id,
        request_id="r-1",
        workspace_id=1,
        made_ms=5,
        signed=signed,
        identities={EMAIL.type: EMAIL.value},
    )


def test_a_receipt_kept_in_a_unit_of_work_commits_with_the_erasure(store: Store) -> None:
    profile = _with_subject(store)
    with store.unit_of_work() as uow:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [])
        uow.receipts.save(_record("kept"))
    assert store.get_profile(SUBJECT) is None
    assert store.log_for_profile(SUBJECT, 10) == []
    assert store.get_receipt("kept") == _record("kept")
    assert [r.receipt_id for r in store.list_receipts(1, 10)] == ["kept"]


def test_a_receipt_kept_in_a_unit_of_work_is_rolled_back_with_the_erasure(store: Store) -> None:
    profile = _with_subject(store)

    def erase_then_die(uow: UnitOfWork) -> None:
        uow.profiles.delete(profile)
        uow.log.erase([SUBJECT], [])
        uow.receipts.save(_record("lost"))
        raise _Died

    with pytest.raises(_Died):
        run(store, erase_then_die)
    assert store.get_profile(SUBJECT) is not None
    assert len(store.log_for_profile(SUBJECT, 10)) == 1
    assert store.get_receipt("lost") is None
    assert store.list_receipts(None, 10) == []
