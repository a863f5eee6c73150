"""A logged batch's event stamps: each event's type (`install` for an install), name and
time, kept in the event log beside the body as a compact record. An audience history that
takes events by key alone (no action, no conditions) needs nothing else of them, so an
activation folding the stored events reads the stamps instead of decoding each body again
(services.audiences.log_reading)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from kindred.domain.observation import EventFact

__all__ = ["EventStamp", "event_stamps", "stamped_events"]

# One event: its type as its keys count it, its name, its time (EventFact's timestamp_ms).
EventStamp = tuple[str, str | None, int]

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[EventStamp])


def event_stamps(events: Iterable[EventFact]) -> bytes:
    """The stamps of a batch's events, in their order, encoded."""
    return _ENCODER.encode(
        [("install" if e.is_install else e.event_type, e.name, e.timestamp_ms) for e in events]
    )


def stamped_events(stamps: bytes) -> list[EventStamp]:
    """The stamps `event_stamps` encoded; raises msgspec.DecodeError for other bytes."""
    return _DECODER.decode(stamps)
