"""`/admin/v1/outputs`, `/admin/v1/connections...`, `/admin/v1/dead-letters...`: outputs and
connections at run time (TEN-4), connection status, resume (AUD-11), dead letters.

Output secrets are write-only (SEC-3): answered masked, and kept when a save sends the
mask back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kindred.api.admin_guard import caller_of
from kindred.bootstrap import Container
from kindred.domain.errors import ConfigError, InvalidBatch, NotFound
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.services.audiences.connections import BulkConnectionRequest, connection_name
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import check_json_body, limit_param

__all__ = ["forwarding_routes"]

_ENCODER = msgspec.json.Encoder()


class ReplayBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    connection: str | None = None
    ids: list[int] | None = None


_REPLAY = msgspec.json.Decoder(ReplayBody)
_BULK = msgspec.json.Decoder(BulkConnectionRequest)

_CONNECTION_KINDS = {"events": "event_connection", "audiences": "audience_connection"}


class ForwardingAdmin:
    def __init__(self, container: Container, check: Any) -> None:
        self._c = container
        self._access = AudienceAccessCheck(container.audiences)
        self._check = check

    async def outputs(self, request: Request) -> Response:
        self._check(request)
        return _json(self._c.catalog.outputs_shown())

    async def save_output(self, request: Request) -> Response:
        self._check(request)
        return _json(self._save("output", await request.body()), 201)

    async def put_output(self, request: Request) -> Response:
        self._check(request)
        name = request.path_params["name"]
        return _json(self._save("output", await request.body(), name=name))

    async def patch_output(self, request: Request) -> Response:
        self._check(request)
        name = request.path_params["name"]
        body = await request.body()
        check_json_body(body)
        try:
            return _json(self._c.catalog.patch("output", name, body))
        except ConfigError as exc:
            raise InvalidBatch(str(exc)) from None

    async def delete_output(self, request: Request) -> Response:
        self._check(request)
        self._delete("output", request.path_params["name"])
        return Response(status_code=204)

    async def connections(self, request: Request) -> Response:
        self._check(request)
        defs = self._c.catalog.current()
        hidden = self._hidden(request)
        return _json(
            {
                "status": [v for v in self._c.deliveries.connections() if v.name not in hidden],
                "event_connections": defs.event_connections,
                "audience_connections": [
                    c for c in defs.audience_connections if c.name not in hidden
                ],
            }
        )

    async def save_connection(self, request: Request) -> Response:
        self._check(request)
        kind = _CONNECTION_KINDS.get(request.path_params["kind"])
        if kind is None:
            raise InvalidBatch("connections are of kind events or audiences", "kind")
        body = await request.body()
        check_json_body(body)
        if kind == "audience_connection":
            named = _audience_named(body)
            if named is not None:
                self._access.check_connecting(caller_of(request), [("audience_id", named)])
        self._check_not_hidden(request, [("name", _named(body))])
        return _json(self._save(kind, body), 201)

    async def bulk_connections(self, request: Request) -> Response:
        """Many audiences to one output (AUD-10): all made, each with its initial sync, or
        none, the answer naming the item refused."""
        self._check(request)
        raw = await request.body()
        check_json_body(raw)
        try:
            body = _BULK.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise as_invalid_batch(exc) from None
        named = [
            (f"audiences[{n}]", a if isinstance(a, int) else a.audience_id)
            for n, a in enumerate(body.audiences)
        ]
        self._access.check_connecting(caller_of(request), named)
        self._check_not_hidden(
            request,
            [
                (f"audiences[{n}].name", a.name)
                for n, a in enumerate(body.audiences)
                if not isinstance(a, int)
            ]
            + [
                (f"audiences[{n}]", connection_name(body.output, a))
                for n, a in enumerate(body.audiences)
                if isinstance(a, int)
            ],
        )
        return _json(self._c.bulk_connections.connect(body), 201)

    async def delete_connection(self, request: Request) -> Response:
        self._check(request)
        name = self._visible_name(request)
        defs = self._c.catalog.current()
        kind = (
            "event_connection"
            if any(c.name == name for c in defs.event_connections)
            else "audience_connection"
        )
        self._delete(kind, name)
        return Response(status_code=204)

    async def resume(self, request: Request) -> Response:
        self._check(request)
        return _json(self._c.deliveries.resume(self._visible_name(request)))

    async def dead_letters(self, request: Request) -> Response:
        self._check(request)
        limit = limit_param(request.query_params.get("limit"), "limit", 100)
        connection = request.query_params.get("connection")
        hidden = self._hidden(request)
        if connection in hidden:
            return _json([])
        found = self._c.deliveries.dead_letters(connection, limit)
        return _json([d for d in found if d.connection not in hidden])

    async def replay(self, request: Request) -> Response:
        self._check(request)
        raw = await request.body() or b"{}"
        check_json_body(raw)
        try:
            body = _REPLAY.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise as_invalid_batch(exc) from None
        # Only admins replay (docs/security.md), and they see every audience.
        return _json({"replayed": self._c.deliveries.replay(body.connection, body.ids)})

    def _hidden(self, request: Request) -> frozenset[str]:
        """The audience connections of audiences the caller may not see."""
        defs = self._c.catalog.current()
        return self._access.hidden_connections(
            caller_of(request), [(c.name, c.audience_id) for c in defs.audience_connections]
        )

    def _visible_name(self, request: Request) -> str:
        """The connection the path names, answered as none when the caller may not see
        its audience."""
        name: str = request.path_params["name"]
        if name in self._hidden(request):
            raise NotFound(f"no connection {name!r}")
        return name

    def _check_not_hidden(self, request: Request, named: Sequence[tuple[str, object]]) -> None:
        """A save may not replace a connection whose audience the caller may not see."""
        hidden = self._hidden(request)
        for path, name in named:
            if isinstance(name, str) and name in hidden:
                raise InvalidBatch(f"a connection named {name!r} exists", path)

    def _save(self, kind: str, body: bytes, name: str | None = None) -> object:
        check_json_body(body)
        try:
            return self._c.catalog.save(kind, body, name=name)
        except ConfigError as exc:
            raise InvalidBatch(str(exc)) from None

    def _delete(self, kind: str, name: str) -> None:
        try:
            self._c.catalog.delete(kind, name)
        except ConfigError as exc:
            raise InvalidBatch(str(exc)) from None


def _audience_named(body: bytes) -> int | None:
    """The `audience_id` a connection's body names, if it is one (the catalog checks the
    rest of the body)."""
    try:
        found = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    audience_id = found.get("audience_id") if isinstance(found, dict) else None
    return audience_id if type(audience_id) is int else None


def _named(body: bytes) -> object:
    """The `name` a connection's body gives, if it is a JSON object."""
    try:
        found = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    return found.get("name") if isinstance(found, dict) else None


