"""The audience builder (UI-1, AUD-1, AUD-7, AUD-10): make and change an audience through
forms (`templates/builder.html`, fields as `builder_form` writes them), its estimate as it
is built, save as draft, activate, deactivate, clone, delete, and an active audience's
edit through the shadow preview (`templates/shadow.html`). Editors and admins only; an
audience's edit page and actions need `AudienceAccessCheck.changeable`, nesting only
audiences the user may use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kindred.api.ui.builder_form import (
    CRITERION_TYPES,
    FieldError,
    Fields,
    apply_step,
    children_of,
    definition_of,
    field_of,
    fields_of,
    form_tree,
)
from kindred.api.ui.layout import page
from kindred.api.ui.render import path_part
from kindred.api.ui.session import Visitor
from kindred.audiences.ast import LOCATION_FIELDS
from kindred.audiences.definition import AudienceDef
from kindred.audiences.parse import DEVICE_FIELDS, EVENT_TYPES, PRODUCT_ACTIONS
from kindred.bootstrap import Container
from kindred.domain.errors import AuthRejected, Conflict, InvalidBatch, NotFound
from kindred.domain.users import Role, may_use
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.services.audiences.suggestions import BuilderSuggestions, Suggestions
from kindred.wire.limits import strict_int

__all__ = ["builder_routes"]

log = logging.getLogger("kindred.ui.builder")

HtmlMaker = Callable[..., Response]  # (markup, status=200): the UI's page answer

_SAVED = {
    "draft": "Saved as a draft.",
    "active": "Saved and active.",
    "inactive": "Saved; the audience is inactive.",
    "cloned": "This is the clone, saved as a draft.",
    "promoted": "The shadow edit was promoted: this is the audience's definition now.",
    "discarded": "The shadow edit was discarded; nothing else changed.",
}
# Operators in the order a person looks for them: strings, lists, numbers, presence,
# booleans, dates.
_OPERATOR_ORDER = (
    "equals", "not_equals", "contains", "not_contains", "pattern",
    "includes", "not_includes", "partial_match",
    "eq", "ne", "lt", "le", "gt", "ge", "between",
    "exists", "not_exists", "is_true", "is_false",
    "before", "after", "on", "between_dates", "within_last_days", "not_within_last_days",
)  # fmt: skip
_IDENTITY_TYPES = ("customer_id", "email", "mobile_number", "other", "ios_idfa", "android_aaid")
_NEW = {"name": "", "lookback_days": "90", "access": "usable", "c.type": "and"}


class Builder:
    def __init__(self, container: Container, html: HtmlMaker) -> None:
        self._c = container
        self._html = html
        self._audiences = container.audiences
        self._access = AudienceAccessCheck(container.audiences)
        self._suggestions = BuilderSuggestions(
            container.estimates, container.tenancy, container.calculated.all
        )

    # --- pages ----------------------------------------------------------------------

    async def new(self, _: Request, user: Visitor) -> Response:
        if not user.may_edit:
            return self._refused(
                user, f"Building audiences needs the editor role; {user.name} is {user.role.value}."
            )
        fields = dict(_NEW)
        fields["workspaces"] = str(min(self._c.tenancy.workspaces))
        fields["c.0.type"] = "attribute"
        return await self._form(user, fields, None)

    async def edit(self, request: Request, user: Visitor) -> Response:
        found = self._changeable(request, user)
        if isinstance(found, Response):
            return found
        document = msgspec.to_builtins(found)
        fields = fields_of(document, self._calculated_names())
        return await self._form(user, fields, found, saved=request.query_params.get("saved", ""))

    async def shadow(self, request: Request, user: Visitor) -> Response:
        found = self._changeable(request, user)
        if isinstance(found, Response):
            return found
        try:
            view = self._c.audience_shadows.show(found.id)
        except NotFound:
            return self._message(user, f"Audience {found.name} has no shadow edit.", 404)
        values = {"audience": found, "view": view}
        return self._html(
            page(
                "shadow.html", f"Edit of {found.name}", user=user, active="audiences", values=values
            ),
            200,
        )

    # --- posts ----------------------------------------------------------------------

    async def post_new(self, _: Request, user: Visitor, form: Fields) -> Response:
        return await self._post(user, form, None)

    async def post_edit(self, request: Request, user: Visitor, form: Fields) -> Response:
        found = self._changeable(request, user)
        if isinstance(found, Response):
            return found
        return await self._post(user, form, found)

    async def _post(self, user: Visitor, form: Fields, current: AudienceDef | None) -> Response:
        step = form.pop("do", "")
        if step not in {"save", "activate", "shadow"}:
            apply_step(form, step)
            return await self._form(user, form, current)
        try:
            audience = self._definition(user, form, current)
            if current is None:
                saved = self._audiences.create(audience, created_by=user.name)
            elif step == "shadow" and current.status == "active":
                await run_in_threadpool(
                    self._c.audience_shadows.start, current.id, audience, user.name
                )
                log.info("ui user %s started a shadow edit of audience %d", user.name, current.id)
                return _see(f"/ui/audiences/{current.id}/shadow")
            else:
                saved = self._audiences.update(current.id, audience, changed_by=user.name)
            if step == "activate":
                saved = self._audiences.set_status(saved.id, "active", changed_by=user.name)
        except FieldError as wrong:
            return await self._form(
                user, form, current, errors={wrong.name: wrong.message}, status=400
            )
        except InvalidBatch as refused:
            _, paths = _paths(form)
            name = field_of(refused.path, paths) or "form"
            return await self._form(user, form, current, errors={name: refused.reason}, status=400)
        except Conflict as refused:
            return await self._form(user, form, current, errors={"form": str(refused)}, status=409)
        log.info("ui user %s saved audience %d (%s)", user.name, saved.id, saved.status)
        return _see(f"/ui/audiences/{saved.id}/edit?saved={saved.status}")

    def _definition(self, user: Visitor, form: Fields, current: AudienceDef | None) -> AudienceDef:
        document, _ = definition_of(form)
        if current is not None:
            document["kind"] = current.kind
            document["expiry_days"] = current.expiry_days
        try:
            audience = msgspec.convert(document, AudienceDef)
        except msgspec.ValidationError as wrong:
            raise InvalidBatch(str(wrong).split(" - at ")[0], _msgspec_path(str(wrong))) from None
        self._access.check_nesting(user.principal, audience)
        return audience

    async def act(self, request: Request, user: Visitor, _: Fields) -> Response:
        """Activate, deactivate, clone or delete (the path's last part)."""
        act = request.url.path.rsplit("/", 1)[1]
        found = self._changeable(request, user, seen_only=act == "clone")
        if isinstance(found, Response):
            return found
        try:
            if act == "clone":
                made = self._audiences.clone(found.id, created_by=user.name)
                return _see(f"/ui/audiences/{made.id}/edit?saved=cloned")
            if act == "delete":
                self._audiences.delete(found.id, changed_by=user.name)
                return _see("/ui/audiences")
            status = "active" if act == "activate" else "inactive"
            done = self._audiences.set_status(found.id, status, changed_by=user.name)
        except (InvalidBatch, Conflict) as refused:
            message = _refusal_words(found, act, refused)
            return self._message(user, message, 409 if isinstance(refused, Conflict) else 400)
        return _see(f"/ui/audiences/{done.id}/edit?saved={done.status}")

    async def shadow_step(self, request: Request, user: Visitor, _: Fields) -> Response:
        found = self._changeable(request, user)
        if isinstance(found, Response):
            return found
        shadows = self._c.audience_shadows
        try:
            if request.url.path.endswith("/promote"):
                await run_in_threadpool(shadows.promote, found.id, user.name)
                return _see(f"/ui/audiences/{found.id}/edit?saved=promoted")
            await run_in_threadpool(shadows.discard, found.id)
        except NotFound:
            return self._message(user, f"Audience {found.name} has no shadow edit.", 404)
        except Conflict as refused:
            return self._message(user, str(refused), 409)
        return _see(f"/ui/audiences/{found.id}/edit?saved=discarded")

    # --- JSON -------------------------------------------------------------------------

    async def estimate(self, request: Request, user: Visitor) -> Response:
        """The estimate of the definition the form's fields describe, each top-level
        criterion's by its field prefix; 400 with the field of the refusal."""
        form = _fields(
            parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        )
        if not user.may_post(form.get("csrf", "")) or not user.may_edit:
            return _json({"error": "this needs the editor role and the page's token"}, 403)
        form.pop("do", None)
        try:
            audience = self._definition(user, form, None)
            estimate = await run_in_threadpool(self._c.estimates.estimate, audience)
        except FieldError as wrong:
            return _json({"error": wrong.message, "field": wrong.name}, 400)
        except InvalidBatch as refused:
            _, paths = _paths(form)
            return _json(
                {"error": refused.reason, "field": field_of(refused.path, paths) or "form"}, 400
            )
        root = form.get("c.type", "")
        prefixes = children_of(form, "c") if root in ("and", "or") else ["c"]
        criteria = {
            prefixes[c.index]: {"shown": c.shown, "excludes": c.excludes}
            for c in estimate.criteria
            if c.index < len(prefixes)
        }
        body = {
            "shown": estimate.shown,
            "estimate": estimate.estimate,
            "exact": estimate.exact,
            "criteria": criteria,
        }
        return _json(body, 200)

    async def suggestions(self, request: Request, _: Visitor) -> Response:
        chosen = _workspace_ids(request.query_params.get("workspaces", "").split(","))
        found = await run_in_threadpool(self._suggestions.of, chosen)
        return _json(msgspec.to_builtins(found), 200)

    # --- helpers ----------------------------------------------------------------------

    def _changeable(
        self, request: Request, user: Visitor, *, seen_only: bool = False
    ) -> AudienceDef | Response:
        text = request.path_params["audience_id"]
        audience_id = strict_int(text) if len(text) <= 18 else None
        if audience_id is None:
            return self._message(user, f"No audience {text}.", 404)
        if not user.may_edit:
            return self._refused(
                user, f"Changing audiences needs the editor role; {user.name} is {user.role.value}."
            )
        try:
            if seen_only:
                return self._access.seen(user.principal, audience_id)
            return self._access.changeable(user.principal, audience_id)
        except NotFound:
            return self._message(user, f"No audience {text}.", 404)
        except AuthRejected as refused:
            return self._refused(user, str(refused))

    async def _form(
        self,
        user: Visitor,
        fields: Fields,
        current: AudienceDef | None,
        *,
        errors: Mapping[str, str] | None = None,
        status: int = 200,
        saved: str = "",
    ) -> Response:
        chosen = _workspace_ids(fields.get("workspaces", "").split("\n"))
        seen = await run_in_threadpool(self._suggestions.of, chosen)
        values = self._form_values(
            user, fields, current, errors=errors or {}, saved=saved, seen=seen
        )
        title = f"Edit {current.name}" if current else "New audience"
        return self._html(
            page("builder.html", title, user=user, active="audiences", values=values), status
        )

    def _form_values(
        self,
        user: Visitor,
        fields: Fields,
        current: AudienceDef | None,
        *,
        errors: Mapping[str, str],
        saved: str,
        seen: Suggestions,
    ) -> dict[str, Any]:
        tenancy = self._c.tenancy
        others = [
            a
            for a in self._access.visible(user.principal, self._audiences.all())
            if (current is None or a.id != current.id)
            and may_use(user.principal, a.created_by, a.access)
            and a.status != "deleted"
        ]
        acts = (
            [("deactivate", "Deactivate")]
            if current and current.status == "active"
            else [("activate", "Activate")]
        )
        return {
            "fields": fields,
            "errors": dict(errors),
            "tree": form_tree(fields),
            "current": current,
            "saved": saved,
            "saved_text": _SAVED.get(saved, ""),
            "action": f"/ui/audiences/{current.id}/edit" if current else "/ui/audiences/new",
            "workspaces": sorted(tenancy.workspaces.values(), key=lambda w: w.workspace_id),
            "inputs": sorted(tenancy.inputs_by_name.values(), key=lambda i: i.name),
            "chosen_workspaces": fields.get("workspaces", "").split("\n"),
            "chosen_inputs": fields.get("inputs", "").split("\n"),
            "leaf_choices": list(CRITERION_TYPES),
            "group_choices": [
                ("and", "all of (and)"),
                ("or", "any of (or)"),
                ("exclude", "exclude (none of)"),
            ],
            "operator_choices": [(op, op.replace("_", " ")) for op in _OPERATOR_ORDER],
            "event_type_choices": [(t, t.replace("_", " ")) for t in sorted(EVENT_TYPES)],
            "action_choices": [(a, a.replace("_", " ")) for a in sorted(PRODUCT_ACTIONS)],
            "count_choices": [
                ("at_least", "at least"),
                ("at_most", "at most"),
                ("exactly", "exactly"),
            ],
            "consent_states": [
                (s, s.replace("_", " "))
                for s in ("consented", "not_consented", "exists", "not_exists")
            ],
            "audience_choices": [(str(a.id), f"{a.name} ({a.id})") for a in others],
            "workspace_choices": [
                (str(w.workspace_id), w.name)
                for w in sorted(tenancy.workspaces.values(), key=lambda w: w.workspace_id)
            ],
            "datalists": {
                "attribute": seen.attribute_keys,
                "calculated": seen.calculated_attributes,
                "account_attribute": seen.account_attribute_keys,
                "identity": sorted({*seen.identity_types, *_IDENTITY_TYPES}),
                "device": sorted(DEVICE_FIELDS),
                "attribution": ["publisher", "campaign"],
                "location": list(LOCATION_FIELDS),
                "event": [*seen.event_names, *seen.screen_names],
            },
            "manage_acts": [*acts, ("clone", "Clone"), ("delete", "Delete")],
        }

    def _calculated_names(self) -> list[str]:
        return [c.name for c in self._c.calculated.all()]

    def _message(self, user: Visitor, message: str, status: int) -> Response:
        values = {"message": message, "alert": False, "search": None}
        return self._html(
            page("message.html", "Audience", user=user, active="audiences", values=values), status
        )

    def _refused(self, user: Visitor, message: str) -> Response:
        values = {"message": message, "alert": True, "search": None, "back": "/ui/audiences"}
        return self._html(
            page("message.html", "Refused", user=user, active="audiences", values=values), 403
        )


def _fields(form: Mapping[str, list[str]]) -> Fields:
    """One text per field; a checkbox group's values joined by newlines."""
    return {name: "\n".join(values) for name, values in form.items()}


def _paths(form: Fields) -> tuple[dict[str, object] | None, dict[str, str]]:
    try:
        document, paths = definition_of(form)
    except FieldError:
        return None, {}
    return document, paths


def _msgspec_path(text: str) -> str:
    """`$.lookback_days` in msgspec's message -> `lookback_days`."""
    _, _, where = text.partition(" - at `$.")
    return where.rstrip("`").split("[")[0].split(".")[0] if where else ""


def _refusal_words(audience: AudienceDef, act: str, refused: Exception) -> str:
    text = str(refused)
    if act == "delete" and "nest" in text:
        return (
            f"{audience.name} cannot be deleted while another audience nests it: remove it from"
            f" that audience's criteria first. ({text})"
        )
    if act == "deactivate" and "nest" in text:
        return f"{audience.name} cannot be deactivated while an active audience nests it. ({text})"
    return f"{audience.name} could not be changed: {text}"


def _see(target: str) -> Response:
    return RedirectResponse(target, status_code=303)


def _json(body: object, status: int) -> Response:
    return Response(
        msgspec.json.encode(body),
        status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def builder_routes(container: Container, pages: Any, html: HtmlMaker) -> list[Route]:
    """The builder's routes, guarded by the UI's session, CSRF and role checks (`pages`:
    routes.UiPages; `html`: its page answer with the UI's security headers)."""
    b = Builder(container, html)

    def back(request: Request) -> str:
        audience = request.path_params.get("audience_id")
        return f"/ui/audiences/{path_part(audience)}/edit" if audience else "/ui/audiences/new"

    def fields_action(handler: Any) -> Any:
        async def with_fields(
            request: Request, user: Visitor, form: dict[str, list[str]]
        ) -> Response:
            answer: Response = await handler(request, user, _fields(form))
            return answer

        return pages.action(with_fields, back, needs=Role.EDITOR)

    return [
        Route("/ui/audiences/new", pages.page(b.new), methods=["GET"]),
        Route("/ui/audiences/new", fields_action(b.post_new), methods=["POST"]),
        Route("/ui/audiences/{audience_id}/edit", pages.page(b.edit), methods=["GET"]),
        Route("/ui/audiences/{audience_id}/edit", fields_action(b.post_edit), methods=["POST"]),
        Route("/ui/audiences/{audience_id}/shadow", pages.page(b.shadow), methods=["GET"]),
        *(
            Route(
                f"/ui/audiences/{{audience_id}}/shadow/{step}",
                fields_action(b.shadow_step),
                methods=["POST"],
            )
            for step in ("promote", "discard")
        ),
        *(
            Route(f"/ui/audiences/{{audience_id}}/{act}", fields_action(b.act), methods=["POST"])
            for act in ("activate", "deactivate", "clone", "delete")
        ),
        Route("/ui/api/audiences/estimate", pages.json(b.estimate), methods=["POST"]),
        Route("/ui/api/audiences/suggestions", pages.json(b.suggestions), methods=["GET"]),
    ]


def _workspace_ids(texts: list[str]) -> list[int]:
    """The workspace ids among `texts` (others, which name none, left out)."""
    found = (strict_int(t.strip()) if len(t) <= 18 else None for t in texts)
    return [w for w in found if w is not None]
