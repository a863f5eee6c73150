"""Criteria trees compiled to Python closures when an audience is loaded, so that the hot
path pays no type dispatch per node (with 100 audiences, this and loading definitions once
per reload took the added ingest cost from 75-83 to 43-46 µs per event; see
bench/RESULTS.md). The tree walker in `evaluate` stays the reference; a property test
keeps the two in agreement."""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable

from kindred.audiences.ast import (
    All,
    AnyOf,
    AttributeCriterion,
    Condition,
    Const,
    EventCriterion,
    Exclude,
    Node,
)
from kindred.audiences.evaluate import (
    LEAVES,
    NEGATIVE,
    Subject,
    history_key,
    matches,
    number_of,
    text,
    window_ms,
)
from kindred.domain.observation import EventFact

__all__ = ["EventFilter", "Predicate", "compile_event_filter", "compile_node"]

Predicate = Callable[[Subject], bool]
ValueTest = Callable[[object, int], bool]
EventFilter = Callable[[EventFact], bool]


def compile_node(node: Node) -> Predicate:
    if isinstance(node, All | AnyOf):
        return _combine(node)
    if isinstance(node, Exclude):
        inner = compile_node(node.item)
        return lambda s: not inner(s)
    if isinstance(node, Const):
        constant = node.value
        return lambda _: constant
    if isinstance(node, AttributeCriterion):
        return _attribute(node)
    if isinstance(node, EventCriterion):
        return _event(node)
    leaf = LEAVES[type(node)]
    return lambda s: leaf(node, s)


def _combine(node: All | AnyOf) -> Predicate:
    parts = tuple(compile_node(item) for item in node.items)
    if isinstance(node, All):

        def every(s: Subject) -> bool:
            return all(part(s) for part in parts)

        return every

    def some(s: Subject) -> bool:
        return any(part(s) for part in parts)

    return some


def _attribute(node: AttributeCriterion) -> Predicate:
    key, test, only = node.key, node.test, node.workspace
    when_missing = matches(test, None, 0)  # no value: the same answer at any instant
    negative = test.op in NEGATIVE
    value_test = _value_test(test)

    def attribute(s: Subject) -> bool:
        workspaces = s.profile.workspaces
        values = []
        read = s.workspace_ids if only is None else (only,) if only in s.workspace_ids else ()
        for workspace_id in read:
            workspace = workspaces.get(workspace_id)
            if workspace is None:
                continue
            entry = workspace.attributes.get(key)
            if entry is not None and not entry.deleted:
                values.append(entry.value)
        if not values:
            return when_missing
        now = s.now_ms
        if negative:
            return all(value_test(v, now) for v in values)
        return any(value_test(v, now) for v in values)

    return attribute


def _value_test(test: Condition) -> ValueTest:
    """One stored (present) value against the test; the common operators without the
    general dispatch."""
    op, wanted = test.op, test.value
    if op in ("equals", "not_equals"):
        needle = text(wanted)
        equal = op == "equals"

        def equals(value: object, now: int) -> bool:
            if isinstance(value, list):
                return any(equals(item, now) for item in value)
            if value is None:  # a null in a list: a missing value, as `matches` has it
                return not equal
            return (text(value) == needle) == equal

        return equals
    compare = _COMPARISONS.get(op)
    if compare is not None:
        target = float(wanted)  # type: ignore[arg-type]  # checked to be a number when saved

        def compared(value: object, now: int) -> bool:
            if isinstance(value, list):
                return any(compared(item, now) for item in value)
            number = number_of(value)
            return number is not None and compare(number, target)

        return compared
    return lambda value, now: matches(test, value, now)


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
# Operators that look at a value's presence or at a list as a whole.
_WHOLE = frozenset({"exists", "not_exists", "includes", "not_includes", "partial_match"})


def _any_value_test(test: Condition) -> ValueTest:
    """One value, absent (None) or not, against the test: `matches` as a closure."""
    if test.op in _WHOLE:
        return lambda value, now: matches(test, value, now)
    when_missing = test.op in NEGATIVE
    present = _value_test(test)

    def any_value(value: object, now: int) -> bool:
        return when_missing if value is None else present(value, now)

    return any_value


def compile_event_filter(node: EventCriterion) -> EventFilter:
    """Whether one event of the criterion's type and name counts for it
    (`evaluate.event_passes` as a closure)."""
    action = node.action
    checks = [(c.of == "attribute", c.key, _any_value_test(c.test)) for c in node.where]

    def passes(event: EventFact) -> bool:
        if action is not None and (event.action or "").lower() != action:
            return False
        now = event.timestamp_ms
        for own, key, check in checks:
            if own:
                if not check(event.attributes.get(key), now):
                    return False
            elif not any(check(product.get(key), now) for product in event.products):
                return False
        return True

    return passes


def _event(node: EventCriterion) -> Predicate:
    key = history_key(node)
    window = window_ms(node)
    count_op, wanted = node.count_op, node.count

    def event(s: Subject) -> bool:
        times = s.profile.event_times.get(key, ())
        now = s.now_ms
        high = bisect_right(times, now)
        low = bisect_left(times, now - window) if window is not None else 0
        count = max(high - low, 0)
        if count_op == "at_least":
            return count >= wanted
        if count_op == "at_most":
            return count <= wanted
        return count == wanted

    return event
