"""Calculated attribute state (CA-2), pure: fold one event in, read the value at an
instant, merge two states, and the next instant time alone changes the value.

A state keeps partial aggregates (`Agg`) that merge associatively: one for the whole
lifetime (or since a date), or one per UTC day for "within the last N days" windows, so a
windowed value decays exactly as its oldest days leave the window. A seed (an aggregate
set from an external system) stands for everything before its cutoff: events before the
cutoff are not folded, so the seeded period is never counted twice, and rolling windows
never decrement the seed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, get_args

import msgspec

from kindred.domain.observation import Scalar

__all__ = [
    "CALCULATION_TYPES",
    "DAY_MS",
    "MAX_DISTINCT",
    "Agg",
    "CalcSpec",
    "CalcState",
    "CalculationType",
    "fold",
    "fold_values",
    "merge_states",
    "next_change",
    "value",
]

DAY_MS = 86_400_000
_MIN = -(2**63)
# `most_frequent` and the unique types stop collecting new values past this many.
MAX_DISTINCT = 100

CalculationType = Literal[
    "count",
    "sum",
    "min",
    "max",
    "average",
    "most_frequent",
    "unique_values_count",
    "unique_list",
    "first_occurrence",
    "last_occurrence",
    "first_occurrence_timestamp",
    "last_occurrence_timestamp",
]
CALCULATION_TYPES: frozenset[str] = frozenset(get_args(CalculationType))
# The types that read a value of the event (the others only that it happened).
NEEDS_VALUE = CALCULATION_TYPES - {
    "count",
    "first_occurrence_timestamp",
    "last_occurrence_timestamp",
}
NUMERIC = frozenset({"sum", "min", "max", "average"})
_DISTINCT = frozenset({"most_frequent", "unique_values_count", "unique_list"})
T = TypeVar("T")
Value = Scalar | list[Scalar] | None


class Agg(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A partial aggregate over some events; merges associatively and commutatively."""

    n: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    # Distinct values (as text, as the reference stores them) and how often each came.
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    # (timestamp, value) of the earliest and latest occurrence.
    first: tuple[int, Scalar] | None = None
    last: tuple[int, Scalar] | None = None


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
    state: CalcState, events: Iterable[tuple[int, Sequence[Scalar]]], now_ms: int
) -> CalcState:
    """The state with matching events folded in (one new aggregate per day touched, so a
    batch costs one merge however many events it has)."""
    spec = state.spec
    kind, windowed = spec.kind, spec.within_days is not None
    oldest = _day(now_ms) - spec.within_days + 1 if spec.within_days is not None else None
    start = max(state.cutoff_ms or _MIN, spec.since_ms or _MIN)
    numeric, needs_value = kind in NUMERIC, kind in NEEDS_VALUE
    by_bucket: dict[int, list[tuple[int, Sequence[Scalar]]]] = {}
    for ts_ms, given in events:
        if ts_ms < start:
            continue  # before the seed's cutoff (the seed stands for it) or the window
        values: Sequence[Scalar] = (
            [n for v in given if (n := _numeric(v)) is not None] if numeric else given
        )
        if needs_value and not values:
            continue
        key = ts_ms // DAY_MS if windowed else 0
        if oldest is not None and key < oldest:
            continue
        items = by_bucket.get(key)
        if items is None:
            by_bucket[key] = [(ts_ms, values)]
        else:
            items.append((ts_ms, values))
    if not by_bucket:
        return state
    buckets = state.buckets
    if oldest is not None and buckets and min(buckets) < oldest:
        buckets = {d: a for d, a in buckets.items() if d >= oldest}
    else:
        buckets = dict(buckets)
    for key, items in by_bucket.items():
        fresh = _agg_many(kind, items)
        held = buckets.get(key)
        buckets[key] = fresh if held is None else merge_agg(kind, held, fresh)
    return msgspec.structs.replace(state, buckets=buckets)


def _agg_many(kind: str, items: list[tuple[int, Sequence[Scalar]]]) -> Agg:
    """One aggregate of several matching events (their values already checked)."""
    if kind == "count":
        return Agg(n=len(items))
    if kind in NUMERIC:
        numbers = [float(v) for _, values in items for v in values]  # numbers already
        return Agg(n=len(numbers), total=sum(numbers), low=min(numbers), high=max(numbers))
    if kind in _DISTINCT:
        counts: dict[str, int] = {}
        for _, values in items:
            for v in values:
                text = _text(v)
                if text in counts:
                    counts[text] += 1
                elif len(counts) < MAX_DISTINCT:
                    counts[text] = 1
        return Agg(n=len(items), counts=counts)
    if kind in ("first_occurrence", "last_occurrence"):
        first = min(((ts, vs[0]) for ts, vs in items), key=_occurrence)
        last = max(((ts, vs[-1]) for ts, vs in items), key=_occurrence)
        return Agg(n=len(items), first=first, last=last)
    low, high = min(ts for ts, _ in items), max(ts for ts, _ in items)
    return Agg(n=len(items), first=(low, low), last=(high, high))