def _json(data: object, status: int = 200) -> Response:
    return Response(_ENCODER.encode(data), status_code=status, media_type="application/json")


def forwarding_routes(container: Container, check: Any) -> list[Route]:
    api = ForwardingAdmin(container, check)
    return [
        Route("/admin/v1/outputs", api.outputs, methods=["GET"]),
        Route("/admin/v1/outputs", api.save_output, methods=["POST"]),
        Route("/admin/v1/outputs/{name}", api.put_output, methods=["PUT"]),
        Route("/admin/v1/outputs/{name}", api.patch_output, methods=["PATCH"]),
        Route("/admin/v1/outputs/{name}", api.delete_output, methods=["DELETE"]),
        Route("/admin/v1/connections", api.connections, methods=["GET"]),
        Route("/admin/v1/connections/audiences/bulk", api.bulk_connections, methods=["POST"]),
        Route("/admin/v1/connections/{kind}", api.save_connection, methods=["POST"]),
        Route("/admin/v1/connections/{name}", api.delete_connection, methods=["DELETE"]),
        Route("/admin/v1/connections/{name}/resume", api.resume, methods=["POST"]),
        Route("/admin/v1/dead-letters", api.dead_letters, methods=["GET"]),
        Route("/admin/v1/dead-letters/replay", api.replay, methods=["POST"]),
    ]
