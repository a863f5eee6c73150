"""The per-profile event history audiences read (AUD-5): for each event key an audience
uses, the times of the profile's events within the lookback window, oldest first, capped.
Kept on ingest, so evaluation never scans the event log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kindred.audiences.evaluate import event_key
from kindred.domain.observation import EventFact

__all__ = ["MAX_EVENTS_PER_KEY", "event_keys_of", "record_events"]

# Frequency criteria count up to this many events per key and window.
MAX_EVENTS_PER_KEY = 200


def event_keys_of(event: EventFact) -> list[str]:
    """The history keys one event counts under: its type, and its type with its name."""
    event_type = "install" if event.is_install else event.event_type
    keys = [event_type]
    if event.name:
        keys.append(event_key(event_type, event.name))
    return keys


def record_events(
    history: Mapping[str, list[int]],
    events: Iterable[EventFact],
    tracked: frozenset[str],
    since_ms: int,
) -> dict[str, list[int]]:
    """The history with these events added (tracked keys only) and anything older than
    `since_ms` dropped."""
    added: dict[str, list[int]] = {}
    for event in events:
        for key in event_keys_of(event):
            if key in tracked:
                added.setdefault(key, []).append(event.timestamp_ms)
    result: dict[str, list[int]] = {}
    for key in tracked & (set(history) | set(added)):
        times = sorted(t for t in (*history.get(key, ()), *added.get(key, ())) if t >= since_ms)
        if times:
            result[key] = times[-MAX_EVENTS_PER_KEY:]
    return result
