"""`/admin/v1/audiences/{id}/test...` and `/admin/v1/profiles/{mpid}/variations`: an
audience's A/B test (AUD-8) made, shown and deleted, a variation's members, and a
profile's variations. Behind the admin token, like every admin route."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kindred.api.admin_guard import caller_of
from kindred.audiences.abtest import AbTestRequest
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import check_json_body, int64_param

__all__ = ["abtest_routes"]

_ENCODER = msgspec.json.Encoder()
_REQUEST = msgspec.json.Decoder(AbTestRequest)


class AbTestAdmin:
    def __init__(self, container: Container, check: Callable[[Request], None]) -> None:
        self._tests = container.abtests
        self._check = check
        # A test is part of its audience: seen by those who see it, changed by those who
        # may change it (its owner, admins).
        self._audiences = container.audiences
        self._access = AudienceAccessCheck(container.audiences)

    async def put(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        body = await request.body()
        check_json_body(body)
        try:
            wanted = _REQUEST.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise as_invalid_batch(exc) from None
        self._access.changeable(caller_of(request), audience_id)
        return _json(await run_in_threadpool(self._tests.set, audience_id, wanted))

    async def get(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        self._access.seen(caller_of(request), audience_id)
        return _json(await run_in_threadpool(self._tests.show, audience_id))

    async def delete(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        self._access.changeable(caller_of(request), audience_id)
        ending = await run_in_threadpool(self._tests.delete, audience_id)
        return _json({"audience_id": audience_id, "ending_connections": ending})

    async def members(self, request: Request) -> Response:
        self._check(request)
        audience_id = _audience_id(request)
        variation = request.query_params.get("variation")
        if variation is None:
            raise InvalidBatch("name the variation (?variation=NAME)", "variation")
        self._access.seen(caller_of(request), audience_id)
        mpids = await run_in_threadpool(self._tests.members, audience_id, variation)
        return _json(
            {
                "audience_id": audience_id,
                "variation": variation,
                "mpids": [str(m) for m in mpids],
            }
        )

    async def of_profile(self, request: Request) -> Response:
        self._check(request)
        mpid = int64_param(request.path_params["mpid"], "mpid")
        found = await run_in_threadpool(self._tests.of_profile, mpid)
        caller = caller_of(request)
        seen = {a.id for a in self._access.visible(caller, self._audiences.all())}
        shown = [v for v in found if v.audience_id in seen]
        return _json({"mpid": str(mpid), "variations": shown})


def _audience_id(request: Request) -> int:
    return int64_param(request.path_params["audience_id"], "audience_id")


def _json(data: object) -> Response:
    return Response(_ENCODER.encode(data), media_type="application/json")


def abtest_routes(container: Container, check: Callable[[Request], None]) -> list[Route]:
    api = AbTestAdmin(container, check)
    test = "/admin/v1/audiences/{audience_id}/test"
    return [
        Route(test, api.put, methods=["PUT"]),
        Route(test, api.get, methods=["GET"]),
        Route(test, api.delete, methods=["DELETE"]),
        Route(test + "/members", api.members, methods=["GET"]),
        Route("/admin/v1/profiles/{mpid}/variations", api.of_profile, methods=["GET"]),
    ]
