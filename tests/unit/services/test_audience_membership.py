"""Live membership: after any sequence of batches, the memberships kept incrementally (only
the audiences a batch touched re-evaluated) equal a from-scratch evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.audiences.membership import evaluate_memberships
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.ports import ConcurrentUpdate
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.jobs import AudienceBackfill, AudienceScheduler
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.write_path import write_path
from kindred.services.writes.commands import Accepted
from kindred.storage.memory import MemoryStore
from kindred.wire.observe import observe
from tests.fakes import FakeClock, NullMetrics, SequentialMpids

NOW = 1_700_000_000_000
WORKSPACE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
SERVER = InputDef(
    name="s", workspace=WORKSPACE, source_type=SourceType.SERVER, api_key="k", api_secret="x"
)
TENANCY = Tenancy(
    org_id=1, workspaces={1: WORKSPACE}, inputs_by_key={"k": SERVER}, inputs_by_name={"s": SERVER}
)
CRITERIA: list[dict[str, Any]] = [
    {"attribute": "tier", "op": "equals", "value": "gold"},
    {
        "and": [
            {"attribute": "tier", "op": "exists"},
            {"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 2},
        ]
    },
    {"or": [{"attribute": "visits", "op": "gt", "value": 3}, {"event": "screen_view"}]},
    {"exclude": {"audience": 1}},
    {"and": [{"audience": 2}, {"identity": "email", "op": "exists"}]},
    {"event": "custom_event", "name": "Play", "within_days": 3},
    {
        "event": "commerce_event",
        "action": "purchase",
        "where": [{"product": "category", "op": "equals", "value": "shoes"}],
        "within_days": 2,
    },
    {"cart_abandonment": {"within_days": 3, "wait_minutes": 60}},
    {
        "event": "custom_event",
        "name": "Play",
        "where": [{"attribute": "genre", "op": "equals", "value": "jazz"}],
        "at_least": 2,
    },
]


def _commerce(action: str, category: str) -> dict[str, Any]:
    products = [{"id": "p1", "category": category, "price": 10.0}]
    return {
        "event_type": "commerce_event",
        "data": {"product_action": {"action": action, "products": products}},
    }


def _played(genre: str) -> dict[str, Any]:
    data = {
        "event_name": "Play",
        "custom_event_type": "other",
        "custom_attributes": {"genre": genre},
    }
    return {"event_type": "custom_event", "data": data}


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.clock = FakeClock(NOW)
        self.registry = AudienceRegistry(self.store, TENANCY)
        service = AudienceService(self.store, Transactions(self.store), self.registry, self.clock)
        for n, criteria in enumerate(CRITERIA, start=1):
            saved = service.create(AudienceDef(name=f"a{n}", workspaces=[1], criteria=criteria))
            assert saved.id == n
            service.set_status(saved.id, "active")
        self.ingest = write_path(
            self.store, SequentialMpids(), NullMetrics(), lambda _: SERVER, self.registry
        )

    def send(self, batch: dict[str, Any], step_ms: int = 60_000) -> None:
        self.clock.advance(step_ms)
        body = msgspec.json.encode(batch)
        obs = observe(body, SERVER, self.clock.now_ms())
        (outcome,) = self.ingest.run_all([Accepted(SERVER, obs, body)])
        assert outcome.status == "applied", outcome


batches = st.fixed_dictionaries(
    {"user_identities": st.fixed_dictionaries({"customer_id": st.sampled_from(["u1", "u2"])})},
    optional={
        "user_attributes": st.dictionaries(
            st.sampled_from(["tier", "visits"]),
            st.sampled_from(["gold", "silver", 1, 5, None]),
            max_size=2,
        ),
        "events": st.lists(
            st.sampled_from(["Play", "Stop", "screen"]).map(
                lambda n: (
                    {"event_type": "screen_view", "data": {"screen_name": "Home"}}
                    if n == "screen"
                    else {
                        "event_type": "custom_event",
                        "data": {"event_name": n, "custom_event_type": "other"},
                    }
                )
            )
            | st.builds(
                _commerce,
                st.sampled_from(["add_to_cart", "purchase", "checkout"]),
                st.sampled_from(["shoes", "Shoes", "hats"]),
            )
            | st.builds(_played, st.sampled_from(["jazz", "rock"])),
            max_size=3,
        ),
    },
)


_PLAY = {"event_type": "custom_event", "data": {"event_name": "Play", "custom_event_type": "other"}}


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
# One user plays, the other comes back five days later: only time moved the first one out.
@example(
    [
        ({"user_identities": {"customer_id": "u1"}, "events": [_PLAY]}, 0),
        ({"user_identities": {"customer_id": "u2"}}, 5 * 86_400_000),
    ],
    False,
)
@given(
    st.lists(st.tuples(batches, st.integers(0, 6 * 86_400_000)), min_size=2, max_size=12),
    st.booleans(),
)
def test_incremental_membership_equals_a_fresh_evaluation(
    script: list[tuple[dict[str, Any], int]], with_email: bool
) -> None:
    """Batches days apart: what they touched is re-evaluated at once, what time alone
    changed when the scheduler comes by; together equal to evaluating from scratch. After
    every batch each profile is due no later than time alone may next change it (a batch
    computes only the next change of the audiences it touched)."""
    world = World()
    for batch, step_ms in script:
        email = {"email": "a@x"} if with_email else {}
        world.send({**batch, "user_identities": {**batch["user_identities"], **email}}, step_ms)
        _assert_due_in_time(world)
    AudienceScheduler(world.store, Transactions(world.store), world.registry, world.clock).run()
    active = world.registry.current().active
    for profile in world.store._state.profiles.values():
        blank = msgspec.structs.replace(profile, memberships={})
        fresh, _ = evaluate_memberships(blank, active, None, world.clock.now_ms())
        assert set(profile.memberships) == set(fresh.memberships), profile.mpid
    log = world.store.membership_log(audience_id=None, mpid=None, until_ms=2**62, limit=10_000)
    for mpid, profile in world.store._state.profiles.items():
        inside: dict[int, bool] = {}
        for change in (c for c in log if c.mpid == mpid):
            assert inside.get(change.audience_id, False) != change.entered  # alternates
            inside[change.audience_id] = change.entered
        assert {a for a, member in inside.items() if member} == set(profile.memberships)


def _assert_due_in_time(world: World) -> None:
    active = world.registry.current().active
    now = world.clock.now_ms()
    for profile in world.store._state.profiles.values():
        undue = msgspec.structs.replace(profile, audience_due_ms=None)
        exact = evaluate_memberships(undue, active, None, now)[0].audience_due_ms
        if exact is not None:
            assert profile.audience_due_ms is not None, profile.mpid
            assert profile.audience_due_ms <= exact, profile.mpid


def test_time_alone_moves_a_profile_out_and_the_scheduler_logs_it() -> None:
    store = MemoryStore()
    clock = FakeClock(NOW)
    registry = AudienceRegistry(store, TENANCY)
    service = AudienceService(store, Transactions(store), registry, clock)
    recent = service.create(
        AudienceDef(
            name="Played this week",
            workspaces=[1],
            criteria={"event": "custom_event", "name": "Play", "within_days": 7},
        )
    )
    service.set_status(recent.id, "active")
    ingest = write_path(store, SequentialMpids(), NullMetrics(), lambda _: SERVER, registry)
    body = msgspec.json.encode(
        {
            "user_identities": {"customer_id": "t1"},
            "events": [
                {
                    "event_type": "custom_event",
                    "data": {
                        "event_name": "Play",
                        "custom_event_type": "other",
                        "timestamp_unixtime_ms": NOW,
                    },
                }
            ],
        }
    )
    (outcome,) = ingest.run_all([Accepted(SERVER, observe(body, SERVER, NOW), body)])
    assert outcome.mpid is not None
    profile = store.get_profile(outcome.mpid)
    assert profile is not None
    assert set(profile.memberships) == {recent.id}
    assert profile.audience_due_ms == NOW + 7 * 86_400_000 + 1

    scheduler = AudienceScheduler(store, Transactions(store), registry, clock)
    clock.advance(7 * 86_400_000)  # exactly 7 days: still inside
    assert scheduler.run() == 0
    clock.advance(1)
    assert scheduler.run() == 1
    after = store.get_profile(outcome.mpid)
    assert after is not None
    assert after.memberships == {}
    assert after.audience_due_ms is None
    (entered, exited) = store.membership_log(
        audience_id=recent.id, mpid=None, until_ms=2**62, limit=9
    )
    assert (entered.entered, exited.entered, exited.reason) == (True, False, "time")
    assert exited.at_ms == NOW + 7 * 86_400_000 + 1


GOLD: dict[str, object] = {"attribute": "tier", "op": "equals", "value": "gold"}


@pytest.mark.parametrize(
    "criteria",
    [
        GOLD,  # computed by the store, a page at a time
        # time moves this one: evaluated profile by profile
        {"and": [GOLD, {"first_seen": "within_last_days", "value": 3650}]},
    ],
)
def test_a_backfill_evaluates_existing_profiles_alongside_live_batches(
    criteria: dict[str, Any],
) -> None:
    store = MemoryStore()
    clock = FakeClock(NOW)
    registry = AudienceRegistry(store, TENANCY)
    service = AudienceService(store, Transactions(store), registry, clock)
    ingest = write_path(store, SequentialMpids(), NullMetrics(), lambda _: SERVER, registry)

    def send(customer: str, tier: str) -> None:
        batch = {"user_identities": {"customer_id": customer}, "user_attributes": {"tier": tier}}
        body = msgspec.json.encode(batch)
        ingest.run_all([Accepted(SERVER, observe(body, SERVER, clock.now_ms()), body)])

    for n in range(12):
        send(f"c{n}", "gold" if n % 2 else "silver")
    gold = service.create(
        AudienceDef(
            name="Gold",
            workspaces=[1],
            criteria=criteria,
        )
    )
    service.set_status(gold.id, "active")
    assert service.metrics(gold.id).backfill_running
    backfill = AudienceBackfill(
        store, Transactions(store), registry, clock, chunk=5, chunks_per_run=1, set_chunk=5
    )
    assert backfill.run() == 5
    send("c0", "gold")  # live, while the backfill is under way (c0 is MPID 1: done already)
    send("c11", "silver")  # and one it has not reached yet
    while service.metrics(gold.id).backfill_running:
        backfill.run()
    members = set(service.members_at(gold.id, clock.now_ms()))
    expected = {
        p.mpid
        for p in store._state.profiles.values()
        if p.workspaces[1].attributes["tier"].value == "gold"
    }
    assert members == expected
    assert len(members) == 6  # c1, c3, ..., c9 and c0; not c11
    log = store.membership_log(audience_id=gold.id, mpid=None, until_ms=2**62, limit=100)
    assert sorted(c.mpid for c in log if c.entered) == sorted(members)  # each entered once
    assert service.metrics(gold.id).backfill_evaluated == 12
    assert backfill.run() == 0


def test_product_conditions_and_cart_abandonment_move_profiles_as_time_passes() -> None:
    """Audiences 7 (bought shoes in 2 days), 8 (abandoned a cart: added, no purchase for
    an hour, within 3 days) and 9 (played jazz twice), driven by batches and the clock."""
    world = World()
    user = {"user_identities": {"customer_id": "u1"}}

    def member_of() -> set[int]:
        profile = world.store.get_profile(1)
        assert profile is not None
        return {a for a in profile.memberships if a >= 7}

    world.send({**user, "events": [_commerce("add_to_cart", "hats"), _played("jazz")]})
    assert member_of() == set()  # the hour has not passed; one jazz play
    world.clock.advance(59 * 60_000)
    AudienceScheduler(world.store, Transactions(world.store), world.registry, world.clock).run()
    assert member_of() == set()
    world.clock.advance(60_000)  # an hour after the add, no purchase
    AudienceScheduler(world.store, Transactions(world.store), world.registry, world.clock).run()
    assert member_of() == {8}
    world.send({**user, "events": [_commerce("purchase", "Shoes"), _played("rock")]})
    assert member_of() == {7}  # the purchase ends the abandonment; shoes match any case
    world.send({**user, "events": [_played("JAZZ")]})
    assert member_of() == {7, 9}
    world.clock.advance(2 * 86_400_000)  # the purchase leaves the two-day window
    AudienceScheduler(world.store, Transactions(world.store), world.registry, world.clock).run()
    assert member_of() == {9}
    log = world.store.membership_log(audience_id=8, mpid=1, until_ms=2**62, limit=10)
    assert [(c.entered, c.reason) for c in log] == [(True, "time"), (False, "event:commerce_event")]


class _Colliding(MemoryStore):
    """A store on which every set-based page loses a race with a batch."""

    @contextmanager
    def unit_of_work(self) -> Iterator[Any]:
        with super().unit_of_work() as uow:
            uow.memberships.apply_selection = self._collide  # type: ignore[method-assign,assignment]
            yield uow

    @staticmethod
    def _collide(*_: object) -> object:
        raise ConcurrentUpdate("a batch changed a profile of the page")


def _gold_world(store: MemoryStore) -> tuple[AudienceService, AudienceDef, FakeClock]:
    clock = FakeClock(NOW)
    registry = AudienceRegistry(store, TENANCY)
    service = AudienceService(store, Transactions(store), registry, clock)
    ingest = write_path(store, SequentialMpids(), NullMetrics(), lambda _: SERVER, registry)
    for n in range(12):
        batch = {"user_identities": {"customer_id": f"c{n}"}, "user_attributes": {"tier": "gold"}}
        body = msgspec.json.encode(batch)
        ingest.run_all([Accepted(SERVER, observe(body, SERVER, clock.now_ms()), body)])
    gold = service.create(AudienceDef(name="Gold", workspaces=[1], criteria=GOLD))
    clock.advance(1)
    return service, service.set_status(gold.id, "active"), clock


class _Interrupted(AudienceBackfill):
    """A backfill during whose first page something else happens."""

    meanwhile: Callable[[], object] | None = None

    def _select_once(self, target: Any, scope: str, start: int) -> tuple[int, int] | None:
        page = super()._select_once(target, scope, start)
        if self.meanwhile is not None:
            self.meanwhile()
            self.meanwhile = None
        return page


@pytest.mark.parametrize("change", ["deactivate", "edit"])
def test_a_backfill_stops_when_its_audience_changes_during_the_run(change: str) -> None:
    store = MemoryStore()
    service, gold, clock = _gold_world(store)
    backfill = _Interrupted(
        store, Transactions(store), AudienceRegistry(store, TENANCY), clock, set_chunk=5
    )
    silver: dict[str, object] = {"attribute": "tier", "op": "equals", "value": "silver"}

    def meanwhile() -> None:
        clock.advance(1)
        if change == "deactivate":
            service.set_status(gold.id, "inactive")
        else:  # nobody is silver
            service.update(gold.id, msgspec.structs.replace(gold, criteria=silver))

    backfill.meanwhile = meanwhile
    backfill.run()
    for _ in range(10):  # the edited audience's own backfill (a deactivated one has none)
        backfill.run()
    assert service.members_at(gold.id, clock.now_ms()) == []
    assert not service.metrics(gold.id).backfill_running or change == "deactivate"


def test_a_backfill_that_keeps_colliding_with_batches_resumes_instead_of_finishing() -> None:
    store = _Colliding()
    service, gold, clock = _gold_world(store)
    registry = AudienceRegistry(store, TENANCY)
    assert AudienceBackfill(store, Transactions(store), registry, clock, set_chunk=5).run() == 0
    assert service.metrics(gold.id).backfill_running
