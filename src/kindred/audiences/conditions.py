"""How one stored value passes one condition of a criteria tree (AUD-2 … AUD-4): the rules
the evaluator, the compiled filters and SQL's `kindred_test` all follow.

Strings compare case-insensitively; a pattern's `*` matches any run of characters and `?`
one character. Fixed dates are UTC days: before excludes the day, after includes it, on
covers the whole day, between includes both days. Recency counts 24-hour days back from
now. A number written as a string ("342.1") compares as a number.
"""

from __future__ import annotations

import datetime
import re
from functools import lru_cache

from kindred.audiences.ast import Condition
from kindred.audiences.parse import parse_date
from kindred.domain.numbers import number_of

__all__ = ["DAY_MS", "ISO_INSTANT", "NEGATIVE", "instant", "matches", "pattern_regex", "text"]

DAY_MS = 86_400_000
# Operators that hold for a profile without the value, and must hold in every workspace.
NEGATIVE = frozenset({"not_exists", "not_contains", "not_equals", "not_includes"})


def matches(test: Condition, value: object, now_ms: int) -> bool:
    """Whether one stored value passes the test (a list passes when a member does, except
    for the list operators, which look at the list as a whole)."""
    op = test.op
    if op in ("exists", "not_exists"):
        return (value is not None) == (op == "exists")
    if value is None:
        return op in NEGATIVE
    if op in ("includes", "not_includes", "partial_match"):
        return _list_test(op, test.value, value)
    if isinstance(value, list):
        return any(matches(test, item, now_ms) for item in value)
    return _scalar_test(op, test.value, value, now_ms)


def _scalar_test(op: str, wanted: object, value: object, now_ms: int) -> bool:
    if op in ("contains", "not_contains", "equals", "not_equals", "pattern"):
        return _string_test(op, wanted, value)
    if op in ("is_true", "is_false"):
        truth = value is True or (not isinstance(value, bool) and text(value) == "true")
        falsity = value is False or (not isinstance(value, bool) and text(value) == "false")
        return truth if op == "is_true" else falsity
    if op in ("eq", "ne", "lt", "le", "gt", "ge", "between"):
        return _compare(op, wanted, value)
    return _date(op, wanted, value, now_ms)


def _string_test(op: str, wanted: object, value: object) -> bool:
    stored, needle = text(value), text(wanted)
    if op == "pattern":
        return _pattern(str(wanted)).fullmatch(stored) is not None
    if op in ("contains", "not_contains"):
        return (needle in stored) == (op == "contains")
    return (needle == stored) == (op == "equals")


def text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


# An ISO date or date-time; a time without an offset is UTC.
ISO_INSTANT = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])?)?"
)
_ISO_INSTANT = re.compile(ISO_INSTANT)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_MS = datetime.timedelta(milliseconds=1)


def _list_test(op: str, wanted: object, value: object) -> bool:
    items = [text(v) for v in (value if isinstance(value, list) else [value])]
    needle = text(wanted)
    if op == "partial_match":
        return any(needle in item for item in items)
    return (needle in items) == (op == "includes")


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern_regex(pattern.lower()), re.DOTALL)


def pattern_regex(pattern: str) -> str:
    """`*` any run of characters, `?` one character, everything else itself."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _compare(op: str, wanted: object, value: object) -> bool:
    number = number_of(value)
    if number is None:
        return False
    if op == "between":
        assert isinstance(wanted, tuple)
        return float(wanted[0]) <= number <= float(wanted[1])
    target = float(wanted)  # type: ignore[arg-type]  # checked to be a number when saved
    return {
        "eq": number == target,
        "ne": number != target,
        "lt": number < target,
        "le": number <= target,
        "gt": number > target,
        "ge": number >= target,
    }[op]


def instant(value: object) -> int | None:
    """A stored date: epoch milliseconds, or an ISO date or date-time (UTC unless it says);
    fractions of a millisecond are dropped (toward the past for ISO text)."""
    number = number_of(value)
    if number is not None:
        return int(number)
    if not isinstance(value, str) or not _ISO_INSTANT.fullmatch(value):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:  # a day or month that does not exist
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return (moment - _EPOCH) // _ONE_MS


def _date(op: str, wanted: object, value: object, now_ms: int) -> bool:
    at = instant(value)
    if at is None:
        return False
    if op in ("within_last_days", "not_within_last_days"):
        assert isinstance(wanted, int)
        since = now_ms - wanted * DAY_MS
        return since <= at <= now_ms if op == "within_last_days" else at < since
    if op == "between_dates":
        assert isinstance(wanted, tuple)
        return parse_date(str(wanted[0])) <= at < parse_date(str(wanted[1])) + DAY_MS
    day = parse_date(str(wanted))
    if op == "before":
        return at < day
    if op == "after":
        return at >= day
    return day <= at < day + DAY_MS  # on
