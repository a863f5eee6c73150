"""The frames between the HTTP processes and the writer process (`kindred serve
--writer-process`, docs/architecture.md): a batch as the HTTP process read it, and what
became of it.

The HTTP process sends the batch already decoded and normalized, as MessagePack of the
domain's Observation: the writer process reads it back in a fraction of the time the JSON
body takes to decode and normalize, so that work stays off the writer's core. Each frame
is its length (4 bytes, big-endian) and then its MessagePack.
"""

from __future__ import annotations

import struct

import msgspec

from kindred.domain.observation import Observation

__all__ = [
    "MAX_FRAME_BYTES",
    "AcceptedFrame",
    "FrameReader",
    "RefusedFrame",
    "ReplyFrame",
    "RequestFrame",
    "decode_reply",
    "decode_request",
    "encode_frame",
]

_LENGTH = struct.Struct(">I")
# A batch body is at most server.max_body_bytes (256 KB by default) and its observation
# about as large again; anything far beyond is a broken peer, not a batch.
MAX_FRAME_BYTES = 64 * 1024 * 1024


class AcceptedFrame(msgspec.Struct, frozen=True, tag="accepted", array_like=True):
    """A batch that passed the edge: its input by name, its observation and its body."""

    id: int
    input: str
    observation: Observation
    body: bytes
    client_ip: str | None = None
    historical: bool = False


class RefusedFrame(msgspec.Struct, frozen=True, tag="refused", array_like=True):
    """A batch refused at the edge (or quarantined), kept with its reason."""

    id: int
    input: str
    received_ms: int
    kind: str
    reason: str
    body: bytes


RequestFrame = AcceptedFrame | RefusedFrame


class ReplyFrame(msgspec.Struct, frozen=True, array_like=True):
    """What became of request `id`: its status once committed and durable, or the error
    its writer raised (`error` the class's name, `message` its text, `path` an invalid
    batch's field)."""

    id: int
    status: str = ""
    mpid: int | None = None
    error: str = ""
    message: str = ""
    path: str = ""


_ENCODER = msgspec.msgpack.Encoder()
_REQUEST: msgspec.msgpack.Decoder[RequestFrame] = msgspec.msgpack.Decoder(RequestFrame)
_REPLY = msgspec.msgpack.Decoder(ReplyFrame)


def encode_frame(frame: RequestFrame | ReplyFrame) -> bytes:
    payload = _ENCODER.encode(frame)
    return _LENGTH.pack(len(payload)) + payload


def decode_request(payload: bytes | memoryview) -> RequestFrame:
    return _REQUEST.decode(payload)


def decode_reply(payload: bytes | memoryview) -> ReplyFrame:
    return _REPLY.decode(payload)


class FrameReader:
    """Bytes as they arrive from a stream, and the whole frames' payloads among them."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of the frames `data` completes, in order; raises ValueError on a
        frame longer than MAX_FRAME_BYTES (the stream is broken: close it)."""
        buffer = self._buffer
        buffer += data
        payloads = []
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > MAX_FRAME_BYTES:
                raise ValueError(f"a frame of {length} bytes is over {MAX_FRAME_BYTES}")
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            payloads.append(bytes(buffer[start + _LENGTH.size : end]))
            start = end
        del buffer[:start]
        return payloads