def _numeric(value: Scalar) -> float | None:
    """Numbers and numeric strings (the reference converts them); never booleans."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return None


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _day(ts_ms: int) -> int:
    return ts_ms // DAY_MS


# --- merging ----------------------------------------------------------------------------


def merge_agg(kind: str, a: Agg, b: Agg) -> Agg:
    if not a.n:
        return b
    if not b.n:
        return a
    if kind == "count":
        return Agg(n=a.n + b.n)
    if kind in NUMERIC:
        return Agg(
            n=a.n + b.n,
            total=a.total + b.total,
            low=_least(a.low, b.low),
            high=_most(a.high, b.high),
        )
    if kind in _DISTINCT:
        return Agg(n=a.n + b.n, counts=_merge_counts(a.counts, b.counts))
    return Agg(
        n=a.n + b.n,
        first=_least(a.first, b.first, _occurrence),
        last=_most(a.last, b.last, _occurrence),
    )


def _same(item: Any) -> Any:
    return item


def _occurrence(item: tuple[int, Scalar]) -> tuple[int, str]:
    # Ties at one instant go to a fixed order of the values (alphabetical).
    return item[0], _text(item[1])


def _least(a: T | None, b: T | None, key: Callable[[T], Any] = _same) -> T | None:
    if a is None or b is None:
        return b if a is None else a
    return a if key(a) <= key(b) else b


def _most(a: T | None, b: T | None, key: Callable[[T], Any] = _same) -> T | None:
    if a is None or b is None:
        return b if a is None else a
    return a if key(a) >= key(b) else b


def _merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Counts of both; values past MAX_DISTINCT distinct ones are not collected."""
    merged = dict(a)
    for value in sorted(b):
        if value in merged:
            merged[value] += b[value]
        elif len(merged) < MAX_DISTINCT:
            merged[value] = b[value]
    return merged


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


# --- reading ----------------------------------------------------------------------------


def total(state: CalcState, now_ms: int) -> Agg:
    """The aggregate of the seed and every bucket inside the window at `now_ms`."""
    spec = state.spec
    if state.seed is None and spec.within_days is None:
        return state.buckets.get(0) or Agg()  # the one bucket of a lifetime or since window
    result = state.seed or Agg()
    low, high = _window_days(spec, now_ms)
    for day in sorted(state.buckets):
        if low <= day <= high:
            result = merge_agg(spec.kind, result, state.buckets[day])
    return result


def _window_days(spec: CalcSpec, now_ms: int) -> tuple[int, int]:
    if spec.within_days is None:
        return 0, 0
    today = _day(now_ms)
    return today - spec.within_days + 1, today


def value(state: CalcState, now_ms: int) -> Value:
    """The attribute's value at `now_ms`: None when there is none (no event yet, or all
    left the window), 0 for counts and sums of nothing."""
    agg = total(state, now_ms)
    return _READ[state.spec.kind](agg)


def _number(x: float) -> int | float:
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _most_frequent(agg: Agg) -> Value:
    if not agg.counts:
        return None
    return min(agg.counts, key=lambda v: (-agg.counts[v], v))


def _iso(ts_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ts_ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(item: tuple[int, Scalar] | None) -> Value:
    return None if item is None else _iso(item[0])


_READ: dict[str, Callable[[Agg], Value]] = {
    "count": lambda a: a.n,
    "sum": lambda a: _number(a.total),
    "min": lambda a: None if a.low is None else _number(a.low),
    "max": lambda a: None if a.high is None else _number(a.high),
    "average": lambda a: None if not a.n else a.total / a.n,
    "most_frequent": _most_frequent,
    "unique_values_count": lambda a: len(a.counts),
    "unique_list": lambda a: list[Scalar](sorted(a.counts)) or None,
    "first_occurrence": lambda a: None if a.first is None else a.first[1],
    "last_occurrence": lambda a: None if a.last is None else a.last[1],
    "first_occurrence_timestamp": lambda a: _timestamp(a.first),
    "last_occurrence_timestamp": lambda a: _timestamp(a.last),
}


def next_change(state: CalcState, now_ms: int) -> int | None:
    """The next instant after `now_ms` at which time alone changes which buckets count:
    the oldest counted day leaving the window, or a future-dated day entering it."""
    if state.spec.within_days is None or not state.buckets:
        return None
    low, high = _window_days(state.spec, now_ms)
    inside = [d for d in state.buckets if low <= d <= high]
    later = [d for d in state.buckets if d > high]
    instants = [(min(inside) + state.spec.within_days) * DAY_MS] if inside else []
    instants += [min(later) * DAY_MS] if later else []
    return min(instants) if instants else None
