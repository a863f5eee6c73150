"""Calculated attribute state (CA-2), pure: fold events in, merge two states (reading a
state's value is in `calculated_values`).

A state keeps partial aggregates (`Agg`) that merge associatively: one for the whole
lifetime (or since a date), or one per UTC day for "within the last N days" windows, so a
windowed value decays exactly as its oldest days leave the window. A seed (an aggregate
set from an external system) stands for everything before its cutoff: events before the
cutoff are not folded, so the seeded period is never counted twice, and rolling windows
never decrement the seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import msgspec

from kindred.domain.aggregates import (
    CALCULATION_TYPES,
    COUNTED,
    EXTEND,
    MAX_DISTINCT,
    MIN_TS,
    NEEDS_VALUE,
    NONE,
    Agg,
    CalculationType,
    Item,
    merge_agg,
)
from kindred.domain.observation import Scalar

# The aggregate names are re-exported: a state is read and written with them.
__all__ = [
    "CALCULATION_TYPES",
    "DAY_MS",
    "MAX_DISTINCT",
    "NEEDS_VALUE",
    "Agg",
    "CalcSpec",
    "CalcState",
    "CalculationType",
    "Folder",
    "Item",
    "fold",
    "fold_values",
    "folder",
    "merge_agg",
    "merge_states",
]

DAY_MS = 86_400_000


class CalcSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """What a state computes: the calculation and its window (`within_days` or `since_ms`,
    neither for the whole lifetime)."""

    kind: CalculationType
    within_days: int | None = None
    since_ms: int | None = None


class CalcState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One calculated attribute of one profile. `buckets` is keyed by UTC day for
    windowed specs and by 0 otherwise; `digest` names the definition it was computed
    for (an edited definition starts afresh)."""

    spec: CalcSpec
    digest: str = ""
    buckets: dict[int, Agg] = msgspec.field(default_factory=dict)
    seed: Agg | None = None
    cutoff_ms: int | None = None
    # The event log id up to which the history computed at activation was folded in.
    history_to: int = 0


# --- folding ----------------------------------------------------------------------------


def fold(state: CalcState, ts_ms: int, values: Sequence[Scalar], now_ms: int) -> CalcState:
    """The state with one matching event (its timestamp and the values it carries for the
    attribute, first product first) folded in; unchanged when the event falls outside."""
    return fold_values(state, [(ts_ms, values)], now_ms)


def fold_values(
    state: CalcState, events: Sequence[tuple[int, Sequence[Scalar]]], now_ms: int
) -> CalcState:
    """The state with matching events folded in (one new aggregate per day touched, so a
    batch costs one merge however many events it has)."""
    return folder(state.spec)(state, events, now_ms)


Folder = Callable[[CalcState, Sequence[Item], int], CalcState]


@functools.lru_cache(maxsize=4096)
def folder(spec: CalcSpec) -> Folder:
    """fold_values for states of `spec`, with what the spec decides looked up once (a
    batch folds into every matching state)."""
    counted_of, extend = COUNTED[spec.kind], EXTEND[spec.kind]
    since, within = spec.since_ms, spec.within_days

    def fold_into(state: CalcState, events: Sequence[Item], now_ms: int) -> CalcState:
        # Events before the seed's cutoff (the seed stands for them) or the window don't
        # count.
        start = state.cutoff_ms
        if since is not None and (start is None or since > start):
            start = since
        counted = counted_of(events, MIN_TS if start is None else start)
        if not counted:
            return state
        if within is None:  # the one bucket of a lifetime or since window
            held = state.buckets.get(0)
            bucket = extend(held if held is not None and held.n else NONE, counted)
            return msgspec.structs.replace(state, buckets={0: bucket})
        return _into_days(state, counted, extend, _day(now_ms) - within + 1)

    return fold_into


def _into_days(
    state: CalcState,
    counted: Sequence[Item],
    extend: Callable[[Agg, Sequence[Item]], Agg],
    oldest: int,
) -> CalcState:
    """The state with counted events added to the buckets of their days (those from
    `oldest` on), and the buckets of days before `oldest` dropped."""
    by_day = _by_day(counted, oldest)
    if not by_day:
        return state
    buckets = state.buckets
    if any(d < oldest for d in buckets):
        buckets = {d: a for d, a in buckets.items() if d >= oldest}
    else:
        buckets = dict(buckets)
    for day, items in by_day.items():
        held = buckets.get(day)
        buckets[day] = extend(held if held is not None and held.n else NONE, items)
    return msgspec.structs.replace(state, buckets=buckets)


def _by_day(items: Sequence[Item], oldest: int) -> dict[int, Sequence[Item]]:
    """The items by UTC day, those of days before `oldest` left out."""
    first = items[0][0] // DAY_MS
    for ts_ms, _ in items:
        if ts_ms // DAY_MS != first:
            break
    else:  # a batch: mostly one day
        return {first: items} if first >= oldest else {}
    by_day: dict[int, list[Item]] = {}
    for item in items:
        day = item[0] // DAY_MS
        if day >= oldest:
            held = by_day.get(day)
            if held is None:
                by_day[day] = [item]
            else:
                held.append(item)
    return dict(by_day)


def _day(ts_ms: int) -> int:
    return ts_ms // DAY_MS


def merge_states(a: CalcState, b: CalcState) -> CalcState:
    """Two profiles' states of one attribute as one (a profile merge): their buckets and
    seeds combined; a state computed for another definition gives way."""
    if a.digest != b.digest or a.spec != b.spec:
        return a if a.digest else b
    kind = a.spec.kind
    buckets = dict(a.buckets)
    for day, agg in b.buckets.items():
        buckets[day] = merge_agg(kind, buckets.get(day, Agg()), agg)
    seed = (
        b.seed if a.seed is None else a.seed if b.seed is None else merge_agg(kind, a.seed, b.seed)
    )
    cutoffs = [c for c in (a.cutoff_ms, b.cutoff_ms) if c is not None]
    return msgspec.structs.replace(
        a, buckets=buckets, seed=seed, cutoff_ms=max(cutoffs) if cutoffs else None
    )
