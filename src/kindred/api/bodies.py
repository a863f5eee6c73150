"""What every request's body meets before its route (api/fastpath.py): the Content-Encoding
accepted (gzip, as mParticle's Android SDK sends IDSync requests, or none), a gzip body
decompressed within the limit, and the body held to `server.max_body_bytes` (CSV import to
its own bound), by its declared length before it is read and while it is read."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kindred.api.errors import PayloadTooLarge, UnsupportedEncoding
from kindred.api.imports import MAX_CSV_BYTES
from kindred.domain.errors import InvalidBatch
from kindred.wire.limits import strict_int

__all__ = [
    "LARGER_BODIES",
    "bounded",
    "declared_over",
    "gunzipped",
    "gzipped",
    "header",
    "inflating",
    "unsupported_encoding",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first of that name), as Latin-1 text."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


# Routes that take bodies over `server.max_body_bytes`, with their own bound.
LARGER_BODIES = {"/v2/import/csv": MAX_CSV_BYTES}


def encoding_of(scope: Scope) -> str:
    return (header(scope, b"content-encoding") or "").strip().lower()


def gzipped(scope: Scope) -> bool:
    # mParticle's Android SDK gzips its IDSync requests (and signs the JSON inside).
    return encoding_of(scope) == "gzip"


def unsupported_encoding(scope: Scope) -> UnsupportedEncoding | None:
    """A body under a Content-Encoding other than gzip or `identity` is refused (415):
    read as it stands, it would be taken for malformed JSON, or for what it is not."""
    if encoding_of(scope) in ("", "identity", "gzip"):
        return None
    return UnsupportedEncoding(
        f"Content-Encoding {header(scope, b'content-encoding')!r} is not accepted:"
        " send the body as it is or gzipped"
    )


def gunzipped(raw: bytes, limit: int) -> bytes:
    """A gzip body's content, at most `limit` bytes of it (PayloadTooLarge past them)."""
    inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        message = f"the body is not gzip, as its Content-Encoding says ({exc})"
        raise InvalidBatch(message, "body") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes once decompressed")
    if not inflater.eof:
        raise InvalidBatch("the gzip body is cut short", "body")
    return body


def inflating(receive: Receive, limit: int) -> Receive:
    """`receive` giving a gzip body decompressed, in one message (the routes behind this
    read the body whole)."""
    given = False

    async def inflating() -> MutableMapping[str, Any]:
        nonlocal given
        if given:
            return await receive()
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        given = True
        body = gunzipped(b"".join(chunks), limit)
        return {"type": "http.request", "body": body, "more_body": False}

    return inflating


def declared_over(declared: str | None, limit: int) -> bool:
    """Whether a Content-Length header says more than `limit` bytes."""
    length = strict_int(declared) if declared is not None else None
    return length is not None and length > limit


def bounded(receive: Receive, limit: int) -> Receive:
    """`receive` raising PayloadTooLarge (413 from the app's error handler) once the body
    passes `limit` bytes: for a body sent without its length, or longer than it said."""
    size = 0

    async def bounded() -> MutableMapping[str, Any]:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
        return message

    return bounded
