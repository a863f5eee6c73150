"""Shadow edits over HTTP (BEY-4), admin token: `/admin/v1/audiences/{id}/shadow` to start
one (POST, the new definition as the body), see its progress and preview (GET) or discard
it (DELETE); `.../shadow/promote` (POST) to swap the definitions."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kindred.api.admin_guard import caller_of
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import check_json_body, int64_param

__all__ = ["shadow_routes"]

_ENCODER = msgspec.json.Encoder()
_DEFINITION = msgspec.json.Decoder(AudienceDef)
# Who saves through this API, in an audience's history.


class ShadowAdmin:
    def __init__(self, container: Container, check: Callable[[Request], None]) -> None:
        self._shadows = container.audience_shadows
        self._check = check
        # A shadow edit is an edit: only those who may change the audience start, promote
        # or discard one; those who may see it see it.
        self._access = AudienceAccessCheck(container.audiences)

    async def start(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        definition = _definition(await request.body())
        caller = caller_of(request)
        self._access.changeable(caller, audience_id)
        self._access.check_nesting(caller, definition)
        view = await run_in_threadpool(self._shadows.start, audience_id, definition, caller.name)
        return _json(view, 202)

    async def show(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        self._access.seen(caller_of(request), audience_id)
        return _json(self._shadows.show(audience_id))

    async def discard(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        self._access.changeable(caller_of(request), audience_id)
        return _json(await run_in_threadpool(self._shadows.discard, audience_id))

    async def promote(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        caller = caller_of(request)
        self._access.changeable(caller, audience_id)
        return _json(await run_in_threadpool(self._shadows.promote, audience_id, caller.name))


def _audience_id(request: Request) -> int:
    return int64_param(request.path_params["audience_id"], "audience_id")


def _definition(body: bytes) -> AudienceDef:
    check_json_body(body)
    try:
        return _DEFINITION.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None


def _json(data: object, status: int = 200) -> Response:
    return Response(_ENCODER.encode(data), status_code=status, media_type="application/json")


def shadow_routes(container: Container, check: Callable[[Request], None]) -> list[Route]:
    """The routes; they go before `/admin/v1/audiences/{id}/{action}`, which would take
    `shadow` for an action."""
    api = ShadowAdmin(container, check)
    shadow = "/admin/v1/audiences/{audience_id}/shadow"
    return [
        Route(shadow, api.start, methods=["POST"]),
        Route(shadow, api.show, methods=["GET"]),
        Route(shadow, api.discard, methods=["DELETE"]),
        Route(shadow + "/promote", api.promote, methods=["POST"]),
    ]
