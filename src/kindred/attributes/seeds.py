"""Seeds (CA seeding API): the starting aggregate of a calculated attribute, from the
reference's shapes: `value`, `key_value_pairs` (average: sum and count; most_frequent:
value -> count) or `list` (unique_list, unique_values_count)."""

from __future__ import annotations

import datetime
import math

from kindred.domain.calculated import Agg, CalcState
from kindred.domain.errors import InvalidBatch

__all__ = ["seed_agg", "seeded"]

_VALUE_KINDS = {"count", "sum", "min", "max"}


def seeded(state: CalcState, seed: dict[str, object], cutoff: str, name: str) -> CalcState:
    """An empty state of the same definition, started from the seed: events before the
    cutoff no longer count (the seed stands for them); fold the later ones in again."""
    return CalcState(
        spec=state.spec,
        digest=state.digest,
        seed=seed_agg(state.spec.kind, seed, name),
        cutoff_ms=cutoff_instant(cutoff, name),
    )


def cutoff_instant(text: str, name: str) -> int:
    try:
        day = datetime.date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidBatch(f"{name}: cutoff_date is yyyy-MM-dd", "cutoff_date") from None
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return int(start.timestamp() * 1000)


def seed_agg(kind: str, seed: dict[str, object], name: str) -> Agg:
    """The aggregate the seed stands for; InvalidBatch "<name>: <reason>" otherwise."""
    try:
        if kind in _VALUE_KINDS or kind.endswith("occurrence") or kind.endswith("timestamp"):
            return _from_value(kind, seed["value"])
        if kind == "average":
            pairs = _pairs(seed)
            return Agg(n=_count(pairs["count"]), total=_num(pairs["sum"]))
        if kind == "most_frequent":
            counts = {str(k): _count(v) for k, v in _pairs(seed).items()}
            return Agg(n=sum(counts.values()), counts=counts)
        values = seed["list"]
        if not isinstance(values, list):
            raise TypeError("list")
        return Agg(n=len(values), counts={str(v): 1 for v in values})
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidBatch(f"{name}: seed does not fit {kind} ({exc})", "seed") from None


def _from_value(kind: str, value: object) -> Agg:
    if kind == "count":
        return Agg(n=_count(value))
    if kind in ("sum", "min", "max"):
        x = _num(value)
        return Agg(n=1, total=x, low=x, high=x)
    if kind.endswith("timestamp"):
        ts = int(_num(value))
        return Agg(n=1, first=(ts, ts), last=(ts, ts))
    if not isinstance(value, str | int | float | bool):
        raise TypeError("value")
    return Agg(n=1, first=(0, value), last=(0, value))


def _pairs(seed: dict[str, object]) -> dict[str, object]:
    pairs = seed["key_value_pairs"]
    if not isinstance(pairs, dict):
        raise TypeError("key_value_pairs")
    return pairs


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _count(value: object) -> int:
    number = _num(value)
    if number < 0 or number != int(number) or number >= 2**63:
        raise ValueError("a count is a whole number from 0")
    return int(number)
