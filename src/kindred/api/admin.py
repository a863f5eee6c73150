"""The admin HTTP API (IDS-5, IDS-6): the merge ledger, un-merge and alias, for operators'
tools. Every call carries a user's API key or the bootstrap `admin.token` as a bearer
token; `admin_guard.AdminGuard` checks it and the role the call needs before any route."""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from kindred.api.abtests import abtest_routes
from kindred.api.admin_guard import caller_of
from kindred.api.audience_shadows import shadow_routes
from kindred.api.calculated import calculated_routes
from kindred.api.forwarding_admin import forwarding_routes
from kindred.audiences.definition import AudienceDef
from kindred.audiences.versions import version_view
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.users import ADMIN_TOKEN
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.services.privacy.bulk import IdentityName
from kindred.services.writes.commands import AliasCall, UnmergeCall
from kindred.wire.batch import Mpid, decode_hook
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import check_json_body, int64_param, limit_param

__all__ = ["admin_routes"]

_ENCODER = msgspec.json.Encoder()


class AliasBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source_mpid: Mpid
    destination_mpid: Mpid
    start_unixtime_ms: int
    end_unixtime_ms: int
    workspace_id: int | None = None


_ALIAS = msgspec.json.Decoder(AliasBody, dec_hook=decode_hook)


class DeleteProfilesBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Either `mpids`, or `identities` with the `workspace_id` whose scope they name."""

    mpids: list[Mpid] | None = None
    identities: list[IdentityName] | None = None
    workspace_id: int | None = None


_DELETE_PROFILES = msgspec.json.Decoder(DeleteProfilesBody, dec_hook=decode_hook)


class AdminApi:
    def __init__(self, container: Container) -> None:
        self._c = container

    async def merges(self, request: Request) -> Response:
        self.check(request)
        mpid = _int_param(request, "mpid")
        limit = limit_param(request.query_params.get("limit"), "limit", 50) or 50
        return _json(self._c.ledger.rows(mpid, limit))

    async def unmerge(self, request: Request) -> Response:
        self.check(request)
        merge_id = _int_text(request.path_params["merge_id"], "merge_id")
        entry = self._c.ledger.get(merge_id)
        call = UnmergeCall(scope=entry.scope, received_ms=self._c.clock.now_ms(), merge_id=merge_id)
        outcome = await self._c.writer.submit_async(call)
        return _json({"merge": merge_id, "reapplied": outcome.reapplied})

    async def alias(self, request: Request) -> Response:
        self.check(request)
        raw = await request.body()
        check_json_body(raw)
        try:
            body = _ALIAS.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise as_invalid_batch(exc) from None
        workspaces = self._c.tenancy.workspaces
        ws_id = body.workspace_id if body.workspace_id is not None else next(iter(workspaces))
        if ws_id not in workspaces:
            raise NotFound(f"no workspace {ws_id}")
        call = AliasCall(
            max_merged=workspaces[ws_id].account.guardrails.max_profiles_merged,
            scope=workspaces[ws_id].identity_scope,
            received_ms=self._c.clock.now_ms(),
            source=int(body.source_mpid),
            destination=int(body.destination_mpid),
            start_ms=body.start_unixtime_ms,
            end_ms=body.end_unixtime_ms,
            rule="admin",
        )
        outcome = await self._c.writer.submit_async(call)
        return _json({"survivor": str(int(body.destination_mpid)), "moved": outcome.moved})

    async def delete_profiles(self, request: Request) -> Response:
        """Bulk deletion: each profile erased as a data subject request erases it; what
        was removed for each."""
        self.check(request)
        raw = await request.body()
        check_json_body(raw)
        try:
            body = _DELETE_PROFILES.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise as_invalid_batch(exc) from None
        bulk = self._c.bulk_delete
        if (body.mpids is None) == (body.identities is None):
            raise InvalidBatch("give either mpids or identities", "mpids")
        if body.mpids is not None:
            if body.workspace_id is not None:
                raise InvalidBatch("workspace_id goes with identities", "workspace_id")
            mpids = [int(m) for m in body.mpids]
            done = await run_in_threadpool(bulk.by_mpids, mpids)
        else:
            assert body.identities is not None
            if body.workspace_id is None:
                raise InvalidBatch("identities need a workspace_id", "workspace_id")
            done = await run_in_threadpool(bulk.by_identities, body.workspace_id, body.identities)
        return _json({"profiles": done, "deleted": sum(d.found for d in done)})

    def check(self, request: Request) -> None:
        """The caller passed AdminGuard (its credential and role were checked there)."""
        caller_of(request)


def _int_param(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    return None if text is None else _int_text(text, name)


def _int_text(text: str, name: str) -> int:
    return int64_param(text, name)


def _listed(request: Request, name: str) -> list[str]:
    """A list parameter, comma-separated, repeated, or both."""
    return [
        item.strip()
        for value in request.query_params.getlist(name)
        for item in value.split(",")
        if item.strip()
    ]


def _audience_id(request: Request) -> int:
    return _int_text(request.path_params["audience_id"], "audience_id")


def _json(data: object) -> Response:
    return Response(_ENCODER.encode(data), media_type="application/json")


_AUDIENCE = msgspec.json.Decoder(AudienceDef)
_KEYS = msgspec.json.Decoder(dict[str, object])
# Who saves when a route names no caller; routes record `caller_of(request).name`.
_BY = ADMIN_TOKEN


class AudienceAdmin:
    """`/admin/v1/audiences...`: definitions (AUD-1, AUD-10) and history (AUD-12), each
    audience seen, used and changed as its access allows the caller
    (services.audiences.access)."""

    def __init__(self, container: Container, check: AdminApi) -> None:
        self._service = container.audiences
        self._access = AudienceAccessCheck(container.audiences)
        self._downloads = container.downloads
        self._estimates = container.estimates
        self._clock = container.clock
        self._admin = check

    async def list(self, request: Request) -> Response:
        """Each audience the caller may see, with its size: the estimate
        (`size_estimated`) until its activation's calculation is complete."""
        caller = caller_of(request)
        found = self._access.visible(caller, self._service.all(request.query_params.getlist("tag")))
        return _json(await run_in_threadpool(lambda: [self._estimates.item(a) for a in found]))

    async def create(self, request: Request) -> Response:
        caller = caller_of(request)
        audience = _audience(await request.body())
        self._access.check_nesting(caller, audience)
        created = self._service.create(audience, created_by=caller.name)
        return Response(_ENCODER.encode(created), status_code=201, media_type="application/json")

    async def get(self, request: Request) -> Response:
        audience = self._access.seen(caller_of(request), _audience_id(request))
        return _json(await run_in_threadpool(self._estimates.item, audience))

    async def estimate(self, request: Request) -> Response:
        """The estimated size of a definition (AUD-7): the body's (POST, not saved), or
        the saved audience's (GET `/audiences/{id}/estimate`). An audience the caller
        may not see, or a definition nesting one they may not use, is not estimated."""
        caller = caller_of(request)
        if "audience_id" in request.path_params:
            audience = self._access.seen(caller, _audience_id(request))
        else:
            audience = _unsaved(await request.body())
            self._access.check_nesting(caller, audience)
        return _json(await run_in_threadpool(self._estimates.estimate, audience))

    async def update(self, request: Request) -> Response:
        caller = caller_of(request)
        audience_id = _audience_id(request)
        current = self._access.changeable(caller, audience_id)
        body = await request.body()
        changed = _audience(body)
        if "access" not in _KEYS.decode(body):
            # A definition sent without `access` keeps the audience's.
            changed = msgspec.structs.replace(changed, access=current.access)
        self._access.check_nesting(caller, changed)
        return _json(self._service.update(audience_id, changed, changed_by=caller.name))

    async def action(self, request: Request) -> Response:
        caller = caller_of(request)
        audience_id = _audience_id(request)
        action = request.path_params["action"]
        if action == "clone":
            self._access.seen(caller, audience_id)
            return _json(self._service.clone(audience_id, created_by=caller.name))
        if action not in ("activate", "deactivate", "calculate"):
            raise NotFound(f"no action {action!r}: activate, deactivate, clone or calculate")
        self._access.changeable(caller, audience_id)
        if action == "calculate":
            calculated = self._service.calculate(audience_id, changed_by=caller.name)
            return Response(
                _ENCODER.encode(calculated), status_code=202, media_type="application/json"
            )
        status = "active" if action == "activate" else "inactive"
        return _json(self._service.set_status(audience_id, status, changed_by=caller.name))

    async def delete(self, request: Request) -> Response:
        caller = caller_of(request)
        audience_id = _audience_id(request)
        self._access.changeable(caller, audience_id)
        return _json(self._service.delete(audience_id, changed_by=caller.name))

    async def members(self, request: Request) -> Response:
        audience_id = _audience_id(request)
        at = _int_param(request, "at") or self._clock.now_ms()
        self._access.seen(caller_of(request), audience_id)
        members = self._service.members_at(audience_id, at)
        return _json({"audience_id": audience_id, "at_ms": at, "mpids": [str(m) for m in members]})

    async def metrics(self, request: Request) -> Response:
        audience_id = _audience_id(request)
        self._access.seen(caller_of(request), audience_id)
        return _json(self._service.metrics(audience_id))

    async def versions(self, request: Request) -> Response:
        """Every version, or with `?at=MS` the one in force then."""
        audience_id = _audience_id(request)
        at = _int_param(request, "at")
        self._access.seen(caller_of(request), audience_id)
        if at is not None:
            return _json(version_view(self._service.in_force_at(audience_id, at)))
        return _json([version_view(v) for v in self._service.versions(audience_id)])

    async def version(self, request: Request) -> Response:
        audience_id = _audience_id(request)
        number = _int_text(request.path_params["version"], "version")
        self._access.seen(caller_of(request), audience_id)
        return _json(version_view(self._service.version(audience_id, number)))

    async def diff(self, request: Request) -> Response:
        """`?from=A&to=B`: what changed from version A to version B."""
        audience_id = _audience_id(request)
        before, after = _int_param(request, "from"), _int_param(request, "to")
        if before is None or after is None:
            raise InvalidBatch("from and to (version numbers) are required", "from")
        self._access.seen(caller_of(request), audience_id)
        changes = self._service.diff(audience_id, before, after)
        return _json({"audience_id": audience_id, "from": before, "to": after, "changes": changes})

    async def download(self, request: Request) -> Response:
        """A ZIP of the audience's members' identities (AUD-9), streamed as it is read:
        `/audiences/{id}/download` or `/audiences/download?audience_ids=1,2`, with
        `identity_types=email,customer_id` (comma-separated or repeated) and `sample=N`;
        one audience's A/B test variations with `variations=Email,Control` (a CSV each)."""
        caller = caller_of(request)
        if "audience_id" in request.path_params:
            ids = [_audience_id(request)]
        else:
            ids = [_int_text(t, "audience_ids") for t in _listed(request, "audience_ids")]
        types, sample = _listed(request, "identity_types"), _int_param(request, "sample")
        for audience_id in ids:
            self._access.usable(caller, audience_id)
        download = self._downloads.prepare(ids, types, sample, _listed(request, "variations"))
        return StreamingResponse(
            download.chunks(),
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="{download.archive_name}"'},
        )

    async def audiences_of(self, request: Request) -> Response:
        caller = caller_of(request)
        mpid = _int_text(request.path_params["mpid"], "mpid")
        at = _int_param(request, "at") or self._clock.now_ms()
        found = self._service.audiences_of_at(mpid, at)
        seen = {a.id for a in self._access.visible(caller, self._service.all())}
        return _json(
            {"mpid": str(mpid), "at_ms": at, "audience_ids": [a for a in found if a in seen]}
        )


