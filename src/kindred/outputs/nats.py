"""NATS JetStream: each message published to `subject`, with its idempotency key as the
`Nats-Msg-Id` header so that JetStream drops a message sent again within its duplicate
window. The client is asynchronous; each sink runs it on an event loop of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from kindred.domain.errors import DeliveryFailed
from kindred.domain.forwarding import OutputDef

__all__ = ["NatsSink"]

_ENCODER = msgspec.json.Encoder()


class NatsSink:
    def __init__(self, output: OutputDef) -> None:
        assert output.url is not None
        assert output.subject is not None
        self._url = output.url
        self._subject = output.subject
        self._stream = output.stream
        self._timeout = output.timeout_s
        self._loop = asyncio.new_event_loop()
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    def send(self, messages: Sequence[dict[str, Any]]) -> None:
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._publish(messages), self._timeout))
        except (NatsError, OSError, TimeoutError) as exc:
            self._loop.run_until_complete(self._disconnect())
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._loop.run_until_complete(self._disconnect())
        self._loop.close()

    async def _publish(self, messages: Sequence[dict[str, Any]]) -> None:
        js = await self._jetstream()
        acks = [
            js.publish(
                self._subject,
                _ENCODER.encode(m),
                headers={"Nats-Msg-Id": str(m.get("idempotency_key", ""))},
            )
            for m in messages
        ]
        await asyncio.gather(*acks)

    async def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            self._client = await nats.connect(
                self._url, connect_timeout=self._timeout, allow_reconnect=False
            )
            js = self._client.jetstream(timeout=self._timeout)
            if self._stream:
                try:
                    await js.stream_info(self._stream)
                except NotFoundError:
                    await js.add_stream(name=self._stream, subjects=[self._subject])
            self._js = js
        return self._js

    async def _disconnect(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            await client.close()
