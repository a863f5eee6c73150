"""Events API: `/v2/events`, `/v2/bulkevents[/historical]` and the web SDK's `/v3/JS/...`.

A batch is answered 202 only after its group commit: accepted means durable (ING-5).
Refused batches are kept with their reason too; web batches are never answered 400 (the
web SDK would resend them forever), they are quarantined and answered 202 (ING-3).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kindred.api.auth import InputAuthenticator
from kindred.api.errors import PayloadTooLarge, invalid
from kindred.api.ratelimit import InputRateLimiter
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch
from kindred.domain.tenancy import InputDef
from kindred.services.ingest import Accepted, Outcome, Refused, WriterItem, observe
from kindred.wire.batch import decode_bulk

__all__ = ["EventsApi"]

MAX_BULK_BATCHES = 100
_DECODE_ERRORS = (msgspec.DecodeError, InvalidBatch)


class EventsApi:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._auth = InputAuthenticator(container.tenancy)
        self._limits = InputRateLimiter()
        self._max_body = container.settings.server.max_body_bytes

    async def events(self, request: Request) -> Response:
        source = self._auth.basic(request.headers.get("authorization"))
        self._limits.check(source, time.monotonic())
        body = await self._body(request)
        received = self._c.clock.now_ms()
        try:
            obs = observe(body, source, received, None)
        except _DECODE_ERRORS as exc:
            raise await self._refuse(source, received, body, invalid(exc)) from None
        await self._submit([Accepted(source, obs, body)])
        return Response(status_code=202)

    async def bulk(self, request: Request) -> Response:
        return await self._bulk(request, historical=False)

    async def bulk_historical(self, request: Request) -> Response:
        return await self._bulk(request, historical=True)

    async def web_events(self, request: Request) -> Response:
        source = self._auth.web_key(request.path_params["api_key"])
        self._limits.check(source, time.monotonic())
        body = await self._body(request)
        received = self._c.clock.now_ms()
        try:
            obs = observe(body, source, received, _client_ip(request))
        except _DECODE_ERRORS as exc:
            await self._quarantine(source, received, body, invalid(exc))
            return Response(status_code=202)
        await self._submit([Accepted(source, obs, body)])
        return Response(status_code=202)

    async def _bulk(self, request: Request, *, historical: bool) -> Response:
        source = self._auth.basic(request.headers.get("authorization"))
        self._limits.check(source, time.monotonic())
        body = await self._body(request)
        received = self._c.clock.now_ms()
        try:
            accepted = self._observe_bulk(body, source, received, historical)
        except InvalidBatch as exc:
            raise await self._refuse(source, received, body, exc) from None
        await self._submit(accepted)
        return Response(status_code=202)

    def _observe_bulk(
        self, body: bytes, source: InputDef, received: int, historical: bool
    ) -> list[Accepted]:
        try:
            raws = decode_bulk(body)
        except msgspec.DecodeError as exc:
            raise invalid(exc) from None
        if len(raws) > MAX_BULK_BATCHES:
            raise InvalidBatch(f"at most {MAX_BULK_BATCHES} batches per request, got {len(raws)}")
        accepted = []
        for index, raw in enumerate(raws):
            part = bytes(raw)
            try:
                obs = observe(part, source, received, None, historical=historical)
            except _DECODE_ERRORS as exc:
                raise invalid(exc, f"[{index}].") from None
            accepted.append(Accepted(source, obs, part))
        return accepted

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise PayloadTooLarge(f"request body over {self._max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLarge(f"request body over {self._max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _submit(self, items: Sequence[WriterItem]) -> list[Outcome]:
        futures = [asyncio.wrap_future(self._c.writer.submit(item)) for item in items]
        return list(await asyncio.gather(*futures))

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


def _client_ip(request: Request) -> str | None:
    """The user's address for client SDK batches: the first X-Forwarded-For hop, else the peer."""
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip() or None
    return request.client.host if request.client else None
