"""The compiled closures answer exactly as the reference tree walker, and simplifying a
tree never changes its answer: for random criteria over random profiles and instants."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.audiences.compile import compile_node
from kindred.audiences.evaluate import DAY_MS, Subject, evaluate, event_key
from kindred.audiences.parse import Catalog, parse_criteria
from kindred.audiences.simplify import simplify
from kindred.audiences.timing import next_change
from kindred.domain.profile import Profile
from tests.strategies import ATTRIBUTE_KEYS, TS_BASE, WORKSPACE_ID, criteria_trees, profiles

_STRING_OPS = ["equals", "not_equals", "contains", "not_contains", "pattern"]
_LIST_OPS = ["includes", "not_includes", "partial_match"]
_NUMBER_OPS = ["eq", "ne", "lt", "le", "gt", "ge"]


def _texts() -> st.SearchStrategy[str]:
    return st.sampled_from(["a", "x", "gold", "1", "true", "2.5", "*", "?", "Jazz"])


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0911 - one return per kind
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
    doc: dict[str, Any] = {
        "event": "custom_event",
        "name": "Play",
        count_key: draw(st.integers(0, 3)),
    }
    if draw(st.booleans()):
        doc["within_days"] = draw(st.integers(1, 3))
    return doc


criteria = criteria_trees(leaves(), max_leaves=6)
plays = st.lists(st.integers(TS_BASE - 4 * DAY_MS, TS_BASE), max_size=5).map(sorted)


def with_plays(profile: Profile, times: list[int]) -> Profile:
    history = {event_key("custom_event", "Play"): times} if times else {}
    return msgspec.structs.replace(profile, event_times=history)


@settings(max_examples=300)
@given(criteria, profiles(), plays, st.integers(0, 3 * DAY_MS))
def test_compiled_and_interpreted_agree(
    doc: dict[str, Any], profile: Profile, times: list[int], later: int
) -> None:
    node = parse_criteria(doc, Catalog())
    subject = Subject(with_plays(profile, times), frozenset({WORKSPACE_ID}), TS_BASE + later)
    assert compile_node(node)(subject) == evaluate(node, subject)


@settings(max_examples=300)
@given(criteria, profiles(), plays, st.integers(0, 3 * DAY_MS))
def test_simplifying_never_changes_the_answer(
    doc: dict[str, Any], profile: Profile, times: list[int], later: int
) -> None:
    node = parse_criteria(doc, Catalog())
    subject = Subject(with_plays(profile, times), frozenset({WORKSPACE_ID}), TS_BASE + later)
    assert evaluate(simplify(node), subject) == evaluate(node, subject)


@settings(max_examples=300)
@given(criteria, profiles(), plays, st.integers(0, 3 * DAY_MS))
def test_nothing_changes_before_the_next_change(
    doc: dict[str, Any], profile: Profile, times: list[int], later: int
) -> None:
    """Between now and the instant next_change names, time alone changes no answer."""
    node = parse_criteria(doc, Catalog())
    profile = with_plays(profile, times)
    now = TS_BASE + later
    at = next_change(node, Subject(profile, frozenset({WORKSPACE_ID}), now))
    answer = evaluate(node, Subject(profile, frozenset({WORKSPACE_ID}), now))
    until = (at - 1) if at is not None else now + 10 * DAY_MS
    for instant in {i for i in (now + 1, (now + until) // 2, until) if now < i <= until}:
        assert evaluate(node, Subject(profile, frozenset({WORKSPACE_ID}), instant)) == answer
