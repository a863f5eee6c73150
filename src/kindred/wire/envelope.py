"""A batch as the API role appends it to the partitioned log, and as a worker reads it back.

The API has authenticated, decoded and validated the batch; the envelope carries what the
worker needs to run it through the same command path as a single process: the raw body
(decoded again by the worker, with the same `received_ms`, so that it normalizes to the
same Observation), the input's name, and, for a batch refused at the edge, its reason.
MessagePack keeps the body as bytes, with no escaping.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Envelope", "decode_envelope", "encode_envelope"]


class Envelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    # "accepted": a batch that passed the edge; "rejected" / "quarantined": one refused
    # there (400, or 202 for web batches), kept with its reason as a single process keeps it.
    kind: Literal["accepted", "rejected", "quarantined"]
    input: str
    received_ms: int
    body: bytes
    client_ip: str | None = None
    historical: bool = False
    reason: str | None = None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    return _ENCODER.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    """Raises msgspec.DecodeError (or ValidationError) on bytes that are no envelope."""
    return _DECODER.decode(data)
