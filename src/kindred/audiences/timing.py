"""When time alone can change an answer (AUD-5): an event leaving a "last N days" window,
a date leaving "within the last N days" or entering "not within". The scheduler
re-evaluates a profile at the earliest such instant, without any new event."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from kindred.audiences.ast import (
    AccountAttributeCriterion,
    All,
    AnyOf,
    AttributeCriterion,
    CartAbandonment,
    EventCriterion,
    Exclude,
    FirstSeenCriterion,
    Node,
)
from kindred.audiences.evaluate import (
    DAY_MS,
    Subject,
    cart_histories,
    history_key,
    instant,
    window_ms,
)

__all__ = ["ChangeTime", "compile_next_change", "is_timed", "next_change"]

# A tree's next change for a subject (`next_change`), compiled for one tree.
ChangeTime = Callable[[Subject], int | None]

_RECENCY = ("within_last_days", "not_within_last_days")
# The criteria whose values may be dates recency tests read.
_DATED = (AttributeCriterion, AccountAttributeCriterion, FirstSeenCriterion)


def is_timed(node: Node) -> bool:
    """Whether the passing of time alone can change the tree's answer."""
    if isinstance(node, All | AnyOf):
        return any(is_timed(item) for item in node.items)
    if isinstance(node, Exclude):
        return is_timed(node.item)
    if isinstance(node, EventCriterion):
        return window_ms(node) is not None  # events leave its window, or the lookback
    if isinstance(node, CartAbandonment):
        return True
    if isinstance(node, _DATED):
        return node.test.op in _RECENCY
    return False


def next_change(node: Node, subject: Subject) -> int | None:
    """The earliest instant after `subject.now_ms` at which a leaf's answer may change
    with no new data; None when none can."""
    if isinstance(node, All | AnyOf):
        found = [t for t in (next_change(i, subject) for i in node.items) if t is not None]
        return min(found) if found else None
    if isinstance(node, Exclude):
        return next_change(node.item, subject)
    if isinstance(node, EventCriterion):
        return _event_change(node, subject)
    if isinstance(node, CartAbandonment):
        return _cart_change(node, subject)
    if isinstance(node, _DATED) and node.test.op in _RECENCY:
        return _recency_change(node, subject)
    return None


def _event_change(node: EventCriterion, subject: Subject) -> int | None:
    window = window_ms(node)
    if window is None:
        return None
    times = subject.profile.event_times.get(history_key(node), ())
    now = subject.now_ms
    upcoming = []
    leaving = bisect_left(times, now - window)  # times are kept sorted
    if leaving < len(times):
        upcoming.append(times[leaving] + window + 1)
    entering = bisect_right(times, now)  # an event stamped ahead of now counts from then
    if entering < len(times):
        upcoming.append(times[entering])
    return min(upcoming) if upcoming else None


def _cart_change(node: CartAbandonment, subject: Subject) -> int | None:
    """An add to the cart becomes abandoned `wait_minutes` after it, and stops counting
    when it leaves the window; a purchase or add stamped ahead of now counts from then."""
    added, purchased = (
        subject.profile.event_times.get(history_key(h), ()) for h in cart_histories(node)
    )
    window = window_ms(node)
    assert window is not None  # within_days is required
    now, wait = subject.now_ms, node.wait_minutes * 60_000
    upcoming = [t + wait for t in added if t + wait > now]
    upcoming += [t + window + 1 for t in added if t + window + 1 > now]
    upcoming += [t for t in purchased if t > now]
    return min(upcoming) if upcoming else None


def _recency_change(
    node: AttributeCriterion | AccountAttributeCriterion | FirstSeenCriterion, subject: Subject
) -> int | None:
    value = node.test.value
    assert isinstance(value, int)
    window = value * DAY_MS
    if isinstance(node, FirstSeenCriterion):
        first = subject.first_seen(node.workspace)
        stamps = [] if first is None else [first]
    elif isinstance(node, AccountAttributeCriterion):
        entry = subject.profile.account_attributes.get(node.key)
        stamps = [] if entry is None or entry.deleted else _instants(entry.value)
    else:
        stamps = [
            t
            for w in subject.workspaces(node.workspace)
            if node.key in w.attributes and not w.attributes[node.key].deleted
            for t in _instants(w.attributes[node.key].value)
        ]
    now = subject.now_ms
    upcoming = [t + window + 1 for t in stamps if t + window >= now]
    upcoming += [t for t in stamps if t > now]  # a date ahead of now enters the window then
    return min(upcoming) if upcoming else None


def _instants(value: object) -> list[int]:
    items = value if isinstance(value, list) else [value]
    return [t for t in (instant(v) for v in items) if t is not None]


def compile_next_change(node: Node) -> ChangeTime | None:
    """`next_change` of the tree made once, for the hot path: the timed leaves alone, each
    with its history key and window worked out ahead (per call, `next_change` walks the
    whole tree and works them out again); None when time alone changes nothing."""
    if not is_timed(node):
        return None
    if isinstance(node, All | AnyOf):
        return _earliest([c for c in map(compile_next_change, node.items) if c is not None])
    if isinstance(node, Exclude):
        return compile_next_change(node.item)
    if isinstance(node, EventCriterion):
        return _event_change_of(history_key(node), window_ms(node))
    return lambda subject: next_change(node, subject)


def _earliest(parts: Sequence[ChangeTime]) -> ChangeTime:
    if len(parts) == 1:
        return parts[0]

    def earliest(subject: Subject) -> int | None:
        found = [t for t in (part(subject) for part in parts) if t is not None]
        return min(found) if found else None

    return earliest


def _event_change_of(key: str, window: int | None) -> ChangeTime:
    assert window is not None  # is_timed: the criterion has a window

    def event_change(subject: Subject) -> int | None:
        times = subject.profile.event_times.get(key)
        if not times:
            return None
        now = subject.now_ms
        leaving = bisect_left(times, now - window)  # times are kept sorted
        upcoming = times[leaving] + window + 1 if leaving < len(times) else None
        entering = bisect_right(times, now)  # an event stamped ahead of now counts from then
        if entering < len(times) and (upcoming is None or times[entering] < upcoming):
            return times[entering]
        return upcoming

    return event_change
