"""The Data Subject Request API (OpenDSR v3, reference §6; v1's `opengdpr_requests` too):
`/v3/requests`, `/v3/requests/{id}`, `/v3/requests/{id}/results`, `/v3/requests/{id}/receipt`
(a completed erasure's signed receipt), `/v3/discovery` (with the processor's certificate).

Callers authenticate as the Events API's do (HTTP Basic with an input's key and secret) and
reach only their workspace's requests: another workspace's request id is answered exactly
as an unknown one (404). Errors have OpenDSR's shape (`{code, message, errors[]}`), and
every answer carries `X-OpenDSR-Processor-Domain`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kindred.api.auth import InputAuthenticator
from kindred.api.errors import error_headers, status_of
from kindred.api.ratelimit import InputRateLimiter
from kindred.bootstrap import Container
from kindred.domain.dsr import DsrRequest
from kindred.domain.errors import AuthRejected, InvalidBatch, KindredError
from kindred.domain.tenancy import InputDef
from kindred.services.privacy.requests import DuplicateRequest
from kindred.wire.dsr import (
    DsrProblem,
    created_body,
    discovery_body,
    dsr_error_body,
    parse_request,
    receipt_body,
)

__all__ = ["dsr_routes"]

_ENCODER = msgspec.json.Encoder()
_MAX_LISTED = 1000

Handler = Callable[[Request], Awaitable[Response]]


class DsrApi:
    def __init__(self, container: Container) -> None:
        self._dsr = container.dsr
        self._key = container.processor_key
        self._auth = InputAuthenticator(container.tenancy)
        self._limits = InputRateLimiter()
        privacy = container.settings.privacy
        self._domain = privacy.processor_domain
        self._public_url = privacy.public_url
        self._max_body = container.settings.server.max_body_bytes

    def _caller(self, request: Request) -> InputDef:
        source = self._auth.basic(request.headers.get("authorization"))
        self._limits.check(source, time.monotonic())
        return source

    def answer(self, handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        """The handler with OpenDSR's error bodies and the processor domain header."""

        async def answered(request: Request) -> Response:
            try:
                response = await handler(request)
            except DsrProblem as problem:
                response = self._error(400, problem.problems, {})
            except DuplicateRequest as exc:
                response = self._error(400, [("duplicate_request_id", str(exc))], {})
            except KindredError as exc:
                # OpenDSR answers every credential it cannot accept 401 (reference §6),
                # a wrong secret as well as none.
                status = 401 if isinstance(exc, AuthRejected) else status_of(exc)
                reason = exc.code.lower()
                response = self._error(status, [(reason, str(exc))], error_headers(exc))
            response.headers["X-OpenDSR-Processor-Domain"] = self._domain
            return response

        return answered

    def _error(
        self, status: int, problems: list[tuple[str, str]], headers: dict[str, str]
    ) -> Response:
        body = _ENCODER.encode(dsr_error_body(status, problems))
        return Response(body, status, media_type="application/json", headers=headers)

    def _json(self, body: object, status: int = 200) -> Response:
        return Response(_ENCODER.encode(body), status, media_type="application/json")

    async def create(self, request: Request) -> Response:
        source = self._caller(request)
        body = await request.body()
        if len(body) > self._max_body:
            raise InvalidBatch(f"the body is larger than {self._max_body} bytes")
        parsed = parse_request(body, v1=request.url.path.startswith("/v1/"))
        created = await run_in_threadpool(
            self._dsr.create, source.workspace, source.name, parsed, body
        )
        return self._json(created_body(created, self._dsr.expected_ms(created)), 201)

    async def status(self, request: Request) -> Response:
        source = self._caller(request)
        found = await run_in_threadpool(
            self._dsr.get, source.workspace.workspace_id, request.path_params["request_id"]
        )
        return self._json(self._status(request, found))

    async def listing(self, request: Request) -> Response:
        source = self._caller(request)
        group = request.query_params.get("group_id") or None
        found = await run_in_threadpool(
            self._dsr.list, source.workspace.workspace_id, group, _MAX_LISTED
        )
        return self._json([self._status(request, r) for r in found])

    async def cancel(self, request: Request) -> Response:
        source = self._caller(request)
        cancelled = await run_in_threadpool(
            self._dsr.cancel, source.workspace.workspace_id, request.path_params["request_id"]
        )
        return self._json(self._status(request, cancelled))

    async def results(self, request: Request) -> Response:
        source = self._caller(request)
        found = await run_in_threadpool(
            self._dsr.results, source.workspace.workspace_id, request.path_params["request_id"]
        )
        return Response(found.body, 200, media_type=found.media_type)

    async def receipt(self, request: Request) -> Response:
        source = self._caller(request)
        found = await run_in_threadpool(
            self._dsr.receipt, source.workspace.workspace_id, request.path_params["request_id"]
        )
        return self._json(receipt_body(found.signed))

    async def discovery(self, _: Request) -> Response:
        certificate = await run_in_threadpool(lambda: self._key.certificate)
        return self._json(discovery_body(certificate))

    def _status(self, request: Request, found: DsrRequest) -> dict[str, object]:
        return self._dsr.status_object(found, self._public_url or str(request.base_url))


def dsr_routes(container: Container, timed: Callable[[str, Handler], Handler]) -> list[Route]:
    api = DsrApi(container)

    def route(path: str, name: str, handler: Handler, method: str) -> Route:
        return Route(path, timed(name, api.answer(handler)), methods=[method])

    return [
        route("/v3/requests", "dsr_create", api.create, "POST"),
        route("/v3/requests", "dsr_list", api.listing, "GET"),
        route("/v3/requests/{request_id}", "dsr_status", api.status, "GET"),
        route("/v3/requests/{request_id}", "dsr_cancel", api.cancel, "DELETE"),
        route("/v3/requests/{request_id}/results", "dsr_results", api.results, "GET"),
        route("/v3/requests/{request_id}/receipt", "dsr_receipt", api.receipt, "GET"),
        route("/v3/discovery", "dsr_discovery", api.discovery, "GET"),
        route("/v1/opengdpr_requests", "dsr_create", api.create, "POST"),
        route("/v1/opengdpr_requests/{request_id}", "dsr_status", api.status, "GET"),
        route("/v1/opengdpr_requests/{request_id}", "dsr_cancel", api.cancel, "DELETE"),
    ]
