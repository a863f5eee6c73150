"""How profiles are serialized by every store: JSON, so SQL can read into them."""

from __future__ import annotations

import msgspec

from kindred.domain.profile import Profile
from kindred.ports import LogEntry, RejectEntry

__all__ = [
    "LOG_INSERT_COLUMNS",
    "REJECT_INSERT_COLUMNS",
    "decode_profile",
    "encode_profile",
    "log_row",
    "reject_row",
]

# Column order of the rows below; every SQL store inserts in this order.
LOG_INSERT_COLUMNS = (
    "input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body"
)
REJECT_INSERT_COLUMNS = "input, received_ms, kind, reason, body, replayed_ms"

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Profile)


def encode_profile(profile: Profile) -> bytes:
    return _ENCODER.encode(profile)


def decode_profile(doc: bytes | str) -> Profile:
    return _DECODER.decode(doc)


def log_row(entry: LogEntry) -> tuple[object, ...]:
    return (
        entry.input,
        entry.workspace_id,
        entry.received_ms,
        entry.status,
        entry.reason,
        entry.mpid,
        entry.source_request_id,
        entry.client_ip,
        entry.historical,
        entry.body,
    )


def reject_row(entry: RejectEntry) -> tuple[object, ...]:
    return (entry.input, entry.received_ms, entry.kind, entry.reason, entry.body, entry.replayed_ms)