def _audience(body: bytes) -> AudienceDef:
    check_json_body(body)
    try:
        return _AUDIENCE.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None


def _unsaved(body: bytes) -> AudienceDef:
    """A definition to estimate: the body a create takes, its name optional."""
    check_json_body(body)
    try:
        doc = msgspec.json.decode(body)
        if not isinstance(doc, dict):
            raise InvalidBatch("the body is a definition: a JSON object", "body")
        return msgspec.convert({"name": "", **doc, "id": 0}, AudienceDef)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None


def admin_routes(container: Container) -> list[Route]:
    api = AdminApi(container)
    audiences = AudienceAdmin(container, api)
    one = "/admin/v1/audiences/{audience_id}"
    return [
        Route("/admin/v1/merges", api.merges, methods=["GET"]),
        Route("/admin/v1/merges/{merge_id}/unmerge", api.unmerge, methods=["POST"]),
        Route("/admin/v1/alias", api.alias, methods=["POST"]),
        Route("/admin/v1/profiles/delete", api.delete_profiles, methods=["POST"]),
        Route("/admin/v1/audiences", audiences.list, methods=["GET"]),
        Route("/admin/v1/audiences", audiences.create, methods=["POST"]),
        Route("/admin/v1/audiences/download", audiences.download, methods=["GET"]),
        Route("/admin/v1/audiences/estimate", audiences.estimate, methods=["POST"]),
        Route(one, audiences.get, methods=["GET"]),
        Route(one, audiences.update, methods=["PUT"]),
        Route(one, audiences.delete, methods=["DELETE"]),
        Route(one + "/members", audiences.members, methods=["GET"]),
        Route(one + "/metrics", audiences.metrics, methods=["GET"]),
        Route(one + "/estimate", audiences.estimate, methods=["GET"]),
        Route(one + "/download", audiences.download, methods=["GET"]),
        Route(one + "/versions", audiences.versions, methods=["GET"]),
        Route(one + "/versions/{version}", audiences.version, methods=["GET"]),
        Route(one + "/diff", audiences.diff, methods=["GET"]),
        *shadow_routes(container, api.check),
        Route(one + "/{action}", audiences.action, methods=["POST"]),
        Route("/admin/v1/profiles/{mpid}/audiences", audiences.audiences_of, methods=["GET"]),
        *forwarding_routes(container, api.check),
        *calculated_routes(container, api.check),
        *abtest_routes(container, api.check),
    ]
