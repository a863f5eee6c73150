"""Partial aggregates of a calculated attribute (CA-2), pure: which events count for a
calculation type, an aggregate extended with them, and two aggregates merged
(associatively and commutatively, so per-day aggregates and seeds combine in any order)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar, get_args

import msgspec

from kindred.domain.numbers import number_of
from kindred.domain.observation import Scalar

__all__ = [
    "CALCULATION_TYPES",
    "COUNTED",
    "EXTEND",
    "MAX_DISTINCT",
    "MIN_TS",
    "NEEDS_VALUE",
    "NONE",
    "NUMERIC",
    "Agg",
    "CalculationType",
    "Item",
    "merge_agg",
]

MIN_TS = -(2**63)  # before every timestamp
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
# A counted event: its timestamp and the values it carries for the attribute read.
Item = tuple[int, Sequence[Scalar]]


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


NONE = Agg()  # of no events yet: what a new one is extended from


# --- which events count ------------------------------------------------------------------


def _numbers_counted(events: Sequence[Item], start: int) -> list[Item]:
    """The events from `start` on with a number (converted) among their values."""
    counted: list[Item] = []
    for ts_ms, given in events:
        if ts_ms < start:
            continue
        if len(given) == 1:  # an event's own attribute: the common case
            number = _numeric(given[0])
            if number is not None:
                counted.append((ts_ms, (number,)))
            continue
        numbers = [n for v in given if (n := _numeric(v)) is not None]
        if numbers:
            counted.append((ts_ms, numbers))
    return counted


def _values_counted(events: Sequence[Item], start: int) -> list[Item]:
    """The events from `start` on with a value."""
    return [(ts_ms, given) for ts_ms, given in events if ts_ms >= start and given]


def _all_counted(events: Sequence[Item], start: int) -> Sequence[Item]:
    """The events from `start` on."""
    return events if start == MIN_TS else [item for item in events if item[0] >= start]


# --- extending ---------------------------------------------------------------------------


def _count_of(held: Agg, items: Sequence[Item]) -> Agg:
    return Agg(n=held.n + len(items))


def _numbers(items: Sequence[Item]) -> list[float]:
    return [v for _, values in items for v in values]  # type: ignore[misc]  # numbers by now (_numbers_counted)


# Each calculation type keeps only what its value reads (and `n`: how many counted).


def _total_of(held: Agg, items: Sequence[Item]) -> Agg:
    numbers = _numbers(items)
    return Agg(n=held.n + len(numbers), total=held.total + sum(numbers))


def _low_of(held: Agg, items: Sequence[Item]) -> Agg:
    numbers = _numbers(items)
    low = min(numbers)
    if held.low is not None and held.low < low:
        low = held.low
    return Agg(n=held.n + len(numbers), low=low)


def _high_of(held: Agg, items: Sequence[Item]) -> Agg:
    numbers = _numbers(items)
    high = max(numbers)
    if held.high is not None and held.high > high:
        high = held.high
    return Agg(n=held.n + len(numbers), high=high)


def _distinct_of(held: Agg, items: Sequence[Item]) -> Agg:
    counts = dict(held.counts)
    for _, values in items:
        for v in values:
            text = _text(v)
            if text in counts:
                counts[text] += 1
            elif len(counts) < MAX_DISTINCT:
                counts[text] = 1
    return Agg(n=held.n + len(items), counts=counts)


def _first_of(held: Agg, items: Sequence[Item]) -> Agg:
    ts_ms, values = items[0]
    first = held.first if held.first is not None else (ts_ms, values[0])
    for ts_ms, values in items:
        first = _earlier(first, (ts_ms, values[0]))
    return Agg(n=held.n + len(items), first=first)


def _last_of(held: Agg, items: Sequence[Item]) -> Agg:
    ts_ms, values = items[0]
    last = held.last if held.last is not None else (ts_ms, values[-1])
    for ts_ms, values in items:
        last = _later(last, (ts_ms, values[-1]))
    return Agg(n=held.n + len(items), last=last)


def _first_time_of(held: Agg, items: Sequence[Item]) -> Agg:
    low = min(ts for ts, _ in items)
    if held.first is not None and held.first[0] < low:
        low = held.first[0]
    return Agg(n=held.n + len(items), first=(low, low))


def _last_time_of(held: Agg, items: Sequence[Item]) -> Agg:
    high = max(ts for ts, _ in items)
    if held.last is not None and held.last[0] > high:
        high = held.last[0]
    return Agg(n=held.n + len(items), last=(high, high))


# An aggregate (`NONE` for none yet) with counted events added, by calculation type.
EXTEND: dict[str, Callable[[Agg, Sequence[Item]], Agg]] = {
    "count": _count_of,
    "sum": _total_of,
    "average": _total_of,
    "min": _low_of,
    "max": _high_of,
    **dict.fromkeys(_DISTINCT, _distinct_of),
    "first_occurrence": _first_of,
    "last_occurrence": _last_of,
    "first_occurrence_timestamp": _first_time_of,
    "last_occurrence_timestamp": _last_time_of,
}


# The events that count for a calculation type (from a start, with what it reads).
COUNTED: dict[str, Callable[[Sequence[Item], int], Sequence[Item]]] = {
    **dict.fromkeys(CALCULATION_TYPES, _all_counted),
    **dict.fromkeys(NEEDS_VALUE, _values_counted),
    **dict.fromkeys(NUMERIC, _numbers_counted),
}


def _numeric(value: Scalar) -> float | None:
    """Numbers and numeric strings (the reference converts them: plain decimal numerals,
    as audience criteria read them); never booleans, never an infinity."""
    kind = type(value)
    number: float | None
    if kind is float:
        number = value  # type: ignore[assignment]  # a float
    elif kind is int:
        number = float(value)
    else:
        number = number_of(value)
    return number if number is not None and math.isfinite(number) else None


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        first=_either(a.first, b.first, _earlier),
        last=_either(a.last, b.last, _later),
    )


Occurrence = tuple[int, Scalar]


def _earlier(a: Occurrence, b: Occurrence) -> Occurrence:
    """The earlier occurrence; at one instant the value first in alphabetical order (a
    fixed order, whatever order the events came in), `a` on a tie."""
    if a[0] != b[0]:
        return a if a[0] < b[0] else b
    return a if _text(a[1]) <= _text(b[1]) else b


def _later(a: Occurrence, b: Occurrence) -> Occurrence:
    """The later occurrence; at one instant the value last in alphabetical order."""
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return a if _text(a[1]) >= _text(b[1]) else b


def _either(a: T | None, b: T | None, pick: Callable[[T, T], T]) -> T | None:
    if a is None or b is None:
        return b if a is None else a
    return pick(a, b)


def _least(a: float | None, b: float | None) -> float | None:
    return _either(a, b, min)


def _most(a: float | None, b: float | None) -> float | None:
    return _either(a, b, max)


def _merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Counts of both; values past MAX_DISTINCT distinct ones are not collected."""
    merged = dict(a)
    if len(a) + len(b) <= MAX_DISTINCT:  # no value left out: the order does not matter
        for value, count in b.items():
            merged[value] = merged.get(value, 0) + count
        return merged
    for value in sorted(b):
        if value in merged:
            merged[value] += b[value]
        elif len(merged) < MAX_DISTINCT:
            merged[value] = b[value]
    return merged
