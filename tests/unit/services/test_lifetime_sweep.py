"""The lifetime sweep (RET-1, RET-2): exactly the aged-out profiles go, with their links."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import MembershipChange
from kindred.domain.identities import IdentityKey
from kindred.domain.lifetime import DAY_MS
from kindred.domain.profile import Membership, Profile
from kindred.domain.tenancy import AccountPolicy, Tenancy, WorkspaceDef
from kindred.services.background import Periodic
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.retention import EXPIRED, LifetimeSweep
from kindred.storage.memory import MemoryStore
from tests.fakes import FakeClock

NOW = 1_700_000_000_000
SHORT = AccountPolicy(account_id=1, profile_lifetime_days=90)
LONG = AccountPolicy(account_id=2, profile_lifetime_days=730, lifetime_profiles=True)
TENANCY = Tenancy(
    org_id=1,
    workspaces={
        1: WorkspaceDef(workspace_id=1, name="a", account=SHORT),
        2: WorkspaceDef(workspace_id=2, name="b", account=LONG),
    },
    inputs_by_key={},
    inputs_by_name={},
)


def profile(mpid: int, scope: str, age_ms: int) -> Profile:
    return Profile(mpid=mpid, scope=scope, created_ms=0, last_stored_ms=NOW - age_ms, version=1)


def stored(*profiles: Profile) -> MemoryStore:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        for p in profiles:
            uow.profiles.save(p)
            uow.identities.link(p.scope, p.mpid, [IdentityKey("email", f"{p.mpid}@x")])
    return store


def test_each_account_sweeps_by_its_own_lifetime() -> None:
    store = stored(
        profile(1, "a1", 91 * DAY_MS),
        profile(2, "a1", 89 * DAY_MS),
        profile(3, "a2", 91 * DAY_MS),
        profile(4, "a2", 731 * DAY_MS),
    )
    report = LifetimeSweep(Transactions(store), TENANCY, FakeClock(NOW), chunk=1).run()
    assert (report.deleted, report.by_scope) == (2, {"a1": 1, "a2": 1})
    assert store.get_profile(1) is None
    assert store.get_profile(4) is None
    assert store.get_profile(2) is not None
    assert store.get_profile(3) is not None
    assert store.find_profiles("a1", IdentityKey("email", "1@x")) == []
    assert store.find_profiles("a1", IdentityKey("email", "2@x")) == [2]


def test_an_expired_profile_leaves_its_audiences_with_an_exit_each() -> None:
    member = Profile(
        mpid=1,
        scope="a1",
        created_ms=0,
        last_stored_ms=NOW - 91 * DAY_MS,
        version=1,
        memberships={a: Membership(audience_id=a, name=f"aud{a}", since_ms=0) for a in (3, 5)},
    )
    store = stored(member, profile(2, "a1", DAY_MS))
    with store.unit_of_work() as uow:
        uow.memberships.append(
            [
                MembershipChange(audience_id=a, mpid=1, entered=True, at_ms=0, reason="r")
                for a in (3, 5)
            ]
        )
    exits: list[int] = []
    report = LifetimeSweep(
        Transactions(store), TENANCY, FakeClock(NOW), on_exits=exits.append
    ).run()
    assert (report.deleted, report.exits, exits) == (1, 2, [2])
    log = store.membership_log(audience_id=None, mpid=1, until_ms=NOW, limit=10)
    assert [(c.audience_id, c.entered, c.reason) for c in log if not c.entered] == [
        (3, False, EXPIRED),
        (5, False, EXPIRED),
    ]
    for audience_id in (3, 5):
        counts = store.membership_counts(audience_id, 0)
        assert counts.entered - counts.exited == 0


def test_a_second_sweep_finds_nothing_more() -> None:
    store = stored(*(profile(m, "a1", 100 * DAY_MS) for m in range(1, 8)))
    sweep = LifetimeSweep(Transactions(store), TENANCY, FakeClock(NOW), chunk=3)
    assert sweep.run().deleted == 7
    assert sweep.run().deleted == 0
    assert store.count_profiles() == 0


def test_deletions_are_counted_per_chunk() -> None:
    counted: list[int] = []
    store = stored(*(profile(m, "a1", 100 * DAY_MS) for m in range(1, 6)))
    LifetimeSweep(
        Transactions(store), TENANCY, FakeClock(NOW), chunk=2, on_deleted=counted.append
    ).run()
    assert counted == [2, 2, 1]


def test_profiles_of_unknown_scopes_are_left_alone() -> None:
    store = stored(profile(1, "w9", 5_000 * DAY_MS))
    assert LifetimeSweep(Transactions(store), TENANCY, FakeClock(NOW)).run().deleted == 0
    assert store.count_profiles() == 1


@settings(max_examples=50)
@given(
    ages=st.lists(
        st.tuples(st.sampled_from(["a1", "a2"]), st.integers(0, 800 * DAY_MS)), max_size=20
    ),
    chunk=st.integers(1, 5),
)
def test_the_sweep_deletes_exactly_the_expired(ages: list[tuple[str, int]], chunk: int) -> None:
    profiles = [profile(n + 1, scope, age) for n, (scope, age) in enumerate(ages)]
    store = stored(*profiles)
    LifetimeSweep(Transactions(store), TENANCY, FakeClock(NOW), chunk=chunk).run()
    lifetime = {"a1": 90 * DAY_MS, "a2": 730 * DAY_MS}
    survivors = {p.mpid for p in profiles if NOW - p.last_stored_ms <= lifetime[p.scope]}
    assert {p.mpid for p in profiles if store.get_profile(p.mpid)} == survivors


def test_a_periodic_task_runs_again_after_a_failure_until_stopped() -> None:
    runs: list[int] = []
    ran_twice = threading.Event()

    def task() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        ran_twice.set()

    periodic = Periodic("test-task", 0.01, task, first_after_s=0)
    periodic.start()
    assert ran_twice.wait(5)
    periodic.stop()
    count = len(runs)
    time.sleep(0.05)
    assert len(runs) == count  # stopped: no more runs
