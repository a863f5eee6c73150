"""The per-profile event history audiences read (AUD-5): for each history an audience uses
(see evaluate.history_key), the times of the profile's events within the lookback window,
oldest first, capped. Kept on ingest, so evaluation never scans the event log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kindred.audiences.ast import EventCriterion
from kindred.audiences.compile import EventFilter, compile_event_filter
from kindred.audiences.evaluate import event_key, history_key
from kindred.domain.observation import EventFact

__all__ = ["MAX_EVENTS_PER_KEY", "Histories", "event_keys_of", "histories_of", "record_events"]

# Frequency criteria count up to this many events per key and window.
MAX_EVENTS_PER_KEY = 200


@dataclass(frozen=True)
class Histories:
    """The histories to keep: by the event key of the events they take, (history key, the
    test an event must pass, None when every such event counts)."""

    by_event_key: Mapping[str, tuple[tuple[str, EventFilter | None], ...]] = field(
        default_factory=dict
    )
    names: frozenset[str] = frozenset()


def histories_of(criteria: Iterable[EventCriterion]) -> Histories:
    """The histories the event criteria read, indexed for record_events."""
    index: dict[str, dict[str, EventFilter | None]] = {}
    for node in criteria:
        filtered = node.action is not None or bool(node.where)
        index.setdefault(event_key(node.event_type, node.name), {})[history_key(node)] = (
            compile_event_filter(node) if filtered else None
        )
    return Histories(
        {base: tuple(kept.items()) for base, kept in index.items()},
        frozenset(name for kept in index.values() for name in kept),
    )


def event_keys_of(event: EventFact) -> list[str]:
    """The event keys one event counts under: its type, and its type with its name."""
    event_type = "install" if event.is_install else event.event_type
    keys = [event_type]
    if event.name:
        keys.append(event_key(event_type, event.name))
    return keys


def record_events(
    history: Mapping[str, list[int]],
    events: Iterable[EventFact],
    tracked: Histories,
    since_ms: int,
) -> dict[str, list[int]]:
    """The history with these events added (tracked histories only) and anything older
    than `since_ms` dropped."""
    added: dict[str, list[int]] = {}
    for event in events:
        for key in event_keys_of(event):
            for name, test in tracked.by_event_key.get(key, ()):
                if test is None or test(event):
                    added.setdefault(name, []).append(event.timestamp_ms)
    result: dict[str, list[int]] = {}
    for key in tracked.names & (set(history) | set(added)):
        times = sorted(t for t in (*history.get(key, ()), *added.get(key, ())) if t >= since_ms)
        if times:
            result[key] = times[-MAX_EVENTS_PER_KEY:]
    return result
