"""Events API: `/v2/events`, `/v2/bulkevents[/historical]` and the web SDK's `/v3/JS/...`.

A batch is answered 202 only after its group commit: accepted means durable (ING-5). In
role api it is answered 202 once the batch log stored it instead, and a worker applies it
(docs/deployment.md).
Refused batches are kept with their reason too; web batches are never answered 400 (the
web SDK would resend them forever), they are quarantined and answered 202 (ING-3).

The handlers take the few request parts they need (the Authorization header, the body, the
client address) so that the lean ASGI path in `api.fastpath` can call them directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import msgspec

from kindred.api.auth import InputAuthenticator
from kindred.api.ratelimit import InputRateLimiter
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch
from kindred.domain.tenancy import InputDef
from kindred.services.writes.commands import Accepted, BatchOutcome, Refused
from kindred.wire.batch import decode_bulk
from kindred.wire.errors import as_invalid_batch
from kindred.wire.observe import observe

__all__ = ["MAX_BULK_BATCHES", "EventsApi"]

MAX_BULK_BATCHES = 100
_DECODE_ERRORS = (msgspec.DecodeError, InvalidBatch)


class EventsApi:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._auth = InputAuthenticator(container.tenancy)
        self._limits = InputRateLimiter()

    def server_input(self, authorization: str | None) -> InputDef:
        """Authenticate and rate-limit before the body is read."""
        source = self._auth.basic(authorization)
        self._limits.check(source, time.monotonic())
        return source

    def web_input(self, api_key: str) -> InputDef:
        source = self._auth.web_key(api_key)
        self._limits.check(source, time.monotonic())
        return source

    async def events(self, source: InputDef, body: bytes) -> None:
        received = self._c.clock.now_ms()
        try:
            obs = observe(body, source, received)
        except _DECODE_ERRORS as exc:
            raise await self._refuse(source, received, body, as_invalid_batch(exc)) from None
        await self._submit([Accepted(source, obs, body)])

    async def bulk(self, source: InputDef, body: bytes, *, historical: bool) -> None:
        received = self._c.clock.now_ms()
        try:
            raws = _split_bulk(body)
            # The rate is in batches: each batch of the request takes a token.
            self._limits.check_rest(source, time.monotonic(), len(raws))
            accepted = _observe_bulk(raws, source, received, historical)
        except InvalidBatch as exc:
            raise await self._refuse(source, received, body, exc) from None
        await self._submit(accepted)

    async def web_events(self, source: InputDef, body: bytes, client_ip: str | None) -> None:
        received = self._c.clock.now_ms()
        try:
            obs = observe(body, source, received, client_ip)
        except _DECODE_ERRORS as exc:
            await self._quarantine(source, received, body, as_invalid_batch(exc))
            return
        await self._submit([Accepted(source, obs, body, client_ip=client_ip)])

    async def _submit(self, items: Sequence[Accepted | Refused]) -> list[BatchOutcome]:
        """Each item applied (its outcome: here, or by the writer process), or with role
        api appended to the batch log (no outcome yet: a worker applies it)."""
        if self._c.appender is not None:
            await self._c.appender.submit(items)
            return []
        if self._c.remote_writer is not None:
            return await self._c.remote_writer.submit(items)
        submit = self._c.writer.submit_async
        if len(items) == 1:
            return [await submit(items[0])]
        return list(await asyncio.gather(*(submit(item) for item in items)))

    async def _refuse(
        self, source: InputDef, received: int, body: bytes, error: InvalidBatch
    ) -> InvalidBatch:
        self._c.metrics.batch_refused(source.name, "invalid")
        await self._submit([Refused(source.name, received, "rejected", str(error), body)])
        return error

    async def _quarantine(
        self, source: InputDef, received: int, body: bytes, error: InvalidBatch
    ) -> None:
        self._c.metrics.batch_refused(source.name, "quarantined")
        await self._submit([Refused(source.name, received, "quarantined", str(error), body)])


def _split_bulk(body: bytes) -> list[msgspec.Raw]:
    try:
        raws = decode_bulk(body)
    except _DECODE_ERRORS as exc:
        raise as_invalid_batch(exc) from None
    if len(raws) > MAX_BULK_BATCHES:
        raise InvalidBatch(f"at most {MAX_BULK_BATCHES} batches per request, got {len(raws)}")
    return raws


def _observe_bulk(
    raws: list[msgspec.Raw], source: InputDef, received: int, historical: bool
) -> list[Accepted]:
    accepted = []
    for index, raw in enumerate(raws):
        part = bytes(raw)
        try:
            obs = observe(part, source, received, historical=historical)
        except _DECODE_ERRORS as exc:
            raise as_invalid_batch(exc, f"[{index}].") from None
        accepted.append(Accepted(source, obs, part, historical=historical))
    return accepted
