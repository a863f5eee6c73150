"""The HTTP process's end of the link to the writer process (`kindred serve
--writer-process`): one Unix-socket connection per event loop, request frames written as
they come, replies matched to them by id.

A connection that cannot be made is "store unavailable" (nothing was sent: 503). A
connection lost with requests on it fails each with "outcome unknown" (504): the writer
process may have committed a batch whose answer was lost, so the sender sends it again
unchanged, and its `source_request_id` makes it count once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from kindred.domain.errors import OutcomeUnknown, StoreUnavailable
from kindred.wire.writer_frames import (
    FrameReader,
    ReplyFrame,
    RequestFrame,
    decode_reply,
    encode_frame,
)

__all__ = ["WriterLink"]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reader = FrameReader()
        self._pending: dict[int, asyncio.Future[ReplyFrame]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self._reader.feed(data)
        except ValueError:
            self._broken()
            return
        for payload in payloads:
            reply = decode_reply(payload)
            future = self._pending.pop(reply.id, None)
            if future is not None and not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self.closed = True
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    OutcomeUnknown(
                        "the writer process went away before it answered: the batch may be"
                        " stored; send it again unchanged"
                    )
                )

    def send(self, frames: Sequence[RequestFrame]) -> list[asyncio.Future[ReplyFrame]]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futures = []
        for frame in frames:
            future: asyncio.Future[ReplyFrame] = loop.create_future()
            self._pending[frame.id] = future
            futures.append(future)
        self.transport.write(b"".join(encode_frame(f) for f in frames))
        return futures

    def _broken(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # connection_lost fails what is pending


class WriterLink:
    def __init__(self, path: str, *, connect_timeout_s: float = 2.0) -> None:
        self._path = path
        self._timeout = connect_timeout_s
        self._ids = itertools.count(1)
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def path(self) -> str:
        return self._path

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, frames: Sequence[RequestFrame]) -> list[ReplyFrame]:
        """Each frame's reply, in order; StoreUnavailable when the writer process cannot
        be reached, OutcomeUnknown when it went away before answering."""
        connection = await self._connected()
        futures = connection.send(frames)
        if len(futures) == 1:
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()

    async def _connected(self) -> _Connection:
        held = self._connection
        if held is not None and not held.closed:
            return held
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            held = self._connection
            if held is not None and not held.closed:
                return held
            loop = asyncio.get_running_loop()
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_unix_connection(_Connection, self._path), self._timeout
                )
            except (OSError, TimeoutError) as exc:
                raise StoreUnavailable(
                    f"the writer process is not answering at {self._path} ({exc})"
                ) from exc
            self._connection = connection
            return connection
