"""The per-profile event history audiences read (AUD-5, AUD-16): for each history an
active audience uses (see evaluate.history_key: its event key, action and conditions, and
the audience's own tag), the times of the profile's events that pass it, from the
audience's inputs, within the audience's lookback, oldest first. Kept on ingest, and
computed from the event log when an audience is activated (services.audiences.jobs), so
evaluation never scans the event log.

A history keeps every event a criterion can still need, and no more: of the events at or
before now, the newest `keep` (one more than the largest frequency the audience's criteria
on it name, so `at_least`, `at_most` and `exactly` stay exact for any count: the K newest
events are inside a window exactly when K or more are), every event stamped after now
(it counts once its time comes), and, for the products added to the cart, every add
within the longest wait (one of those may become the abandoned one) — all within the
lookback. Dropping an event never changes an answer, now or later: an event dropped has
`keep` newer ones at or before now, which stay so."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kindred.audiences.ast import All, AnyOf, CartAbandonment, EventCriterion, Exclude, Node
from kindred.audiences.compile import EventFilter, compile_event_filter
from kindred.audiences.evaluate import DAY_MS, cart_histories, event_key, history_key
from kindred.domain.observation import EventFact

__all__ = [
    "Histories",
    "HistorySpec",
    "event_keys_of",
    "fold_events",
    "fold_taken",
    "histories_of",
    "history_specs",
    "record_events",
    "taken_times",
    "trimmed",
]


@dataclass(frozen=True, slots=True)
class HistorySpec:
    """One history to keep: its key, the events it takes (their event key, the test they
    must pass, None when every such event counts, the inputs they may come from), and what
    of them to keep (see the module's text)."""

    key: str
    event_key: str
    test: EventFilter | None
    inputs: frozenset[str]
    lookback_ms: int
    keep: int
    keep_after_ms: int = 0


def history_specs(
    node: Node, inputs: frozenset[str], lookback_days: int
) -> tuple[HistorySpec, ...]:
    """The histories a bound criteria tree reads (one per history key), for events from
    `inputs`."""
    found: dict[str, HistorySpec] = {}
    lookback_ms = lookback_days * DAY_MS

    def add(node: EventCriterion, keep: int, keep_after_ms: int = 0) -> None:
        key = history_key(node)
        held = found.get(key)
        if held is not None:
            keep, keep_after_ms = max(keep, held.keep), max(keep_after_ms, held.keep_after_ms)
        filtered = node.action is not None or bool(node.where)
        found[key] = HistorySpec(
            key,
            event_key(node.event_type, node.name),
            compile_event_filter(node) if filtered else None,
            inputs,
            lookback_ms,
            keep,
            keep_after_ms,
        )

    def visit(node: Node) -> None:
        if isinstance(node, All | AnyOf):
            for item in node.items:
                visit(item)
        elif isinstance(node, Exclude):
            visit(node.item)
        elif isinstance(node, EventCriterion):
            add(node, node.count + 1)
        elif isinstance(node, CartAbandonment):
            added, purchased = cart_histories(node)
            add(added, 1, node.wait_minutes * 60_000)
            add(purchased, 1)

    visit(node)
    return tuple(found.values())


@dataclass(frozen=True)
class Histories:
    """The histories to keep, indexed: by the event key of the events they take, and by
    their own key."""

    by_event_key: Mapping[str, tuple[HistorySpec, ...]] = field(default_factory=dict)
    specs: Mapping[str, HistorySpec] = field(default_factory=dict)


def histories_of(specs: Iterable[HistorySpec]) -> Histories:
    """The histories indexed for record_events."""
    by_event_key: dict[str, list[HistorySpec]] = {}
    by_key: dict[str, HistorySpec] = {}
    for spec in specs:
        if spec.key not in by_key:
            by_key[spec.key] = spec
            by_event_key.setdefault(spec.event_key, []).append(spec)
    return Histories({k: tuple(v) for k, v in by_event_key.items()}, by_key)


def event_keys_of(event: EventFact) -> list[str]:
    """The event keys one event counts under: its type, and its type with its name."""
    event_type = "install" if event.is_install else event.event_type
    keys = [event_type]
    if event.name:
        keys.append(event_key(event_type, event.name))
    return keys


def trimmed(times: Sequence[int], spec: HistorySpec, now_ms: int) -> list[int]:
    """The times (sorted) a history keeps at `now_ms`."""
    low = bisect_left(times, now_ms - spec.lookback_ms) if spec.lookback_ms else 0
    split = bisect_right(times, now_ms - spec.keep_after_ms, lo=low)
    return list(times[max(low, split - spec.keep) :])


def taken_times(
    events: Iterable[EventFact], input_name: str, tracked: Histories
) -> dict[str, list[int]]:
    """The times of the events (from `input_name`) each tracked history takes, by its key."""
    added: dict[str, list[int]] = {}
    for event in events:
        for key in event_keys_of(event):
            for spec in tracked.by_event_key.get(key, ()):
                if input_name in spec.inputs and (spec.test is None or spec.test(event)):
                    added.setdefault(spec.key, []).append(event.timestamp_ms)
    return added


def _kept(
    history: Mapping[str, list[int]],
    added: Mapping[str, list[int]],
    keys: Iterable[str],
    tracked: Histories,
    now_ms: int,
) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for key in keys:
        held, new = history.get(key, ()), added.get(key)
        times = sorted((*held, *new)) if new else held
        kept = trimmed(times, tracked.specs[key], now_ms)
        if kept:
            result[key] = kept
    return result


def record_events(
    history: Mapping[str, list[int]],
    events: Iterable[EventFact],
    input_name: str,
    tracked: Histories,
    now_ms: int,
) -> dict[str, list[int]]:
    """The history with a batch's events (from `input_name`) added to the tracked
    histories, each trimmed as it keeps at `now_ms`; histories no longer tracked go."""
    added = taken_times(events, input_name, tracked)
    keys = tracked.specs.keys() & (history.keys() | added.keys())
    return _kept(history, added, keys, tracked, now_ms)


def fold_events(
    history: Mapping[str, list[int]],
    events: Iterable[EventFact],
    input_name: str,
    some: Histories,
    now_ms: int,
) -> dict[str, list[int]]:
    """The history with events added to `some` histories only (an activation folding the
    stored events in); the others stay as they are."""
    return fold_taken(history, taken_times(events, input_name, some), some, now_ms)


def fold_taken(
    history: Mapping[str, list[int]],
    taken: Mapping[str, list[int]],
    some: Histories,
    now_ms: int,
) -> dict[str, list[int]]:
    """The history with the times `some` histories take (`taken_times`, by history key, in
    any order, from any number of batches and inputs) added to them; the others stay as
    they are. Trimming once after all of them keeps what trimming after each would: an
    event it drops has `keep` newer ones kept."""
    kept = _kept(history, taken, some.specs.keys(), some, now_ms)
    result = {k: v for k, v in history.items() if k not in some.specs}
    result.update(kept)
    return result
