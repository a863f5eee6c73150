"""A calculated attribute state's value at an instant, and the next instant time alone
changes it (CA-2), pure."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable

from kindred.domain.calculated import DAY_MS, Agg, CalcSpec, CalcState, merge_agg
from kindred.domain.observation import Scalar

__all__ = ["Value", "next_change", "total", "value"]

# A calculated attribute's value: none when nothing was counted (or all left the window).
Value = Scalar | list[Scalar] | None


def total(state: CalcState, now_ms: int) -> Agg:
    """The aggregate of the seed and every bucket inside the window at `now_ms`."""
    spec = state.spec
    if state.seed is None and spec.within_days is None:
        return state.buckets.get(0) or Agg()  # the one bucket of a lifetime or since window
    low, high = _window_days(spec, now_ms)
    inside = [day for day in state.buckets if low <= day <= high]
    if state.seed is None and len(inside) == 1:
        return state.buckets[inside[0]]
    result = state.seed or Agg()
    for day in sorted(inside):
        result = merge_agg(spec.kind, result, state.buckets[day])
    return result


def _window_days(spec: CalcSpec, now_ms: int) -> tuple[int, int]:
    if spec.within_days is None:
        return 0, 0
    today = now_ms // DAY_MS
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


# Timestamp values are read again on every batch that counts an event, mostly unchanged.
@functools.lru_cache(maxsize=4096)
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
    within = state.spec.within_days
    if within is None or not state.buckets:
        return None
    low, high = _window_days(state.spec, now_ms)
    oldest_inside = entering = None
    for day in state.buckets:
        if day > high:
            if entering is None or day < entering:
                entering = day
        elif day >= low and (oldest_inside is None or day < oldest_inside):
            oldest_inside = day
    leaves = None if oldest_inside is None else (oldest_inside + within) * DAY_MS
    if entering is None:
        return leaves
    return entering * DAY_MS if leaves is None else min(leaves, entering * DAY_MS)
