"""The compiled closures answer exactly as the reference tree walker: for random criteria
over random profiles and instants."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.audiences.ast import EventCriterion
from kindred.audiences.compile import compile_event_filter, compile_node
from kindred.audiences.deps import event_criteria
from kindred.audiences.evaluate import (
    CART_HISTORIES,
    DAY_MS,
    Subject,
    evaluate,
    event_passes,
    history_key,
)
from kindred.audiences.parse import Catalog, parse_criteria
from kindred.audiences.timing import compile_next_change, next_change
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from tests.strategies import (
    ATTRIBUTE_KEYS,
    TS_BASE,
    WORKSPACE_ID,
    attribute_entries,
    criteria_trees,
    profiles,
)

_STRING_OPS = ["equals", "not_equals", "contains", "not_contains", "pattern"]
_LIST_OPS = ["includes", "not_includes", "partial_match"]
_NUMBER_OPS = ["eq", "ne", "lt", "le", "gt", "ge"]


def _texts() -> st.SearchStrategy[str]:
    return st.sampled_from(["a", "x", "gold", "1", "true", "2.5", "*", "?", "Jazz", "none"])


OTHER_WORKSPACE = WORKSPACE_ID + 1
# The workspaces an audience reads, drawn per example.
audience_workspaces = st.sampled_from(
    [
        frozenset({WORKSPACE_ID}),
        frozenset({OTHER_WORKSPACE}),
        frozenset({WORKSPACE_ID, OTHER_WORKSPACE}),
    ]
)


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    """A leaf; a user-based one may name the workspace it reads, and an attribute may be
    the account's."""
    doc = draw(_leaves())
    if any(k in doc for k in ("attribute", "first_seen", "identity", "consent")):
        if draw(st.integers(0, 2)) == 0:
            doc["workspace"] = draw(st.sampled_from([WORKSPACE_ID, OTHER_WORKSPACE]))
        elif "attribute" in doc and draw(st.integers(0, 3)) == 0:
            doc["account_attribute"] = doc.pop("attribute")
    return doc


@st.composite
def two_workspace_profiles(draw: st.DrawFn) -> Profile:
    """A profile seen in WORKSPACE_ID, OTHER_WORKSPACE, both or (rarely) neither, with
    account-level attributes."""
    first, second = draw(profiles()), draw(profiles())
    held = {WORKSPACE_ID: first.workspaces[WORKSPACE_ID]}
    held[OTHER_WORKSPACE] = second.workspaces[WORKSPACE_ID]
    kept = draw(st.sets(st.sampled_from(sorted(held))))
    account = draw(st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS), attribute_entries()))
    return msgspec.structs.replace(
        first,
        workspaces={w: held[w] for w in sorted(kept)},
        account_attributes=account,
    )


@st.composite
def _leaves(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0911 - one return per kind
    key = draw(st.sampled_from(ATTRIBUTE_KEYS))
    kind = draw(st.integers(0, 8))
    if kind == 0:
        return {"attribute": key, "op": draw(st.sampled_from(_STRING_OPS)), "value": draw(_texts())}
    if kind == 1:
        return {"attribute": key, "op": draw(st.sampled_from(_LIST_OPS)), "value": draw(_texts())}
    if kind == 2:
        value = draw(st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False))
        return {"attribute": key, "op": draw(st.sampled_from(_NUMBER_OPS)), "value": value}
    if kind == 3:
        return {
            "attribute": key,
            "op": draw(st.sampled_from(["exists", "not_exists", "is_true", "is_false"])),
        }
    if kind == 4:
        low = draw(st.integers(-5, 5))
        return {"attribute": key, "op": "between", "value": [low, low + draw(st.integers(0, 5))]}
    if kind == 5:
        return {"first_seen": "within_last_days", "value": draw(st.integers(1, 3))}
    if kind == 6:
        return {
            "identity": draw(st.sampled_from(["email", "customer_id", "other"])),
            "op": "exists",
        }
    if kind == 7:
        return {
            "consent": "gdpr",
            "purpose": "marketing",
            "state": draw(st.sampled_from(["consented", "not_consented", "exists"])),
        }
    count_key = draw(st.sampled_from(["at_least", "at_most", "exactly"]))
    if draw(st.integers(0, 4)) == 0:
        within = draw(st.integers(1, 3))
        wait = draw(st.sampled_from([0, 60, 600]))
        return {"cart_abandonment": {"within_days": within, "wait_minutes": wait}}
    doc: dict[str, Any] = {**draw(st.sampled_from(EVENTS)), count_key: draw(st.integers(0, 3))}
    if draw(st.booleans()):
        doc["within_days"] = draw(st.integers(1, 3))
    return doc


