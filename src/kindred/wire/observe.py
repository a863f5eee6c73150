"""One raw batch body as the domain's Observation: decoded once against the wire schema and
normalized with its input's guardrails. Every path a batch enters by (the events API, CSV
import, replay of quarantined batches, rebuilds and the activation's computation over the
event log) goes through this one function, so they all read a body alike.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact, Observation
from kindred.domain.tenancy import InputDef
from kindred.wire.batch import decode_batch, decode_hook
from kindred.wire.events import AnyEvent
from kindred.wire.limits import check_depth
from kindred.wire.normalize import event_fact, normalize_batch

__all__ = ["EachEvent", "observe", "observe_each_event", "observe_events"]


class _Events(msgspec.Struct):
    """A batch's events, each kept as its JSON text (every other field skipped)."""

    events: list[msgspec.Raw] | None = None


_EVENTS_DECODER = msgspec.json.Decoder(_Events)

# An event's JSON text and its fact, None when the event does not read (observe_events would
# raise on it).
EachEvent = tuple[bytes, EventFact | None]
# As the batch decoder reads its events (lax mode, the same hook).
_EVENT_DECODER = msgspec.json.Decoder(AnyEvent, strict=False, dec_hook=decode_hook)


def observe(
    body: bytes,
    source: InputDef,
    received_ms: int,
    client_ip: str | None = None,
    *,
    historical: bool = False,
) -> Observation:
    """Decode and normalize one raw batch from `source`; raises msgspec errors or
    InvalidBatch naming the offending field (a body nested too deep among them)."""
    check_depth(body)
    return normalize_batch(
        decode_batch(body),
        received_ms=received_ms,
        guardrails=source.workspace.account.guardrails,
        client_ip=client_ip if source.is_client else None,
        historical=historical,
    )


def observe_events(
    body: bytes, received_ms: int, wanted: Callable[[bytes], bool] | None = None
) -> tuple[EventFact, ...]:
    """The events of a batch ingest accepted (a logged one), each as `observe` makes it,
    reading nothing else of the batch: only those whose JSON text `wanted` accepts (all
    without it); the others are not decoded. Raises msgspec errors or InvalidBatch as
    `observe` does for its events."""
    check_depth(body)
    raw = _EVENTS_DECODER.decode(body).events or ()
    facts = []
    for index, text in enumerate(raw):
        if wanted is None or wanted(bytes(text)):
            facts.append(event_fact(_EVENT_DECODER.decode(text), index, received_ms))
    return tuple(facts)


def observe_each_event(body: bytes, received_ms: int) -> tuple[EachEvent, ...]:
    """Every event of a logged batch, each with its JSON text and its fact as
    observe_events makes it (None when it does not read): what observe_events answers for
    any `wanted` follows from it without decoding again (it raises on the first event
    `wanted` accepts that does not read). Raises as observe_events when the body itself
    does not read."""
    check_depth(body)
    raw = _EVENTS_DECODER.decode(body).events or ()
    found: list[EachEvent] = []
    for index, text in enumerate(raw):
        fact: EventFact | None
        try:
            fact = event_fact(_EVENT_DECODER.decode(text), index, received_ms)
        except (InvalidBatch, msgspec.DecodeError, msgspec.ValidationError):
            fact = None
        found.append((bytes(text), fact))
    return tuple(found)
