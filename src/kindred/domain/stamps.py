"""A logged batch's event stamps: each event's type (`install` for an install), name and
time, kept in the event log beside the body as a compact record. An audience history that
takes events by key alone (no action, no conditions) needs nothing else of them, so an
activation folding the stored events reads the stamps instead of decoding each body again
(services.audiences.log_reading).

Kept small, since every applied batch writes them (twice on SQLite: the row and the log's
index by MPID): a common type is its number in `_TYPES`, a time its distance before the
batch's receive time (a few bytes for any event of the last weeks)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from kindred.domain.observation import EventFact

__all__ = [
    "EventStamp",
    "RawStamp",
    "decoded_stamps",
    "event_stamps",
    "stamp_type",
    "stamped_events",
]

# One event: its type as its keys count it, its name, its time (EventFact's timestamp_ms).
EventStamp = tuple[str, str | None, int]
# As stored: the type or its number, the name, the time's distance before the receipt.
RawStamp = tuple[int | str, str | None, int]

# Stored as their index: append only, never reorder (stamps already written read by it).
_TYPES = (
    "custom_event",
    "screen_view",
    "commerce_event",
    "session_start",
    "session_end",
    "install",
    "crash_report",
    "opt_out",
    "uninstall",
    "application_state_transition",
    "push_registration",
    "push_message",
    "push_reaction",
    "breadcrumb",
    "profile",
    "user_attribute_change",
    "user_identity_change",
    "first_run",
)
_CODES = {name: code for code, name in enumerate(_TYPES)}

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[tuple[int | str, str | None, int]])


def event_stamps(events: Iterable[EventFact], received_ms: int) -> bytes:
    """The stamps of a batch's events, in their order, encoded (times as their distance
    before `received_ms`, the batch's receive time)."""
    codes = _CODES
    stamps = []
    for e in events:
        kind = "install" if e.is_install else e.event_type
        stamps.append((codes.get(kind, kind), e.name, received_ms - e.timestamp_ms))
    return _ENCODER.encode(stamps)


def decoded_stamps(stamps: bytes) -> list[RawStamp]:
    """The stamps as stored (see `stamp_type`); raises msgspec.DecodeError (or
    ValidationError) for bytes of another shape."""
    return _DECODER.decode(stamps)


def stamp_type(kind: int | str) -> str:
    """An event type as a stamp stores it, named; raises msgspec.ValidationError for a
    number no type has."""
    if isinstance(kind, str):
        return kind
    if 0 <= kind < len(_TYPES):
        return _TYPES[kind]
    raise msgspec.ValidationError(f"unknown event type number {kind}")


def stamped_events(stamps: bytes, received_ms: int) -> list[EventStamp]:
    """The stamps `event_stamps` encoded for a batch received at `received_ms`; raises
    msgspec.DecodeError (or ValidationError) for other bytes."""
    return [
        (stamp_type(kind), name, received_ms - before)
        for kind, name, before in decoded_stamps(stamps)
    ]