# The event criteria the trees draw from (besides cart abandonment); profiles hold random
# times for each history they read.
EVENTS: list[dict[str, Any]] = [
    {"event": "custom_event", "name": "Play"},
    {
        "event": "custom_event",
        "name": "Play",
        "where": [{"attribute": "genre", "op": "equals", "value": "jazz"}],
    },
    {
        "event": "commerce_event",
        "action": "purchase",
        "where": [{"product": "category", "op": "equals", "value": "shoes"}],
    },
]
HISTORY_KEYS = sorted(
    {history_key(c) for c in CART_HISTORIES}
    | {history_key(c) for e in EVENTS for c in event_criteria(parse_criteria(e, Catalog()))}
)
criteria = criteria_trees(leaves(), max_leaves=6)
plays = st.fixed_dictionaries(
    {},
    optional={
        key: st.lists(st.integers(TS_BASE - 4 * DAY_MS, TS_BASE), min_size=1, max_size=5).map(
            sorted
        )
        for key in HISTORY_KEYS
    },
)


def with_plays(profile: Profile, histories: dict[str, list[int]]) -> Profile:
    return msgspec.structs.replace(profile, event_times=histories)


@settings(max_examples=300)
@given(criteria, two_workspace_profiles(), plays, st.integers(0, 3 * DAY_MS), audience_workspaces)
def test_compiled_and_interpreted_agree(
    doc: dict[str, Any],
    profile: Profile,
    times: dict[str, list[int]],
    later: int,
    workspaces: frozenset[int],
) -> None:
    node = parse_criteria(doc, Catalog())
    subject = Subject(with_plays(profile, times), workspaces, TS_BASE + later)
    assert compile_node(node)(subject) == evaluate(node, subject)


