"""The audience estimator (AUD-7) against activation: the estimate is exactly the members an
activated audience has among the sampled profiles, scaled by the sample's fraction (event
criteria folded from the stored batches as activation folds them); the sample is stable;
`~` below the reliable count; definitions that cannot be estimated are refused by name."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.audiences.history import histories_of
from kindred.audiences.sample import RELIABLE_MEMBERS, SAMPLE_MODULUS, sample_key
from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import IdentityKey
from kindred.ports import LogEntry
from kindred.services.audiences import estimates
from kindred.services.audiences.estimates import WARM_FOR_S, AudienceEstimator
from kindred.services.audiences.log_reading import LogReading, decoded_batch
from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe
from tests.unit.services.test_audience_history import DAY, INPUTS, NOW, World

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

# Another event criterion (its own event name and filter), estimated in between.
PICKY: dict[str, Any] = {
    "and": [
        {"event": "custom_event", "name": "Pause", "within_days": 5},
        {"event": "custom_event", "name": "Play", "within_days": 3, "at_least": 2},
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
    # As a server answers, on a sample refreshed in the background, after other criteria
    # (the batches' events decoded once for any criterion): the same answer.
    warm = AudienceEstimator(
        world.store, world.registry, world.clock, sample_size=size, kept_s=3600
    )
    assert warm.refresh() == 1
    for other in (LOOSE, PICKY, CRITERIA):
        warm.estimate(_definition(other))
    assert warm.estimate(_definition(criteria)) == found
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


def test_a_server_refreshes_the_sample_so_estimates_see_changes_without_reading() -> None:
    world = World()
    for n in range(5):
        _send(world, f"u{n}", "gold", 5, [1])
    gold = _definition({"attribute": "tier", "op": "equals", "value": "gold"})
    played = _definition({"event": "custom_event", "name": "Play", "within_days": 10})
    estimator = AudienceEstimator(world.store, world.registry, world.clock, kept_s=3600)
    assert estimator.refresh() == 1  # the first run warms every scope of the tenancy
    reads = _count_reads(world)
    assert estimator.estimate(gold).estimate == 5
    assert estimator.estimate(played).estimate == 5
    assert reads == {"samples": 0, "logs": 0}  # both answered from the warm sample
    _send(world, "u9", "gold", 5, [1])
    _send(world, "u1", "gold", 5, [2, 3])  # a second batch of a sampled profile
    twice = _definition({"event": "custom_event", "name": "Play", "at_least": 2})
    assert estimator.estimate(gold).estimate == 5  # as refreshed a moment ago
    assert estimator.estimate(twice).estimate == 0
    assert estimator.refresh() == 1
    assert estimator.estimate(gold).estimate == 6
    assert estimator.estimate(played).estimate == 6
    assert estimator.estimate(twice).sampled_members == 1  # u1's new batch read
    fresh = AudienceEstimator(world.store, world.registry, world.clock, kept_s=0)
    for definition in (gold, played, twice, _definition(CRITERIA)):
        assert estimator.estimate(definition) == fresh.estimate(definition)


def _count_reads(world: World) -> dict[str, int]:
    """Counts the store's sample and log reads from now on."""
    reads = {"samples": 0, "logs": 0}
    sample, log = world.store.sample_profiles, world.store.log_for_profiles

    def counted_sample(*args: Any) -> Any:
        reads["samples"] += 1
        return sample(*args)

    def counted_log(mpids: Any) -> Any:
        reads["logs"] += 1
        return log(mpids)

    world.store.sample_profiles = counted_sample  # type: ignore[method-assign, assignment]
    world.store.log_for_profiles = counted_log  # type: ignore[method-assign]
    return reads


