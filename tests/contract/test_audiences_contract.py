"""The store contract for audience definitions and the membership log, on every store."""

from __future__ import annotations

import msgspec
import pytest

from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.ports import MembershipCounts, Store

__all__: list[str] = []


def definition(name: str = "Gold") -> AudienceDef:
    return AudienceDef(
        name=name,
        workspaces=[1, 2],
        criteria={"attribute": "tier", "op": "equals", "value": "gold"},
        tags=["vip"],
        created_ms=5,
    )


def test_audiences_get_ids_and_are_replaced_by_id(store: Store) -> None:
    first = store.save_audience(definition())
    second = store.save_audience(definition("Silver"))
    assert first.id > 0
    assert second.id > first.id
    assert store.list_audiences() == [first, second]
    active = msgspec.structs.replace(first, status="active", name="Gold!")
    store.save_audience(active)
    assert store.list_audiences() == [active, second]


def test_the_membership_log_answers_by_audience_profile_and_time(store: Store) -> None:
    changes = [
        MembershipChange(audience_id=1, mpid=10, entered=True, at_ms=100, reason="attr:tier"),
        MembershipChange(audience_id=2, mpid=10, entered=True, at_ms=150, reason="x"),
        MembershipChange(audience_id=1, mpid=20, entered=True, at_ms=200, reason="x"),
        MembershipChange(audience_id=1, mpid=10, entered=False, at_ms=300, reason="attr:tier"),
    ]
    with store.unit_of_work() as uow:
        uow.append_memberships(changes[:2])
    with store.unit_of_work() as uow:
        uow.append_memberships(changes[2:])
    by_audience = store.membership_log(audience_id=1, mpid=None, until_ms=250, limit=10)
    assert [(c.mpid, c.entered, c.at_ms) for c in by_audience] == [(10, True, 100), (20, True, 200)]
    by_profile = store.membership_log(audience_id=None, mpid=10, until_ms=1_000, limit=10)
    assert [(c.audience_id, c.entered) for c in by_profile] == [(1, True), (2, True), (1, False)]
    assert all(c.id is not None for c in by_profile)
    assert by_profile[2].reason == "attr:tier"
    assert store.membership_log(audience_id=1, mpid=10, until_ms=1_000, limit=1)[0].at_ms == 100


def test_a_rolled_back_transaction_logs_nothing(store: Store) -> None:
    change = MembershipChange(audience_id=1, mpid=1, entered=True, at_ms=1, reason="x")

    def fail() -> None:
        with store.unit_of_work() as uow:
            uow.append_memberships([change])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert store.membership_log(audience_id=1, mpid=None, until_ms=10, limit=10) == []


def test_membership_counts_add_up_enters_and_exits(store: Store) -> None:
    assert store.membership_counts(1, 0) == MembershipCounts()
    with store.unit_of_work() as uow:
        uow.append_memberships(
            [
                MembershipChange(audience_id=1, mpid=1, entered=True, at_ms=100, reason="x"),
                MembershipChange(audience_id=1, mpid=2, entered=True, at_ms=200, reason="x"),
                MembershipChange(audience_id=1, mpid=1, entered=False, at_ms=300, reason="x"),
                MembershipChange(audience_id=2, mpid=1, entered=True, at_ms=400, reason="x"),
            ]
        )
    assert store.membership_counts(1, 150) == MembershipCounts(
        entered=2, exited=1, entered_since=1, exited_since=1, last_change_ms=300
    )
