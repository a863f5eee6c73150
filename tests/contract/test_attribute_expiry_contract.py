"""Per-attribute expiry (RET-4) on every store: the write path, the audience scheduler and
the expiry sweep store a profile without its values past their TTL, its audiences
re-evaluated (exits with reason `attribute_expired`, the size down), and leave every other
value and profile as they were; a later batch setting the key again starts a new TTL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.domain.expiry import EXPIRED_CHANGE, parse_rules, without_expired
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.ports import Store
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.jobs import AudienceScheduler
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.retention import AttributeExpirySweep
from kindred.services.write_path import write_path
from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe
from tests.contract.test_audience_history_contract import _stores
from tests.fakes import FakeClock, NullMetrics, SequentialMpids

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DAY = 86_400_000
NOW = 1_700_000_000_000
WS1 = WorkspaceDef(workspace_id=1, name="one", account=AccountPolicy(account_id=1))
SERVER = InputDef(
    name="s", workspace=WS1, source_type=SourceType.SERVER, api_key="s", api_secret="x"
)
TENANCY = Tenancy(
    org_id=1,
    workspaces={1: WS1},
    inputs_by_key={"s": SERVER},
    inputs_by_name={"s": SERVER},
    attribute_ttls={1: parse_rules({"pii_*": "2d", "seen?": "3d"}, "t")},
)
GOLD = {"attribute": "pii_tier", "op": "equals", "value": "gold"}


class World:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = FakeClock(NOW)
        self.registry = AudienceRegistry(store, TENANCY)
        transactions = Transactions(store)
        self.service = AudienceService(store, transactions, self.registry, self.clock)
        self.ingest = write_path(
            store, SequentialMpids(), NullMetrics(), TENANCY.input_named, self.registry
        )
        self.scheduler = AudienceScheduler(store, transactions, self.registry, self.clock)
        self.removed: list[int] = []
        self.sweep = AttributeExpirySweep(
            transactions,
            self.registry,
            TENANCY,
            self.clock,
            chunk=2,
            on_removed=self.removed.append,
        )

    def audience(self, criteria: dict[str, Any]) -> int:
        made = self.service.create(AudienceDef(name="gold", workspaces=[1], criteria=criteria))
        self.service.set_status(made.id, "active")
        return made.id

    def send(self, customer: str, attributes: dict[str, Any]) -> int:
        now = self.clock.now_ms()
        body = msgspec.json.encode(
            {"user_identities": {"customer_id": customer}, "user_attributes": attributes}
        )
        (outcome,) = self.ingest.run_all([Accepted(SERVER, observe(body, SERVER, now), body)])
        assert outcome.status == "applied", outcome
        assert outcome.mpid is not None
        return outcome.mpid

    def attributes(self, mpid: int) -> dict[str, Any]:
        profile = self.store.get_profile(mpid)
        assert profile is not None
        return profile.workspaces[1].live_attributes()

    def exits(self, audience_id: int, mpid: int) -> list[str | None]:
        log = self.store.membership_log(
            audience_id=audience_id, mpid=mpid, until_ms=self.clock.now_ms(), limit=10
        )
        return [c.reason for c in log if not c.entered]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with _stores(request.param, request) as make:
        yield World(make())


def test_the_sweep_removes_expired_values_and_ends_the_memberships_they_held(
    world: World,
) -> None:
    gold = world.audience(GOLD)
    ada = world.send("ada", {"pii_tier": "gold", "tier": "gold", "pii_email": "a@x"})
    bob = world.send("bob", {"tier": "gold"})
    assert world.service.members_at(gold, world.clock.now_ms()) == [ada]
    world.clock.advance(DAY)
    cy = world.send("cy", {"pii_tier": "gold"})  # a day younger
    world.clock.advance(DAY)  # ada's values are now exactly 2 days old: gone
    report = world.sweep.run()
    assert (report.removed, report.profiles, report.exits) == (2, 1, 1)
    assert report.by_workspace == {"1": 2}
    assert world.removed == [2]
    assert world.attributes(ada) == {"tier": "gold"}
    assert world.attributes(bob) == {"tier": "gold"}
    assert world.attributes(cy) == {"pii_tier": "gold"}
    assert world.exits(gold, ada) == [EXPIRED_CHANGE]
    assert world.service.members_at(gold, world.clock.now_ms()) == [cy]
    assert world.service.metrics(gold).size == 1
    again = world.sweep.run()
    assert (again.removed, again.exits) == (0, 0)
    assert world.exits(gold, ada) == [EXPIRED_CHANGE]  # written once


def test_a_later_batch_setting_the_key_again_starts_a_new_ttl(world: World) -> None:
    gold = world.audience(GOLD)
    ada = world.send("ada", {"pii_tier": "gold"})
    world.clock.advance(DAY)
    world.send("ada", {"pii_tier": "gold"})  # the same value, set again
    world.clock.advance(DAY + 1)
    assert world.sweep.run().removed == 0
    assert world.attributes(ada) == {"pii_tier": "gold"}
    assert world.service.members_at(gold, world.clock.now_ms()) == [ada]
    world.clock.advance(DAY)
    assert world.sweep.run().exits == 1
    assert world.attributes(ada) == {}


def test_the_scheduler_ends_the_membership_at_the_expiry_instant(world: World) -> None:
    gold = world.audience(GOLD)
    ada = world.send("ada", {"pii_tier": "gold", "seen1": 1})
    profile = world.store.get_profile(ada)
    assert profile is not None
    assert profile.audience_due_ms == NOW + 2 * DAY  # due when pii_tier expires
    world.clock.advance(2 * DAY - 1)
    world.scheduler.run()
    assert world.service.members_at(gold, world.clock.now_ms()) == [ada]
    world.clock.advance(1)
    world.scheduler.run()
    assert world.service.members_at(gold, world.clock.now_ms()) == []
    assert world.exits(gold, ada) == [EXPIRED_CHANGE]
    after = world.store.get_profile(ada)
    assert after is not None
    assert after.workspaces[1].live_attributes() == {"seen1": 1}
    assert after.audience_due_ms == NOW + 3 * DAY  # then when seen1 expires
    assert world.sweep.run().removed == 0  # nothing left for the sweep


def test_a_batch_stores_the_profile_without_expired_values(world: World) -> None:
    gold = world.audience({"attribute": "pii_tier", "op": "exists"})
    ada = world.send("ada", {"pii_tier": "gold"})
    world.clock.advance(2 * DAY)
    world.send("ada", {"plan": "pro"})
    assert world.attributes(ada) == {"plan": "pro"}
    assert len(world.exits(gold, ada)) == 1  # with the batch's evaluation's reason
    assert world.service.members_at(gold, world.clock.now_ms()) == []


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    population=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4 * DAY),
            st.dictionaries(
                st.sampled_from(["pii_a", "pii_b", "seen1", "seen22", "plan"]),
                st.integers(min_value=0, max_value=9),
                min_size=1,
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    later=st.integers(min_value=0, max_value=5 * DAY),
)
def test_the_sweep_leaves_exactly_what_the_rule_keeps(
    world: World, population: list[tuple[int, dict[str, int]]], later: int
) -> None:
    """Profiles written at random times; after the sweep each stored profile holds exactly
    the values the pure rule keeps at that instant, and nothing else of it changed."""
    # The world is shared by the examples: each writes customers of its own, later on.
    start = world.clock.now_ms()
    mpids = []
    for n, (step, attributes) in enumerate(sorted(population, key=lambda p: p[0])):
        world.clock.now = start + step
        mpids.append(world.send(f"c{start}-{n}", attributes))
    world.clock.now = start + 4 * DAY + later
    now = world.clock.now_ms()
    before = {m: world.store.get_profile(m) for m in mpids}
    world.sweep.run()
    for mpid, held in before.items():
        assert held is not None
        expected, _ = without_expired(held, TENANCY.attribute_ttls, now)
        stored = world.store.get_profile(mpid)
        assert stored is not None
        assert stored.workspaces == expected.workspaces
        assert stored.user_identities == held.user_identities
        if expected is held:
            assert stored.version == held.version


def test_two_sweeps_at_once_remove_each_value_and_write_each_exit_once(world: World) -> None:
    gold = world.audience(GOLD)
    mpids = [world.send(f"c{n}", {"pii_tier": "gold"}) for n in range(12)]
    world.clock.advance(2 * DAY)
    other = AttributeExpirySweep(
        Transactions(world.store), world.registry, TENANCY, world.clock, chunk=2
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda sweep: sweep.run(), [world.sweep, other]))
    assert sum(r.removed for r in reports) == 12
    assert sum(r.exits for r in reports) == 12
    for mpid in mpids:
        assert world.exits(gold, mpid) == [EXPIRED_CHANGE]
        assert world.attributes(mpid) == {}
    assert world.service.metrics(gold).size == 0
