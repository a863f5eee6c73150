"""Per-profile event de-duplication by `source_message_id` (ING-4).

A profile remembers 8-byte hashes of its most recent `MESSAGE_WINDOW` message ids, packed
into one bytes value inside the profile itself: checking costs no extra read or write, and
SDK retries (which re-send recent events) are caught. Older ids fall out of the window.
"""

from __future__ import annotations

from hashlib import blake2b

from kindred.domain.observation import EventFact

__all__ = ["DIGEST_SIZE", "MESSAGE_WINDOW", "fresh_events", "message_digest"]

MESSAGE_WINDOW = 256
DIGEST_SIZE = 8


def message_digest(message_id: str) -> bytes:
    """A stable 8-byte hash of a message id (the same in every process and version)."""
    return blake2b(message_id.encode(), digest_size=DIGEST_SIZE).digest()


def _holds(window: bytes | bytearray, digest: bytes) -> bool:
    """Whether the packed window holds `digest` at an 8-byte boundary."""
    at = window.find(digest)
    while at != -1:
        if at % DIGEST_SIZE == 0:
            return True
        at = window.find(digest, at + 1)
    return False


def fresh_events(
    events: tuple[EventFact, ...], recent: bytes
) -> tuple[tuple[EventFact, ...], bytes]:
    """The events not seen before (nor repeated within the batch), and the new window."""
    if not any(e.message_id for e in events):
        return events, recent
    window = bytearray(recent)
    kept: list[EventFact] = []
    for event in events:
        if event.message_id is None:
            kept.append(event)
            continue
        digest = message_digest(event.message_id)
        if not _holds(window, digest):
            window += digest
            kept.append(event)
    limit = MESSAGE_WINDOW * DIGEST_SIZE
    return tuple(kept), bytes(window[-limit:] if len(window) > limit else window)
