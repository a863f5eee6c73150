"""Calculated attributes over HTTP: `/admin/v1/calculated-attributes...` (CA-1, admin
token) and the seeding API `/v2/calculatedattributes`, `/v2/bulkcalculatedattributes`
(authenticated like the events API inputs; 202, all or nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kindred.api.auth import InputAuthenticator
from kindred.attributes.definition import CalculatedDef
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch
from kindred.services.calculated.admin import SeedEntry
from kindred.wire.batch import Mpid
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import check_json_body, int64_param

__all__ = ["calculated_routes"]

_ENCODER = msgspec.json.Encoder()
T = TypeVar("T")
MAX_BULK_SEEDS = 100


class NewDefinition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    workspace_id: int
    description: str = ""
    definition: dict[str, object]


class SeedWorkspace(msgspec.Struct, kw_only=True):
    workspace: list[SeedEntry] = msgspec.field(default_factory=list)


class SeedRequest(msgspec.Struct, kw_only=True):
    """The seeding API's body (reference §4); `user_attributes` are not taken here."""

    environment: str = "production"
    mpid: int | str | None = None
    identities: dict[str, str] = msgspec.field(default_factory=dict)
    calculated_attributes: SeedWorkspace = msgspec.field(default_factory=SeedWorkspace)


_NEW = msgspec.json.Decoder(NewDefinition)
_EDIT = msgspec.json.Decoder(dict[str, object])
_SEED = msgspec.json.Decoder(SeedRequest)
_BULK = msgspec.json.Decoder(list[SeedRequest])


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    check_json_body(body)
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None


def _json(data: object, status: int = 200) -> Response:
    return Response(_ENCODER.encode(data), status_code=status, media_type="application/json")


def _id(request: Request) -> int:
    return int64_param(request.path_params["def_id"], "def_id")


class CalculatedAdmin:
    def __init__(self, container: Container, check: Callable[[Request], None]) -> None:
        self._service = container.calculated
        self._check = check

    async def list(self, request: Request) -> Response:
        self._check(request)
        return _json(self._service.all())

    async def create(self, request: Request) -> Response:
        self._check(request)
        body = _decode(_NEW, await request.body())
        draft = CalculatedDef(
            name=body.name,
            workspace_id=body.workspace_id,
            description=body.description,
            draft=body.definition,
        )
        return _json(self._service.create(draft), 201)

    async def get(self, request: Request) -> Response:
        self._check(request)
        return _json(self._service.get(_id(request)))

    async def update(self, request: Request) -> Response:
        self._check(request)
        changes = _decode(_EDIT, await request.body())
        if "definition" in changes:
            changes["draft"] = changes.pop("definition")
        return _json(self._service.edit(_id(request), changes))

    async def delete(self, request: Request) -> Response:
        self._check(request)
        self._service.delete(_id(request))
        return _json({"deleted": _id(request)})

    async def activate(self, request: Request) -> Response:
        self._check(request)
        return _json(self._service.activate(_id(request)))

    async def calculation(self, request: Request) -> Response:
        self._check(request)
        return _json(self._service.progress(_id(request)))


class SeedApi:
    def __init__(self, container: Container) -> None:
        self._service = container.calculated
        self._auth = InputAuthenticator(container.tenancy)

    async def one(self, request: Request) -> Response:
        await self._seed(request, [_decode(_SEED, await request.body())])
        return Response(status_code=202)

    async def bulk(self, request: Request) -> Response:
        seeds = _decode(_BULK, await request.body())
        if len(seeds) > MAX_BULK_SEEDS:
            raise InvalidBatch(f"at most {MAX_BULK_SEEDS} profiles per request")
        await self._seed(request, seeds)
        return Response(status_code=202)

    async def _seed(self, request: Request, seeds: list[SeedRequest]) -> None:
        source = self._auth.basic(request.headers.get("authorization"))
        workspace_id = source.workspace.workspace_id
        mpids = [_mpid(seed) for seed in seeds]
        for seed, mpid in zip(seeds, mpids, strict=True):
            await run_in_threadpool(
                self._service.seed,
                workspace_id,
                mpid,
                seed.identities,
                seed.calculated_attributes.workspace,
            )


def _mpid(seed: SeedRequest) -> int | None:
    if seed.mpid is None:
        if not seed.identities:
            raise InvalidBatch("give mpid or identities", "mpid")
        return None
    try:
        return int(Mpid.parse(seed.mpid))
    except ValueError as exc:
        raise InvalidBatch(str(exc), "mpid") from None


def calculated_routes(container: Container, check: Callable[[Request], None]) -> list[Route]:
    admin = CalculatedAdmin(container, check)
    seeds = SeedApi(container)
    base = "/admin/v1/calculated-attributes"
    one = base + "/{def_id}"
    return [
        Route(base, admin.list, methods=["GET"]),
        Route(base, admin.create, methods=["POST"]),
        Route(one, admin.get, methods=["GET"]),
        Route(one, admin.update, methods=["PUT"]),
        Route(one, admin.delete, methods=["DELETE"]),
        Route(one + "/activation", admin.activate, methods=["POST"]),
        Route(one + "/calculation", admin.calculation, methods=["GET"]),
        Route("/v2/calculatedattributes", seeds.one, methods=["POST"]),
        Route("/v2/bulkcalculatedattributes", seeds.bulk, methods=["POST"]),
    ]
