"""The audience estimator (AUD-7) against activation: the estimate is exactly the members an
activated audience has among the sampled profiles, scaled by the sample's fraction (event
criteria folded from the stored batches as activation folds them); the sample is stable;
`~` below the reliable count; definitions that cannot be estimated are refused by name."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.audiences.sample import RELIABLE_MEMBERS, SAMPLE_MODULUS, sample_key
from kindred.domain.errors import InvalidBatch
from kindred.services.audiences.estimates import AudienceEstimator
from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe
from tests.unit.services.test_audience_history import DAY, INPUTS, World

CRITERIA: dict[str, Any] = {
    "and": [
        {"attribute": "tier", "op": "equals", "value": "gold"},
        {"event": "custom_event", "name": "Play", "within_days": 10, "at_least": 2},
        {"exclude": {"attribute": "visits", "op": "lt", "value": 3}},
    ]
}

# Most profiles are members: a sample of a few dozen holds enough of them to estimate.
LOOSE: dict[str, Any] = {
    "or": [
        {"attribute": "tier", "op": "equals", "value": "gold"},
        {"event": "custom_event", "name": "Play", "within_days": 10},
    ]
}

_USERS = st.lists(
    st.tuples(
        st.sampled_from(["gold", "silver"]),
        st.integers(0, 5),  # visits
        st.lists(st.integers(0, 20), max_size=4),  # ages of plays, in days
    ),
    min_size=30,
    max_size=120,
)


def _send(world: World, customer: str, tier: str, visits: int, play_days: list[int]) -> None:
    now = world.clock.now_ms()
    events = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "Play",
                "custom_event_type": "other",
                "timestamp_unixtime_ms": now - days * DAY - 1,
            },
        }
        for days in play_days
    ]
    body = {
        "user_identities": {"customer_id": customer},
        "user_attributes": {"tier": tier, "visits": visits},
        "events": events,
    }
    world_ingest(world, msgspec.json.encode(body))


def world_ingest(world: World, body: bytes) -> None:
    item = INPUTS["web"]
    now = world.clock.now_ms()
    (outcome,) = world.ingest.run_all([Accepted(item, observe(body, item, now), body)])
    assert outcome.status == "applied"


def _definition(criteria: dict[str, Any] | None = None) -> AudienceDef:
    return AudienceDef(name="", workspaces=[1], lookback_days=30, criteria=criteria or CRITERIA)


def _scope(world: World) -> str:
    profile = world.store.get_profile(1)
    assert profile is not None
    return profile.scope


@settings(max_examples=30, deadline=None)
@given(users=_USERS, size=st.integers(25, 90), criteria=st.sampled_from([CRITERIA, LOOSE]))
def test_the_estimate_is_the_activated_members_in_the_sample_scaled(
    users: list[tuple[str, int, list[int]]], size: int, criteria: dict[str, Any]
) -> None:
    world = World()
    for n, (tier, visits, plays) in enumerate(users):
        _send(world, f"u{n}", tier, visits, plays)
    estimator = AudienceEstimator(world.store, world.registry, world.clock, sample_size=size)
    found = estimator.estimate(_definition(criteria))
    # The same definition activated: its real members, by activation's own fold.
    audience = world.audience(criteria, lookback_days=30)
    world.settle()
    members = set(world.members(audience))
    sample = world.store.sample_profiles(_scope(world), size)
    sampled = {p.mpid for p in sample.profiles}
    in_sample = len(members & sampled)
    assert found.sampled_members == in_sample
    assert found.sample_size == len(sampled)
    if sample.bound >= SAMPLE_MODULUS:
        event("every profile sampled")
        assert found.exact
        assert found.estimate == len(members)
    elif in_sample < RELIABLE_MEMBERS:
        event("too few sampled members")
        assert found.estimate is None
        assert found.shown == "~"
    else:
        event("estimated")
        assert found.estimate == round(in_sample / (sample.bound / SAMPLE_MODULUS))
        assert found.low is not None
        assert found.high is not None
        assert found.low <= found.estimate <= found.high
    # Stable: asked again, the same answer; the sample is exactly the keys below its bound.
    assert estimator.estimate(_definition(criteria)) == found
    assert sampled == {m for m in range(1, len(users) + 1) if sample_key(m) < sample.bound}


def test_each_top_level_criterion_is_estimated_an_exclusion_by_what_it_leaves_out() -> None:
    world = World()
    for n in range(12):
        _send(world, f"u{n}", "gold" if n % 3 == 0 else "silver", n % 6, [1, 2] if n < 6 else [])
    found = AudienceEstimator(world.store, world.registry, world.clock).estimate(_definition())
    assert found.exact  # 12 profiles: the sample holds them all, the numbers are counts
    gold, played, low_visits = found.criteria
    assert (gold.estimate, played.estimate, low_visits.estimate) == (4, 6, 6)
    assert low_visits.excludes
    assert low_visits.criterion == CRITERIA["and"][2]
    # gold, 2 plays, visits >= 3: u3 (visits 3); u0 has visits 0, u6 and u9 never played
    assert found.estimate == 1


def test_too_few_sampled_members_give_no_number() -> None:
    world = World()
    for n in range(40):
        _send(world, f"u{n}", "gold" if n == 0 else "silver", 5, [1, 1])
    estimator = AudienceEstimator(world.store, world.registry, world.clock, sample_size=20)
    found = estimator.estimate(_definition({"attribute": "tier", "op": "equals", "value": "gold"}))
    assert not found.exact
    assert found.estimate is None
    assert found.shown == "~"
    assert found.low is None
    everyone = estimator.estimate(_definition({"attribute": "tier", "op": "exists"}))
    assert everyone.sampled_members == 20
    assert everyone.estimate is not None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"workspaces": [9]}, "workspaces[0]"),
        ({"workspaces": []}, "workspaces"),
        ({"criteria": {"attribute": "tier", "op": "nope"}}, "criteria"),
        ({"kind": "standard"}, "kind"),
        ({"lookback_days": 0}, "lookback_days"),
    ],
)
def test_a_definition_that_cannot_be_estimated_is_refused_by_name(
    changes: dict[str, Any], named: str
) -> None:
    world = World()
    _send(world, "u1", "gold", 1, [])
    estimator = AudienceEstimator(world.store, world.registry, world.clock)
    with pytest.raises(InvalidBatch) as refused:
        estimator.estimate(msgspec.structs.replace(_definition(), **changes))
    assert refused.value.path.startswith(named)


def test_a_nested_audience_without_known_members_cannot_be_estimated() -> None:
    world = World()
    _send(world, "u1", "gold", 1, [])
    draft = world.service.create(AudienceDef(name="d", workspaces=[1], criteria=CRITERIA))
    estimator = AudienceEstimator(world.store, world.registry, world.clock)
    with pytest.raises(InvalidBatch, match=f"audience {draft.id} is draft"):
        estimator.estimate(_definition({"audience": draft.id}))
    world.service.set_status(draft.id, "active")  # its backfill not run yet
    with pytest.raises(InvalidBatch, match="still being calculated"):
        estimator.estimate(_definition({"audience": draft.id}))
    world.settle()
    assert estimator.estimate(_definition({"audience": draft.id})).exact


def test_an_item_shows_the_estimate_until_the_calculation_is_complete() -> None:
    world = World()
    for n in range(6):
        _send(world, f"u{n}", "gold" if n < 4 else "silver", 5, [])
    estimator = AudienceEstimator(world.store, world.registry, world.clock)
    gold: dict[str, object] = {"attribute": "tier", "op": "equals", "value": "gold"}
    made = world.service.create(AudienceDef(name="g", workspaces=[1], criteria=gold))
    assert estimator.size_of(made).size_estimated is False  # a draft: its (no) members
    active = world.service.set_status(made.id, "active")
    shown = estimator.item(active)
    assert shown["size"] == 4
    assert shown["size_estimated"] is True
    assert shown["name"] == "g"
    assert shown["id"] == made.id
    world.settle()
    done = world.service.get(made.id)
    assert estimator.size_of(done).size_estimated is False
    assert estimator.size_of(done).size == 4
    _send(world, "u9", "gold", 5, [])
    assert estimator.size_of(world.service.get(made.id)).size == 5  # the real size now


def test_a_sample_read_is_used_again_for_a_few_seconds_only() -> None:
    world = World()
    for n in range(5):
        _send(world, f"u{n}", "gold", 5, [])
    gold = _definition({"attribute": "tier", "op": "equals", "value": "gold"})
    kept = AudienceEstimator(world.store, world.registry, world.clock, kept_s=3600)
    fresh = AudienceEstimator(world.store, world.registry, world.clock, kept_s=0)
    assert kept.estimate(gold).estimate == 5
    _send(world, "u9", "gold", 5, [])
    assert kept.estimate(gold).estimate == 5  # the sample as read a moment ago
    assert fresh.estimate(gold).estimate == 6
