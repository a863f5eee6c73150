"""The Forwarding pages (TEN-3, ENR-1..4, AUD-11): outputs (each kind's form; secrets
shown masked as the admin API masks them, and kept when a save sends the mask back), event
and audience connections (status, pending, delivered, the last error, faults and Resume),
and each connection's dead letters (replay all or those chosen).

Changing an output or a connection needs the role the admin API's writes under
`/admin/v1/outputs` and `/admin/v1/connections` need, replaying dead letters the role of
`POST /admin/v1/dead-letters/replay` (`domain.users.role_needed`). An audience connection is
shown only to those who may see its audience, and made or changed only by those who may
use it (services.audiences.access), as the admin API checks. Outputs and connections of
the config file are shown, not changed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kindred.api.ui.answers import ActionHandler, Form, Guards, first, html, message
from kindred.api.ui.forwarding_form import (
    OUTPUT_FIELDS,
    audience_connection_document,
    config_error_field,
    event_connection_document,
    form_values,
    output_document,
)
from kindred.api.ui.layout import page
from kindred.api.ui.render import path_part
from kindred.api.ui.session import Visitor
from kindred.api.ui.times import query
from kindred.bootstrap import Container
from kindred.domain.errors import AuthRejected, ConfigError, InvalidBatch, NotFound
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef, masked
from kindred.domain.users import Role, may_see, may_use, role_needed
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.services.forwarding.admin import ConnectionView
from kindred.wire.limits import strict_int

__all__ = ["forwarding_routes"]

log = logging.getLogger("kindred.ui")

CHANGE_OUTPUTS = role_needed("POST", "/admin/v1/outputs")
CHANGE_CONNECTIONS = role_needed("POST", "/admin/v1/connections/events")
RESUME = role_needed("POST", "/admin/v1/connections/NAME/resume")
REPLAY = role_needed("POST", "/admin/v1/dead-letters/replay")
DEAD_LETTERS_SHOWN = 200
_ACTIVE = "forwarding"
_KIND_NAMES = {"webhook": "Webhook", "jsonl": "JSON lines", "nats": "NATS JetStream"}
_CONNECTION_KINDS = {"events": "event_connection", "audiences": "audience_connection"}


class ForwardingPages:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._catalog = container.catalog
        self._deliveries = container.deliveries
        self._access = AudienceAccessCheck(container.audiences)

    # --- outputs ---------------------------------------------------------------------

    async def outputs(self, request: Request, user: Visitor) -> Response:
        defs = self._catalog.current()
        used: dict[str, list[str]] = {}
        for c in defs.connections():
            used.setdefault(c.output, []).append(c.name)
        rows = [
            {
                "output": o,
                "kind": _KIND_NAMES.get(o.kind, o.kind),
                "declared": self._catalog.is_declared(o.name),
                "used_by": used.get(o.name, []),
            }
            for o in self._catalog.outputs_shown()
        ]
        values = {
            "rows": rows,
            "kinds": list(_KIND_NAMES.items()),
            "may_change": user.may(CHANGE_OUTPUTS),
            "done": request.query_params.get("deleted", ""),
        }
        return html(page("outputs.html", "Outputs", user=user, active=_ACTIVE, values=values))

    async def new_output(self, request: Request, user: Visitor) -> Response:
        kind = request.query_params.get("kind", "webhook")
        if kind not in OUTPUT_FIELDS:
            return message(user, "Outputs", _ACTIVE, f"No output kind {kind!r}.", 404)
        if not user.may(CHANGE_OUTPUTS):
            return _refused(user, CHANGE_OUTPUTS)
        values = {"kind": kind, "timeout_s": "10.0", "batch_size": "100"}
        return self._output_page(user, None, kind, values, {})

    async def create_output(self, _: Request, user: Visitor, posted: Form) -> Response:
        kind = first(posted, "kind")
        if kind not in OUTPUT_FIELDS:
            return message(user, "Outputs", _ACTIVE, f"No output kind {kind!r}.", 400)
        doc = output_document(kind, posted)
        if self._catalog.current().output(str(doc["name"])) is not None:
            errors = {"name": f"an output named {doc['name']!r} exists"}
            return self._output_page(user, None, kind, _posted(posted), errors, status=400)
        return await self._save_output(user, None, kind, doc, posted)

    async def output(self, request: Request, user: Visitor) -> Response:
        found = self._output(request)
        if found is None:
            return _missing(user, "output", request.path_params["name"])
        values = form_values(masked(found))
        return self._output_page(user, found, found.kind, values, {}, notice=_notice(request))

    async def save_output(self, request: Request, user: Visitor, posted: Form) -> Response:
        found = self._output(request)
        if found is None:
            return _missing(user, "output", request.path_params["name"])
        doc = output_document(found.kind, posted, name=found.name)
        return await self._save_output(user, found, found.kind, doc, posted)

    async def _save_output(
        self,
        user: Visitor,
        found: OutputDef | None,
        kind: str,
        doc: dict[str, object],
        posted: Form,
    ) -> Response:
        try:
            await run_in_threadpool(self._catalog.save, "output", msgspec.json.encode(doc))
        except (ConfigError, InvalidBatch, NotFound) as exc:
            errors = _errors(exc)
            return self._output_page(user, found, kind, _posted(posted), errors, status=400)
        log.info("ui user %s saved output %s", user.name, doc["name"])
        target = f"/ui/outputs/{path_part(doc['name'])}?done=saved"
        return RedirectResponse(target, status_code=303)

    async def delete_output(self, request: Request, user: Visitor, _: Form) -> Response:
        found = self._output(request)
        if found is None:
            return _missing(user, "output", request.path_params["name"])
        try:
            await run_in_threadpool(self._catalog.delete, "output", found.name)
        except (ConfigError, NotFound) as exc:
            return message(user, found.name, _ACTIVE, str(exc), 400)
        log.info("ui user %s deleted output %s", user.name, found.name)
        return RedirectResponse("/ui/outputs" + query(deleted=found.name), status_code=303)

    def _output(self, request: Request) -> OutputDef | None:
        return self._catalog.current().output(request.path_params["name"])

    def _output_page(
        self,
        user: Visitor,
        found: OutputDef | None,
        kind: str,
        values: dict[str, str],
        errors: dict[str, str],
        *,
        status: int = 200,
        notice: str = "",
    ) -> Response:
        declared = found is not None and self._catalog.is_declared(found.name)
        shown = {
            "found": found,
            "kind": kind,
            "kind_name": _KIND_NAMES[kind],
            "fields": OUTPUT_FIELDS[kind],
            "v": values,
            "errors": errors,
            "notice": notice,
            "declared": declared,
            "may_change": user.may(CHANGE_OUTPUTS) and not declared,
        }
        title = f"Output {found.name}" if found else f"New {_KIND_NAMES[kind]} output"
        markup = page("output_edit.html", title, user=user, active=_ACTIVE, values=shown)
        return html(markup, status)

    # --- connections -----------------------------------------------------------------

    async def connections(self, request: Request, user: Visitor) -> Response:
        defs = self._catalog.current()
        sources = self._sources(user)
        rows = [
            {
                "view": view,
                "source": sources[view.name],
                "declared": self._catalog.is_declared(view.name),
            }
            for view in self._deliveries.connections()
            if view.name in sources
        ]
        values = {
            "rows": rows,
            "may_change": user.may(CHANGE_CONNECTIONS),
            "may_resume": user.may(RESUME),
            "has_outputs": bool(defs.outputs),
            "done": request.query_params.get("deleted", ""),
        }
        return html(
            page("connections.html", "Connections", user=user, active=_ACTIVE, values=values)
        )

    async def new_connection(self, request: Request, user: Visitor) -> Response:
        kind = request.query_params.get("kind", "events")
        if kind not in _CONNECTION_KINDS:
            return message(user, "Connections", _ACTIVE, f"No connection kind {kind!r}.", 404)
        if not user.may(CHANGE_CONNECTIONS):
            return _refused(user, CHANGE_CONNECTIONS)
        values = {"enabled": "on", "enrich_ip": "on"}
        return self._connection_page(user, None, kind, values, {})

    async def create_connection(self, _: Request, user: Visitor, posted: Form) -> Response:
        kind = first(posted, "kind")
        if kind not in _CONNECTION_KINDS:
            return message(user, "Connections", _ACTIVE, f"No connection kind {kind!r}.", 400)
        doc = _connection_document(kind, posted, None)
        if self._catalog.current().connection(str(doc["name"])) is not None:
            errors = {"name": f"a connection named {doc['name']!r} exists"}
            return self._connection_page(user, None, kind, _posted(posted), errors, status=400)
        return await self._save_connection(user, None, kind, doc, posted)

    async def connection(self, request: Request, user: Visitor) -> Response:
        found = self._connection(request, user)
        if found is None:
            return _missing(user, "connection", request.path_params["name"])
        kind = "events" if isinstance(found, EventConnection) else "audiences"
        return self._connection_page(
            user, found, kind, form_values(found), {}, notice=_notice(request)
        )

    async def save_connection(self, request: Request, user: Visitor, posted: Form) -> Response:
        found = self._connection(request, user)
        if found is None:
            return _missing(user, "connection", request.path_params["name"])
        kind = "events" if isinstance(found, EventConnection) else "audiences"
        doc = _connection_document(kind, posted, found.name)
        return await self._save_connection(user, found, kind, doc, posted)

    async def _save_connection(
        self,
        user: Visitor,
        found: EventConnection | AudienceConnection | None,
        kind: str,
        doc: dict[str, object],
        posted: Form,
    ) -> Response:
        try:
            audience_id = doc.get("audience_id")
            if type(audience_id) is int:
                self._access.check_connecting(user.principal, [("audience_id", audience_id)])
            body = msgspec.json.encode(doc)
            await run_in_threadpool(self._catalog.save, _CONNECTION_KINDS[kind], body)
        except (ConfigError, InvalidBatch, NotFound, AuthRejected) as exc:
            errors = _errors(exc)
            status = 403 if isinstance(exc, AuthRejected) else 400
            return self._connection_page(user, found, kind, _posted(posted), errors, status=status)
        log.info("ui user %s saved connection %s", user.name, doc["name"])
        target = f"/ui/connections/{path_part(doc['name'])}?done=saved"
        return RedirectResponse(target, status_code=303)

    async def delete_connection(self, request: Request, user: Visitor, _: Form) -> Response:
        found = self._connection(request, user)
        if found is None:
            return _missing(user, "connection", request.path_params["name"])
        kind = "event_connection" if isinstance(found, EventConnection) else "audience_connection"
        try:
            await run_in_threadpool(self._catalog.delete, kind, found.name)
        except (ConfigError, NotFound) as exc:
            return message(user, found.name, _ACTIVE, str(exc), 400)
        log.info("ui user %s deleted connection %s", user.name, found.name)
        return RedirectResponse("/ui/connections" + query(deleted=found.name), status_code=303)

    async def resume(self, request: Request, user: Visitor, _: Form) -> Response:
        found = self._connection(request, user)
        if found is None:
            return _missing(user, "connection", request.path_params["name"])
        try:
            view = await run_in_threadpool(self._deliveries.resume, found.name)
        except NotFound:
            return _missing(user, "connection", found.name)
        log.info("ui user %s resumed %s (%d pending)", user.name, found.name, view.pending)
        return _to_connection(found.name, "resumed")

    async def replay(self, request: Request, user: Visitor, posted: Form) -> Response:
        found = self._connection(request, user)
        if found is None:
            return _missing(user, "connection", request.path_params["name"])
        ids: list[int] | None = None
        if first(posted, "which") != "all":
            ids = [
                int(i) for i in posted.get("id", []) if strict_int(i) is not None and len(i) <= 18
            ]
            if not ids:
                text = "Choose the dead letters to replay (or replay all). Nothing was changed."
                return message(user, found.name, _ACTIVE, text, 400)
        count = await run_in_threadpool(self._deliveries.replay, found.name, ids)
        log.info("ui user %s replayed %d dead letters of %s", user.name, count, found.name)
        return _to_connection(found.name, f"replayed-{count}")

    def _connection(
        self, request: Request, user: Visitor
    ) -> EventConnection | AudienceConnection | None:
        """The connection the path names, if the user may see it (an audience
        connection's audience too)."""
        found = self._catalog.current().connection(request.path_params["name"])
        if isinstance(found, AudienceConnection) and not self._sees(user, found.audience_id):
            return None
        return found

    def _sees(self, user: Visitor, audience_id: int) -> bool:
        try:
            self._access.seen(user.principal, audience_id)
        except NotFound:
            return False
        return True

    def _sources(self, user: Visitor) -> dict[str, str]:
        """What each connection the user may see forwards: its input or its audience."""
        audiences = {a.id: a for a in self._c.audiences.all()}
        defs = self._catalog.current()
        found = {c.name: f"input {c.input}" for c in defs.event_connections}
        for c in defs.audience_connections:
            audience = audiences.get(c.audience_id)
            if audience is None:
                found[c.name] = f"audience {c.audience_id} (deleted)"
            elif may_see(user.principal, audience.created_by, audience.access):
                variation = f", variation {c.variation}" if c.variation else ""
                found[c.name] = f"audience {audience.name}{variation}"
        return found

    def _connection_page(
        self,
        user: Visitor,
        found: EventConnection | AudienceConnection | None,
        kind: str,
        values: dict[str, str],
        errors: dict[str, str],
        *,
        status: int = 200,
        notice: str = "",
    ) -> Response:
        defs = self._catalog.current()
        declared = found is not None and self._catalog.is_declared(found.name)
        view = self._view(found.name) if found is not None else None
        dead = (
            self._deliveries.dead_letters(found.name, DEAD_LETTERS_SHOWN)
            if found is not None
            else []
        )
        shown: dict[str, Any] = {
            "found": found,
            "kind": kind,
            "v": values,
            "errors": errors,
            "notice": notice,
            "declared": declared,
            "view": view,
            "dead": dead,
            "source": self._sources(user).get(found.name, "") if found else "",
            "outputs": [(o.name, f"{o.name} ({o.kind})") for o in defs.outputs],
            "inputs": [(n, n) for n in sorted(self._c.tenancy.inputs_by_name)],
            "audiences": self._usable_audiences(user, values.get("audience_id", "")),
            "may_change": user.may(CHANGE_CONNECTIONS) and not declared,
            "may_resume": user.may(RESUME),
            "may_replay": user.may(REPLAY),
            "replay_role": REPLAY.value,
        }
        name = found.name if found else ""
        title = f"Connection {name}" if found else _NEW_TITLES[kind]
        markup = page("connection_edit.html", title, user=user, active=_ACTIVE, values=shown)
        return html(markup, status)

    def _usable_audiences(self, user: Visitor, chosen: str) -> list[tuple[str, str]]:
        found = [
            (str(a.id), f"{a.name} ({a.id})")
            for a in self._c.audiences.all()
            if may_use(user.principal, a.created_by, a.access)
        ]
        if chosen and all(value != chosen for value, _ in found):
            found.insert(0, (chosen, f"audience {chosen}"))
        return [("", "choose one"), *found]

    def _view(self, name: str) -> ConnectionView | None:
        return next((v for v in self._deliveries.connections() if v.name == name), None)


_NEW_TITLES = {"events": "New event connection", "audiences": "New audience connection"}


def _connection_document(kind: str, posted: Form, name: str | None) -> dict[str, object]:
    make: Callable[..., dict[str, object]] = (
        event_connection_document if kind == "events" else audience_connection_document
    )
    return make(posted, name=name)


def _posted(posted: Form) -> dict[str, str]:
    """The form's values as posted, to fill it in again."""
    return {key: values[0] for key, values in posted.items() if key != "csrf"}


def _errors(exc: Exception) -> dict[str, str]:
    if isinstance(exc, InvalidBatch):
        return {(exc.path or "name"): exc.reason}
    text = str(exc)
    field = config_error_field(text)
    if not field:
        return {"name": text}
    # The message after the path it begins with (`outputs['x'].url: must ...`).
    head, colon, rest = text.partition(": ")
    return {field: rest if colon and "." in head and " " not in head else text}


def _notice(request: Request) -> str:
    done = request.query_params.get("done", "")
    if done.startswith("replayed-") and done[9:].isdigit():
        return f"{done[9:]} dead letters put back at the end of the outbox."
    return {
        "saved": "Saved: every server process uses it from its next transaction.",
        "resumed": "Resumed: its pending messages are sent again.",
    }.get(done, "")


def _to_connection(name: str, done: str) -> Response:
    return RedirectResponse(
        f"/ui/connections/{path_part(name)}" + query(done=done), status_code=303
    )


def _missing(user: Visitor, what: str, name: str) -> Response:
    return message(user, what.capitalize(), _ACTIVE, f"No {what} {name}.", 404)


def _refused(user: Visitor, needed: Role) -> Response:
    text = f"This needs the {needed.value} role; {user.name} is {user.role.value}."
    return message(user, "Forwarding", _ACTIVE, text, 403)


def _back(prefix: str) -> Callable[[Request], str]:
    def back(request: Request) -> str:
        name = request.path_params.get("name")
        return prefix if name is None else f"{prefix}/{path_part(name)}"

    return back


def forwarding_routes(container: Container, guards: Guards) -> list[Route]:
    p = ForwardingPages(container)
    outputs, connections = _back("/ui/outputs"), _back("/ui/connections")

    def post(
        path: str, handler: ActionHandler, back: Callable[[Request], str], needs: Role
    ) -> Route:
        return Route(path, guards.action(handler, back, needs=needs), methods=["POST"])

    return [
        Route("/ui/outputs", guards.page(p.outputs), methods=["GET"]),
        Route("/ui/outputs/new", guards.page(p.new_output), methods=["GET"]),
        post("/ui/outputs", p.create_output, outputs, CHANGE_OUTPUTS),
        Route("/ui/outputs/{name}", guards.page(p.output), methods=["GET"]),
        post("/ui/outputs/{name}", p.save_output, outputs, CHANGE_OUTPUTS),
        post("/ui/outputs/{name}/delete", p.delete_output, outputs, CHANGE_OUTPUTS),
        Route("/ui/connections", guards.page(p.connections), methods=["GET"]),
        Route("/ui/connections/new", guards.page(p.new_connection), methods=["GET"]),
        post("/ui/connections", p.create_connection, connections, CHANGE_CONNECTIONS),
        Route("/ui/connections/{name}", guards.page(p.connection), methods=["GET"]),
        post("/ui/connections/{name}", p.save_connection, connections, CHANGE_CONNECTIONS),
        post("/ui/connections/{name}/delete", p.delete_connection, connections, CHANGE_CONNECTIONS),
        post("/ui/connections/{name}/resume", p.resume, connections, RESUME),
        post("/ui/connections/{name}/dead-letters/replay", p.replay, connections, REPLAY),
    ]
