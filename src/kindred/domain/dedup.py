"""Per-profile event de-duplication by `source_message_id` (ING-4).

A profile remembers the hashes of its most recent `MESSAGE_WINDOW` message ids, packed as
8-byte integers inside the profile itself: checking costs no extra read or write, and SDK
retries (which re-send recent events) are caught. Older ids fall out of the window.
"""

from __future__ import annotations

import hashlib
from array import array

from kindred.domain.observation import EventFact

__all__ = ["MESSAGE_WINDOW", "fresh_events", "message_hash"]

MESSAGE_WINDOW = 256


def message_hash(message_id: str) -> int:
    """A stable signed 64-bit hash of a message id (stable across processes and versions)."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def fresh_events(
    events: tuple[EventFact, ...], recent: bytes
) -> tuple[tuple[EventFact, ...], bytes]:
    """The events not seen before (and not repeated within the batch), and the new window."""
    if not any(e.message_id for e in events):
        return events, recent
    window = array("q", recent)
    seen = set(window)
    kept: list[EventFact] = []
    for event in events:
        if event.message_id is None:
            kept.append(event)
            continue
        digest = message_hash(event.message_id)
        if digest not in seen:
            seen.add(digest)
            window.append(digest)
            kept.append(event)
    if len(window) > MESSAGE_WINDOW:
        window = window[-MESSAGE_WINDOW:]
    return tuple(kept), window.tobytes()
