"""The operators of criteria documents and the checks of their values, shared by every
criterion the parser reads; each refusal names the path of the offending value."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping

from kindred.audiences.ast import Condition
from kindred.domain.errors import InvalidBatch

__all__ = [
    "BOOL_OPS",
    "DATE_OPS",
    "MAX_DAYS",
    "NUMBER_OPS",
    "OPERATORS",
    "PRESENCE_OPS",
    "STRING_OPS",
    "condition_of",
    "count_value",
    "days_value",
    "number_value",
    "only_keys",
    "parse_date",
    "text_value",
]

# The longest span of days a criterion or a lookback window may name: a hundred years.
MAX_DAYS = 36_500
INT64_MAX = 2**63 - 1

STRING_OPS = frozenset(
    {
        "contains",
        "not_contains",
        "equals",
        "not_equals",
        "pattern",
        "includes",
        "not_includes",
        "partial_match",
    }
)
NUMBER_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "between"})
PRESENCE_OPS = frozenset({"exists", "not_exists"})
BOOL_OPS = frozenset({"is_true", "is_false"})
DATE_OPS = frozenset(
    {"before", "after", "on", "between_dates", "within_last_days", "not_within_last_days"}
)
OPERATORS = STRING_OPS | NUMBER_OPS | PRESENCE_OPS | BOOL_OPS | DATE_OPS


def only_keys(doc: Mapping[str, object], allowed: set[str], path: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise InvalidBatch(f"unknown key {extra[0]!r} here", f"{path}.{extra[0]}")


def text_value(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidBatch("expected a non-empty string", path)
    return value.strip()


def count_value(value: object, path: str, *, minimum: int, maximum: int = INT64_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidBatch(f"expected an integer from {minimum} to {maximum}", path)
    return value


def days_value(value: object, path: str) -> int:
    """A number of days: 1 to MAX_DAYS."""
    return count_value(value, path, minimum=1, maximum=MAX_DAYS)


def condition_of(doc: Mapping[str, object], path: str, allowed: frozenset[str]) -> Condition:
    op = doc.get("op")
    if not isinstance(op, str) or op not in allowed:
        raise InvalidBatch(f"op is one of {', '.join(sorted(allowed))}", f"{path}.op")
    return Condition(op, _operand(op, doc.get("value"), f"{path}.value"))


Operand = str | int | float | bool | tuple[str | float, ...] | None


def _operand(op: str, value: object, where: str) -> Operand:
    if op in PRESENCE_OPS or op in BOOL_OPS:
        if value is not None:
            raise InvalidBatch(f"{op} takes no value", where)
        return None
    if op == "equals":
        return scalar_value(value, where)
    if op in STRING_OPS:
        return text_value(value, where)
    return _SPECIAL_OPERANDS.get(op, _date_text)(value, where)


def _days(value: object, where: str) -> int:
    return days_value(value, where)


def _number_pair(value: object, where: str) -> tuple[float | str, ...]:
    return _pair(value, where, number_value)


def _date_pair(value: object, where: str) -> tuple[float | str, ...]:
    return _pair(value, where, _date_text)


def scalar_value(value: object, path: str) -> str | int | float | bool:
    if isinstance(value, str | int | float) and value != "":
        return value
    raise InvalidBatch("expected a string, number or boolean", path)


def number_value(value: object, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidBatch("expected a number", path)


def _date_text(value: object, path: str) -> str:
    text = text_value(value, path)
    parse_date(text, path)
    return text


def _pair(
    value: object, path: str, item: Callable[[object, str], float | str]
) -> tuple[float | str, float | str]:
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidBatch("expected a list of two: [from, to]", path)
    low, high = item(value[0], f"{path}[0]"), item(value[1], f"{path}[1]")
    if low > high:  # type: ignore[operator]  # both numbers or both ISO dates
        raise InvalidBatch("from is after to", path)
    return low, high


_SPECIAL_OPERANDS: dict[str, Callable[[object, str], Operand]] = {
    "between": _number_pair,
    "between_dates": _date_pair,
    "within_last_days": _days,
    "not_within_last_days": _days,
    **dict.fromkeys(("eq", "ne", "lt", "le", "gt", "ge"), number_value),
}


def parse_date(text: str, path: str = "value") -> int:
    """A UTC date `YYYY-MM-DD` as epoch milliseconds of its 00:00."""
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidBatch(f"{text!r} is not a date (YYYY-MM-DD, UTC)", path) from None
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    return int(start.timestamp() * 1000)
