"""The Platform API's audience routes (reference §7): `GET /v1/audiences?accountId=N`,
`GET /v1/workspace/{workspace_id}/audiences`, `DELETE /v1/audiences/{audience_id}`, with a
bearer token (from `/oauth/token`) of a credential that has the `platform` scope. Answers
carry mParticle's envelope, `{"data": [...], "dataType": "audience"}`."""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kindred.bootstrap import Container
from kindred.domain.credentials import ApiCredential
from kindred.wire.limits import int64_param

__all__ = ["platform_routes"]

_ENCODER = msgspec.json.Encoder()


class PlatformApi:
    def __init__(self, container: Container) -> None:
        self._tokens = container.tokens
        self._audiences = container.platform_audiences

    def _credential(self, request: Request) -> ApiCredential:
        return self._tokens.authenticate(request.headers.get("authorization"))

    async def list(self, request: Request) -> Response:
        credential = self._credential(request)
        text = request.query_params.get("accountId")
        account = None if text is None else int64_param(text, "accountId")
        items = await run_in_threadpool(self._audiences.of_account, credential, account)
        return _envelope(items)

    async def of_workspace(self, request: Request) -> Response:
        credential = self._credential(request)
        workspace = int64_param(request.path_params["workspace_id"], "workspace_id")
        items = await run_in_threadpool(self._audiences.of_workspace, credential, workspace)
        return _envelope(items)

    async def delete(self, request: Request) -> Response:
        credential = self._credential(request)
        audience = int64_param(request.path_params["audience_id"], "audience_id")
        await run_in_threadpool(self._audiences.delete, credential, audience)
        return Response(status_code=204)


def _envelope(items: list[object]) -> Response:
    body = _ENCODER.encode({"data": items, "dataType": "audience"})
    return Response(body, media_type="application/json")


def platform_routes(container: Container) -> list[Route]:
    api = PlatformApi(container)
    return [
        Route("/v1/audiences", api.list, methods=["GET"]),
        Route("/v1/workspace/{workspace_id}/audiences", api.of_workspace, methods=["GET"]),
        Route("/v1/audiences/{audience_id}", api.delete, methods=["DELETE"]),
    ]
