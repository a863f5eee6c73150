"""The store contract for audience definitions and the membership log, on every store."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from kindred.audiences.definition import AudienceDef, MembershipChange, Selection
from kindred.audiences.parse import Catalog, parse_criteria
from kindred.domain.profile import AttributeEntry, Membership, Profile, WorkspaceProfile
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
        uow.memberships.append(changes[:2])
    with store.unit_of_work() as uow:
        uow.memberships.append(changes[2:])
    by_audience = store.membership_log(audience_id=1, mpid=None, until_ms=250, limit=10)
    assert [(c.mpid, c.entered, c.at_ms) for c in by_audience] == [(10, True, 100), (20, True, 200)]
    by_profile = store.membership_log(audience_id=None, mpid=10, until_ms=1_000, limit=10)
    assert [(c.audience_id, c.entered) for c in by_profile] == [(1, True), (2, True), (1, False)]
    assert all(c.id is not None for c in by_profile)
    assert by_profile[2].reason == "attr:tier"
    assert store.membership_log(audience_id=1, mpid=10, until_ms=1_000, limit=1)[0].at_ms == 100


def test_the_log_keeps_long_runs_of_changes_in_order(store: Store) -> None:
    """Runs of changes that differ only by profile (a backfill page) among single ones:
    every row, in the order appended, MPIDs at the ends of their range included."""
    run = [-(2**63), *range(40, 0, -1), 2**63 - 1]
    changes = [
        MembershipChange(audience_id=4, mpid=7, entered=False, at_ms=90, reason="attr:tier"),
        *(MembershipChange(audience_id=3, mpid=m, entered=True, at_ms=100, reason="backfill")
          for m in run),
        MembershipChange(audience_id=3, mpid=5, entered=False, at_ms=100, reason="backfill"),
        *(MembershipChange(audience_id=3, mpid=m, entered=False, at_ms=100, reason="backfill")
          for m in range(100, 120)),
        MembershipChange(audience_id=3, mpid=5, entered=True, at_ms=100, reason="x"),
    ]  # fmt: skip
    with store.unit_of_work() as uow:
        uow.memberships.append(changes)
    log = store.membership_log(audience_id=None, mpid=None, until_ms=1_000, limit=1_000)
    assert [msgspec.structs.replace(c, id=None) for c in log] == changes
    assert len({c.id for c in log}) == len(changes)


def test_a_rolled_back_transaction_logs_nothing(store: Store) -> None:
    change = MembershipChange(audience_id=1, mpid=1, entered=True, at_ms=1, reason="x")

    def fail() -> None:
        with store.unit_of_work() as uow:
            uow.memberships.append([change])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert store.membership_log(audience_id=1, mpid=None, until_ms=10, limit=10) == []


def test_membership_counts_add_up_enters_and_exits(store: Store) -> None:
    assert store.membership_counts(1, 0) == MembershipCounts()
    with store.unit_of_work() as uow:
        uow.memberships.append(
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


def _profile(mpid: int, tier: str | None, *, scope: str = "a1", **more: Any) -> Profile:
    attributes = (
        {"tier": AttributeEntry(value=tier, priority=1, source="s", ts_ms=1)} if tier else {}
    )
    workspace = WorkspaceProfile(first_seen_ms=1, last_seen_ms=1, attributes=attributes)
    return Profile(
        mpid=mpid,
        scope=scope,
        created_ms=1,
        last_stored_ms=1,
        workspaces={1: workspace},
        version=1,
        **more,
    )


GOLD = Selection(
    criteria=parse_criteria({"attribute": "tier", "op": "equals", "value": "gold"}, Catalog()),
    scope="a1",
    workspace_ids=frozenset({1}),
    now_ms=500,
)


def test_memberships_are_kept_with_the_profile_and_follow_its_saves(store: Store) -> None:
    held = Membership(audience_id=4, name="Gold", since_ms=5)
    with store.unit_of_work() as uow:
        uow.profiles.save(_profile(1, "gold", memberships={4: held}))
    stored = store.get_profile(1)
    assert stored is not None
    assert stored.memberships == {4: held}
    with store.unit_of_work() as uow:
        uow.profiles.save(msgspec.structs.replace(stored, memberships={}, version=2))
    assert store.get_profile(1) == msgspec.structs.replace(stored, memberships={}, version=2)
    member = Selection(
        criteria=parse_criteria({"audience": 4}, Catalog(audiences={4: frozenset()})),
        scope="a1",
        workspace_ids=frozenset({1}),
        now_ms=500,
    )
    assert store.matching_profiles(member, -100, 10) == []


def test_applying_a_selection_enters_and_removes_members_a_page_at_a_time(store: Store) -> None:
    aid = store.save_audience(msgspec.structs.replace(definition(), status="active")).id
    held = Membership(audience_id=aid, name="Gold", since_ms=500)
    stale = Membership(audience_id=aid, name="Gold", since_ms=100)
    with store.unit_of_work() as uow:
        uow.profiles.save(_profile(1, "gold"))
        uow.profiles.save(_profile(2, "silver", memberships={aid: stale}))  # no longer admitted
        uow.profiles.save(_profile(3, "gold", memberships={aid: stale}))  # stays, since kept
        uow.profiles.save(_profile(4, "gold", merged_into=1))  # a merged stub never matches
        uow.profiles.save(_profile(5, "gold", scope="b2"))  # another scope: untouched
        uow.profiles.save(_profile(6, "GOLD"))
    with store.unit_of_work() as uow:
        first = uow.memberships.apply_selection(GOLD, held, 1, 3, "backfill")
    assert (first.read, first.last_mpid) == (3, 3)
    assert sorted((c.mpid, c.entered) for c in first.changes) == [(1, True), (2, False)]
    with store.unit_of_work() as uow:
        second = uow.memberships.apply_selection(GOLD, held, 4, 3, "backfill")
    assert (second.read, second.last_mpid) == (2, 6)
    assert [(c.mpid, c.entered) for c in second.changes] == [(6, True)]
    with store.unit_of_work() as uow:
        assert uow.memberships.apply_selection(GOLD, held, 7, 3, "backfill").last_mpid is None
    memberships = {m: p.memberships for m in range(1, 7) if (p := store.get_profile(m))}
    assert memberships == {1: {aid: held}, 2: {}, 3: {aid: stale}, 4: {}, 5: {}, 6: {aid: held}}
    log = store.membership_log(audience_id=aid, mpid=None, until_ms=1_000, limit=10)
    assert sorted((c.mpid, c.entered, c.at_ms, c.reason) for c in log) == [
        (1, True, 500, "backfill"),
        (2, False, 500, "backfill"),
        (6, True, 500, "backfill"),
    ]


def test_a_selection_applies_only_while_its_audience_is_active(store: Store) -> None:
    aid = store.save_audience(definition()).id  # a draft
    with store.unit_of_work() as uow:
        uow.profiles.save(_profile(1, "gold"))
    with store.unit_of_work() as uow:
        page = uow.memberships.apply_selection(
            GOLD, Membership(audience_id=aid, name="G", since_ms=5), 1, 9, "b"
        )
    assert page.stopped
    assert page.changes == []
    stored = store.get_profile(1)
    assert stored is not None
    assert stored.memberships == {}


def test_removing_an_audience_s_members_logs_each_exit(store: Store) -> None:
    nine = Membership(audience_id=9, name="Gold", since_ms=5)
    eight = Membership(audience_id=8, name="Other", since_ms=5)
    with store.unit_of_work() as uow:
        uow.profiles.save(_profile(1, "gold", memberships={9: nine, 8: eight}))
        uow.profiles.save(_profile(2, "gold", memberships={8: eight}))
        uow.profiles.save(_profile(3, "gold", memberships={9: nine}))
    with store.unit_of_work() as uow:
        assert uow.memberships.remove_all(9, 700, "audience deleted") == 2
    memberships = {m: p.memberships for m in (1, 2, 3) if (p := store.get_profile(m))}
    assert memberships == {1: {8: eight}, 2: {8: eight}, 3: {}}
    log = store.membership_log(audience_id=9, mpid=None, until_ms=1_000, limit=10)
    assert sorted((c.mpid, c.entered, c.at_ms, c.reason) for c in log) == [
        (1, False, 700, "audience deleted"),
        (3, False, 700, "audience deleted"),
    ]


def test_a_unit_of_work_tells_whether_an_audience_is_active(store: Store) -> None:
    draft = store.save_audience(definition())
    active = store.save_audience(msgspec.structs.replace(definition("On"), status="active"))
    with store.unit_of_work() as uow:
        assert not uow.memberships.audience_active(draft.id)
        assert uow.memberships.audience_active(active.id)
        assert not uow.memberships.audience_active(active.id + 100)  # no such audience


def test_a_saved_definition_is_a_version_and_progress_is_not(store: Store) -> None:
    first = store.save_audience(definition())
    assert [(v.version, v.audience) for v in store.audience_versions(first.id)] == [(1, first)]
    running = msgspec.structs.replace(first, backfill_done=40, backfill_scope="a1")
    store.save_audience(running, progress=True)  # the backfill's progress: no version
    same = msgspec.structs.replace(running, updated_ms=9)
    store.save_audience(same)  # saved again, the definition unchanged: no version
    assert len(store.audience_versions(first.id)) == 1
    edited = msgspec.structs.replace(
        same,
        criteria={"attribute": "tier", "op": "equals", "value": "silver"},
        updated_ms=20,
        updated_by="ann",
    )
    store.save_audience(edited)
    activated = msgspec.structs.replace(edited, status="active", updated_ms=30)
    store.save_audience(activated)
    versions = store.audience_versions(first.id)
    assert [(v.version, v.saved_ms, v.audience) for v in versions] == [
        (1, 5, first),
        (2, 20, edited),
        (3, 30, activated),
    ]
    assert versions[1].saved_by == "ann"
    other = store.save_audience(definition("Other"))
    assert [v.audience for v in store.audience_versions(other.id)] == [other]
    assert store.audience_versions(999) == []


def test_an_erased_members_exit_leaves_the_audiences_size_right(store: Store) -> None:
    """An erasure deletes a profile's membership history and logs its exit: the totals
    still give the size (entered minus exited), the exit still counts as a drop."""
    with store.unit_of_work() as uow:
        uow.memberships.append(
            [
                MembershipChange(audience_id=9, mpid=1, entered=True, at_ms=100, reason="x"),
                MembershipChange(audience_id=9, mpid=2, entered=True, at_ms=100, reason="x"),
            ]
        )
    with store.unit_of_work() as uow:
        uow.memberships.erase_log([1])
        uow.memberships.append(
            [MembershipChange(audience_id=9, mpid=1, entered=False, at_ms=200, reason="erased")]
        )
    counts = store.membership_counts(9, since_ms=150)
    assert counts.entered - counts.exited == 1
    assert counts.exited_since == 1