def test_a_refresh_reads_the_batches_in_slices_with_a_pause_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server's refresh leaves the interpreter to ingest between slices of its reads:
    what it reads is what one read gives (the applied batches, oldest first)."""
    world = World()
    for n in range(12):
        _send(world, f"u{n}", "gold", 5, [1, 2])
    _send(world, "u3", "silver", 5, [3])  # a second batch of one profile
    monkeypatch.setattr(estimates, "REFRESH_SLICE", 5)
    pauses: list[float] = []
    estimator = AudienceEstimator(
        world.store, world.registry, world.clock, pause=lambda: pauses.append(time.monotonic())
    )
    assert estimator.refresh() == 1
    profiles, batches = estimator.sampled(_scope(world))
    assert len(profiles) == 12
    # One pause after the sample, one between each two of the 3 slices of 5 profiles.
    assert len(pauses) == 3
    whole = world.store.log_for_profiles([p.mpid for p in profiles])
    assert batches == [e for e in whole if e.status == "applied" and e.mpid is not None]
    assert [e.id for e in batches] == sorted(e.id or 0 for e in batches)
    fresh = AudienceEstimator(world.store, world.registry, world.clock, kept_s=0)
    played_twice = _definition({"event": "custom_event", "name": "Play", "at_least": 2})
    assert estimator.estimate(played_twice) == fresh.estimate(played_twice)


def test_a_refresh_reads_again_only_the_batches_of_profiles_that_changed_and_each_in_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batches of a profile stored as it was at the last read are kept as read, but
    on its turn (one refresh in REREAD_EVERY): what changes a profile's batches without
    changing it (retention removing old ones) shows within that many refreshes."""
    monkeypatch.setattr(estimates, "REREAD_EVERY", 4)
    world = World()
    for n in range(24):
        _send(world, f"u{n}", "gold", 5, [1])
    estimator = AudienceEstimator(world.store, world.registry, world.clock)
    assert estimator.refresh() == 1
    everyone = {p.mpid for p in estimator.sampled(_scope(world))[0]}
    read: list[set[int]] = []
    log = world.store.log_for_profiles

    def recorded(mpids: Any) -> Any:
        read[-1].update(mpids)
        return log(mpids)

    world.store.log_for_profiles = recorded  # type: ignore[method-assign]
    played_twice = _definition({"event": "custom_event", "name": "Play", "at_least": 2})
    for round_ in range(4):
        _send(world, "u1", "gold", 5, [round_ + 2])  # u1 changes every time
        read.append(set())
        assert estimator.refresh() == 1
        (u1,) = world.store.find_profiles(_scope(world), IdentityKey("customer_id", "u1"))
        assert u1 in read[-1]
        assert len(read[-1]) < len(everyone) / 2  # the others as read, bar their turn
        fresh = AudienceEstimator(world.store, world.registry, world.clock, kept_s=0)
        assert estimator.estimate(played_twice) == fresh.estimate(played_twice)
    assert set().union(*read) == everyone  # each read again within REREAD_EVERY


def test_scopes_no_longer_estimated_are_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    _send(world, "u0", "gold", 5, [])
    estimator = AudienceEstimator(world.store, world.registry, world.clock)
    assert estimator.refresh() == 1
    later = time.monotonic() + WARM_FOR_S + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert estimator.refresh() == 0
    gold = _definition({"attribute": "tier", "op": "equals", "value": "gold"})
    assert estimator.estimate(gold).estimate == 1  # read again when asked
    assert estimator.refresh() == 1


_NAMES = st.sampled_from(
    ["Play", "play", "PLAY", "Pause", "Pl\\u0061y", "Pl\u00e0y", "\u212aick", "Kick", "P" * 300]
)


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.lists(_NAMES, max_size=4), min_size=1, max_size=4),
    criterion=st.sampled_from(["Play", "Kick", "Pause", None]),
    source=st.sampled_from(["web", "app"]),
)
def test_events_decoded_once_are_chosen_as_the_log_reader_reads_them(
    names: list[list[str]], criterion: str | None, source: str
) -> None:
    """Whatever a batch holds (names spelled with escapes, beyond ASCII, events that do not
    read: a name too long), the events chosen from it decoded beforehand are those
    activation's reader decodes for the criterion."""
    world = World()
    node: dict[str, Any] = {"event": "custom_event", "within_days": 30}
    if criterion is not None:
        node["name"] = criterion
    compiled = world.registry.check(
        AudienceDef(name="", workspaces=[1], inputs=["web"], criteria=node)
    )
    reading = LogReading(histories_of(compiled.histories), world.registry.tenancy.input_named)
    for batch in names:
        # Written by hand: a name's escapes stay as written.
        events = ",".join(
            '{"event_type": "custom_event", "data": {"event_name": "'
            + name
            + '", "custom_event_type": "other"}}'
            for name in batch
        )
        body = ('{"mpid": 1, "events": [' + events + "]}").encode()
        entry = LogEntry(
            input=source, workspace_id=1, received_ms=NOW, status="applied", body=body, mpid=1
        )
        assert reading.chosen(decoded_batch(entry)) == reading.events(entry)