@settings(max_examples=300)
@given(criteria, two_workspace_profiles(), plays, st.integers(0, 3 * DAY_MS), audience_workspaces)
def test_nothing_changes_before_the_next_change(
    doc: dict[str, Any],
    profile: Profile,
    times: dict[str, list[int]],
    later: int,
    workspaces: frozenset[int],
) -> None:
    """Between now and the instant next_change names, time alone changes no answer."""
    node = parse_criteria(doc, Catalog())
    profile = with_plays(profile, times)
    now = TS_BASE + later
    at = next_change(node, Subject(profile, workspaces, now))
    answer = evaluate(node, Subject(profile, workspaces, now))
    until = (at - 1) if at is not None else now + 10 * DAY_MS
    for instant in {i for i in (now + 1, (now + until) // 2, until) if now < i <= until}:
        assert evaluate(node, Subject(profile, workspaces, instant)) == answer


# Histories with times around the instants drawn: some ahead of now (counted from then).
plays_around = st.fixed_dictionaries(
    {},
    optional={
        key: st.lists(st.integers(TS_BASE - 4 * DAY_MS, TS_BASE + 4 * DAY_MS), max_size=5).map(
            sorted
        )
        for key in HISTORY_KEYS
    },
)


@st.composite
def timed_leaves(draw: st.DrawFn) -> dict[str, Any]:
    """Leaves time alone may change: event criteria with a window, mostly."""
    if draw(st.integers(0, 4)) == 0:
        return draw(leaves())
    count_key = draw(st.sampled_from(["at_least", "at_most", "exactly"]))
    event = draw(st.sampled_from(EVENTS))
    return {**event, count_key: draw(st.integers(0, 3)), "within_days": draw(st.integers(1, 3))}


@settings(max_examples=300)
@given(
    criteria | criteria_trees(timed_leaves(), max_leaves=4),
    two_workspace_profiles(),
    plays_around,
    st.integers(0, 3 * DAY_MS),
    audience_workspaces,
)
def test_compiled_and_interpreted_next_change_agree(
    doc: dict[str, Any],
    profile: Profile,
    times: dict[str, list[int]],
    later: int,
    workspaces: frozenset[int],
) -> None:
    node = parse_criteria(doc, Catalog())
    subject = Subject(with_plays(profile, times), workspaces, TS_BASE + later)
    compiled = compile_next_change(node)
    assert (compiled(subject) if compiled is not None else None) == next_change(node, subject)


# --- event conditions ------------------------------------------------------------------

_CONDITION_KEYS = ["genre", "length", "category"]
_EVENT_VALUES = st.one_of(
    st.none(),
    _texts(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.booleans(),
    st.just("none"),
    st.lists(st.one_of(st.none(), _texts(), st.just("none"), st.integers(-5, 5)), max_size=3),
)


@st.composite
def event_conditions(draw: st.DrawFn) -> dict[str, Any]:
    leaf = draw(_leaves().filter(lambda doc: "attribute" in doc))
    of = draw(st.sampled_from(["attribute", "product"]))
    return {**leaf, "attribute": None, of: draw(st.sampled_from(_CONDITION_KEYS))}


@st.composite
def conditioned_events(draw: st.DrawFn) -> tuple[dict[str, Any], EventFact]:
    """A commerce event criterion with an action and conditions, and an event to test."""
    conditions = draw(st.lists(event_conditions(), min_size=1, max_size=3))
    doc: dict[str, Any] = {
        "event": "commerce_event",
        "where": [{k: v for k, v in c.items() if v is not None} for c in conditions],
    }
    if draw(st.booleans()):
        doc["action"] = draw(st.sampled_from(["purchase", "add_to_cart"]))
    values = st.dictionaries(st.sampled_from(_CONDITION_KEYS), _EVENT_VALUES, max_size=3)
    event = EventFact(
        event_type="commerce_event",
        timestamp_ms=TS_BASE + draw(st.integers(0, DAY_MS)),
        action=draw(st.none() | st.sampled_from(["purchase", "Purchase", "add_to_cart"])),
        attributes=draw(values),
        products=tuple(draw(st.lists(values, max_size=3))),
    )
    return doc, event


@settings(max_examples=500)
@given(conditioned_events())
def test_compiled_event_filter_and_interpreted_agree(
    case: tuple[dict[str, Any], EventFact],
) -> None:
    doc, event = case
    node = parse_criteria(doc, Catalog())
    assert isinstance(node, EventCriterion)
    assert compile_event_filter(node)(event) == event_passes(node, event)


@pytest.mark.parametrize(("op", "passes"), [("equals", False), ("not_equals", True)])
def test_a_null_in_a_list_is_a_missing_value_to_compiled_conditions(op: str, passes: bool) -> None:
    doc = {
        "event": "custom_event",
        "name": "Play",
        "where": [{"attribute": "tags", "op": op, "value": "none"}],
    }
    node = parse_criteria(doc, Catalog())
    assert isinstance(node, EventCriterion)
    event = EventFact(
        event_type="custom_event", timestamp_ms=TS_BASE, name="Play", attributes={"tags": [None]}
    )
    assert event_passes(node, event) is passes
    assert compile_event_filter(node)(event) is passes
