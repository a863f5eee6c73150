"""Calculated attribute states: incremental equals from scratch, merge equals the union."""

from __future__ import annotations

import datetime
import math
import re
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.calculated import (
    CALCULATION_TYPES,
    DAY_MS,
    CalcSpec,
    CalcState,
    fold,
    merge_states,
)
from kindred.domain.calculated_entries import with_values
from kindred.domain.calculated_values import next_change, value
from kindred.domain.merge import merge_profiles
from kindred.domain.observation import Scalar
from kindred.domain.profile import Profile, WorkspaceProfile

BASE = 1_700_000_000_000 // DAY_MS * DAY_MS
Event = tuple[int, list[Scalar]]

values = st.one_of(
    st.integers(-50, 50),
    st.sampled_from(["7", "12", "x", "y", "zz", "-3", "2.5", " 5", "1_000", "nan", "inf"]),
    st.booleans(),
)
events = st.lists(
    st.tuples(st.integers(0, 40 * DAY_MS), st.lists(values, max_size=3)), max_size=25
).map(lambda es: [(BASE + ts, vs) for ts, vs in es])
specs = st.builds(
    CalcSpec,
    kind=st.sampled_from(sorted(CALCULATION_TYPES)),
    within_days=st.one_of(st.none(), st.integers(1, 20)),
).flatmap(
    lambda s: st.one_of(
        st.just(s),
        st.integers(0, 40).map(lambda d: CalcSpec(kind=s.kind, since_ms=BASE + d * DAY_MS))
        if s.within_days is None
        else st.just(s),
    )
)


def _numeric(v: Scalar) -> float | None:
    """Numbers, and text in plain decimal notation; never booleans or infinities."""
    if isinstance(v, bool):
        return None
    if isinstance(v, str) and not re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", v):
        return None
    number = float(v)
    return number if math.isfinite(number) else None


def _text(v: Scalar) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _iso(ts: int) -> str:
    moment = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_scratch(spec: CalcSpec, evs: list[Event], now: int) -> object:  # noqa: PLR0911 - one return per kind
    """The value computed directly from the events inside the window at `now`."""
    kept = [(ts, vs) for ts, vs in evs if spec.since_ms is None or ts >= spec.since_ms]
    if spec.within_days is not None:
        today = now // DAY_MS
        kept = [(ts, vs) for ts, vs in kept if today - spec.within_days < ts // DAY_MS <= today]
    kind = spec.kind
    if kind == "count":
        return len(kept)
    if kind.endswith("timestamp"):
        stamps = [ts for ts, _ in kept]
        pick = min if kind.startswith("first") else max
        return _iso(pick(stamps)) if stamps else None
    with_values = [(ts, vs) for ts, vs in kept if vs]
    if kind in ("first_occurrence", "last_occurrence"):
        if not with_values:
            return None
        if kind == "first_occurrence":
            return min((ts, _text(vs[0]), vs[0]) for ts, vs in with_values)[2]
        return max((ts, _text(vs[-1]), vs[-1]) for ts, vs in with_values)[2]
    flat = [v for _, vs in with_values for v in vs]
    if kind in ("sum", "min", "max", "average"):
        numbers = [n for n in map(_numeric, flat) if n is not None]
        if kind == "sum":
            return sum(numbers)
        if not numbers:
            return None
        return {"min": min, "max": max}.get(kind, lambda ns: sum(ns) / len(ns))(numbers)
    counts = Counter(map(_text, flat))
    if kind == "unique_values_count":
        return len(counts)
    if kind == "unique_list":
        return sorted(counts) or None
    return min(counts, key=lambda v: (-counts[v], v)) if counts else None


def incremental(spec: CalcSpec, evs: list[Event], now: int, start: int) -> CalcState:
    """Events folded one by one, each received at a time between `start` and `now`."""
    state = CalcState(spec=spec, digest="d")
    received = start
    step = (now - start) // max(len(evs), 1)
    for ts, vs in evs:
        received = min(received + step, now)
        state = fold(state, ts, vs, received)
    return state


def same(a: object, b: object) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@settings(max_examples=400)
@given(specs, events, st.integers(0, 60 * DAY_MS), st.integers(0, 5 * DAY_MS))
def test_incremental_value_equals_a_computation_from_scratch(
    spec: CalcSpec, evs: list[Event], later: int, spread: int
) -> None:
    now = BASE + later + spread
    state = incremental(spec, evs, now, BASE + later)
    assert same(value(state, now), from_scratch(spec, evs, now))


@settings(max_examples=400)
@given(specs, events, events, st.integers(0, 60 * DAY_MS))
def test_merged_states_equal_a_computation_over_the_union(
    spec: CalcSpec, a: list[Event], b: list[Event], later: int
) -> None:
    now = BASE + later
    merged = merge_states(incremental(spec, a, now, BASE), incremental(spec, b, now, BASE))
    assert same(value(merged, now), from_scratch(spec, a + b, now))
    flipped = merge_states(incremental(spec, b, now, BASE), incremental(spec, a, now, BASE))
    assert same(value(flipped, now), value(merged, now))


@settings(max_examples=200)
@given(specs, events, st.integers(0, 60 * DAY_MS), st.integers(0, 30 * DAY_MS))
def test_the_value_changes_only_at_the_scheduled_instants(
    spec: CalcSpec, evs: list[Event], later: int, wait: int
) -> None:
    now = BASE + later
    state = incremental(spec, evs, now, BASE)
    due = next_change(state, now)
    until = now + wait if due is None else min(now + wait, due - 1)
    assert same(value(state, until), value(state, now))
    if due is not None:
        assert due > now


def test_a_windowed_count_decays_without_new_events() -> None:
    state = CalcState(spec=CalcSpec(kind="count", within_days=7), digest="d")
    for day in (0, 2, 3):
        state = fold(state, BASE + day * DAY_MS, [], BASE + 3 * DAY_MS)
    now = BASE + 3 * DAY_MS
    assert value(state, now) == 3
    assert next_change(state, now) == BASE + 7 * DAY_MS
    assert value(state, BASE + 7 * DAY_MS) == 2
    assert value(state, BASE + 10 * DAY_MS) == 0
    assert next_change(state, BASE + 10 * DAY_MS) is None


def test_merging_two_profiles_merges_their_states_and_values() -> None:
    spec = CalcSpec(kind="sum")

    def profile(mpid: int, amounts: list[int]) -> Profile:
        state = incremental(spec, [(BASE, [a]) for a in amounts], BASE, BASE)
        workspace = with_values(
            WorkspaceProfile(first_seen_ms=BASE, last_seen_ms=BASE, calculated={"spent": state}),
            BASE,
        )
        return Profile(
            mpid=mpid, scope="s", created_ms=BASE, last_stored_ms=BASE, workspaces={1: workspace}
        )

    a, b = profile(1, [5, 7]), profile(2, [30])
    assert a.workspaces[1].attributes["spent"].value == 12
    merged, _ = merge_profiles(a, b)
    assert merged.workspaces[1].attributes["spent"].value == 42
    assert merged.workspaces[1].attributes["spent"].source == "calculated"
