"""The Calculated attributes pages (CA-1, CA-2): the list with each one's calculation,
status and activation progress; a form to create one and to edit its draft (the fields
`calculated_form` maps to the definition document); activate and delete. A refusal is
shown at the field its path names. Changing needs the role the admin API's
`/admin/v1/calculated-attributes` writes need (`domain.users.role_needed`).

While an activation's computation over the stored history runs, the pages refresh
themselves every few seconds (a meta refresh: no script)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kindred.api.ui.answers import Form, Guards, first, html, message
from kindred.api.ui.calculated_form import (
    ACTION_CHOICES,
    CALCULATION_CHOICES,
    CONDITION_OPS,
    EVENT_CHOICES,
    CalculatedForm,
    definition_of,
    describe,
    field_of,
    form_of,
    parsed_form,
)
from kindred.api.ui.layout import page
from kindred.api.ui.render import path_part
from kindred.api.ui.session import Visitor
from kindred.attributes.definition import CalculatedDef
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.users import role_needed
from kindred.services.calculated.admin import Progress
from kindred.wire.limits import strict_int

__all__ = ["calculated_routes"]

log = logging.getLogger("kindred.ui")

# What changing a calculated attribute needs: as the admin API's writes.
CHANGE = role_needed("POST", "/admin/v1/calculated-attributes")
REFRESH_S = 2
_ACTIVE = "calculated"


class CalculatedPages:
    def __init__(self, container: Container) -> None:
        self._service = container.calculated
        self._names = {i: w.name for i, w in container.tenancy.workspaces.items()}

    async def listing(self, request: Request, user: Visitor) -> Response:
        rows = [self._row(d) for d in self._service.all()]
        rows.sort(key=lambda r: (r["workspace"], r["definition"].name))
        values = {
            "rows": rows,
            "refresh_s": REFRESH_S if any(r["running"] for r in rows) else 0,
            "may_change": user.may(CHANGE),
            "done": request.query_params.get("deleted", ""),
        }
        return html(
            page(
                "calculated.html", "Calculated attributes", user=user, active=_ACTIVE, values=values
            )
        )

    async def new(self, _: Request, user: Visitor) -> Response:
        if not user.may(CHANGE):
            return _refused(user)
        return self._form_page(user, None, CalculatedForm().with_blank_rows(), {})

    async def create(self, _: Request, user: Visitor, posted: Form) -> Response:
        form = parsed_form(posted)
        if first(posted, "more"):
            return self._form_page(user, None, form.with_blank_rows(2), {})
        try:
            workspace_id = int(form.workspace_id)
        except ValueError:
            errors = {"workspace_id": "choose a workspace"}
            return self._form_page(user, None, form.with_blank_rows(), errors, status=400)
        draft = CalculatedDef(
            name=form.name,
            workspace_id=workspace_id,
            description=form.description,
            draft=definition_of(form),
        )
        try:
            made = await run_in_threadpool(self._service.create, draft)
        except InvalidBatch as exc:
            errors = {field_of(exc.path, form.conditions): exc.reason}
            return self._form_page(user, None, form.with_blank_rows(), errors, status=400)
        log.info("ui user %s made calculated attribute %s (%d)", user.name, made.name, made.id)
        return _to(made.id, "saved")

    async def one(self, request: Request, user: Visitor) -> Response:
        """The attribute and its activation's progress (refreshing while it runs: the
        draft's form is a page of its own, never reloaded under the user's typing)."""
        found = self._find(request)
        if found is None:
            return _missing(request, user)
        form = form_of(found.name, found.workspace_id, found.description, found.draft)
        return self._form_page(user, found, form, {}, notice=_notice(request), editing=False)

    async def edit(self, request: Request, user: Visitor) -> Response:
        found = self._find(request)
        if found is None:
            return _missing(request, user)
        if not user.may(CHANGE):
            return _refused(user)
        form = form_of(found.name, found.workspace_id, found.description, found.draft)
        return self._form_page(user, found, form.with_blank_rows(), {})

    async def save(self, request: Request, user: Visitor, posted: Form) -> Response:
        found = self._find(request)
        if found is None:
            return _missing(request, user)
        form = parsed_form(posted)
        form = replace(form, name=found.name, workspace_id=str(found.workspace_id))
        if first(posted, "more"):
            return self._form_page(user, found, form.with_blank_rows(2), {})
        changes: dict[str, object] = {
            "description": form.description,
            "draft": definition_of(form),
        }
        try:
            await run_in_threadpool(self._service.edit, found.id, changes)
        except InvalidBatch as exc:
            errors = {field_of(exc.path, form.conditions): exc.reason}
            return self._form_page(user, found, form.with_blank_rows(), errors, status=400)
        except NotFound:
            return _missing(request, user)
        log.info("ui user %s edited calculated attribute %d", user.name, found.id)
        return _to(found.id, "saved")

    async def activate(self, request: Request, user: Visitor, _: Form) -> Response:
        found = self._find(request)
        if found is None:
            return _missing(request, user)
        try:
            await run_in_threadpool(self._service.activate, found.id)
        except InvalidBatch as exc:
            return message(user, found.name, _ACTIVE, exc.reason, 400)
        except NotFound:
            return _missing(request, user)
        log.info("ui user %s activated calculated attribute %d", user.name, found.id)
        return _to(found.id, "activated")

    async def delete(self, request: Request, user: Visitor, _: Form) -> Response:
        found = self._find(request)
        if found is None:
            return _missing(request, user)
        try:
            await run_in_threadpool(self._service.delete, found.id)
        except NotFound:
            return _missing(request, user)
        log.info("ui user %s deleted calculated attribute %d", user.name, found.id)
        target = "/ui/calculated?deleted=" + path_part(found.name)
        return RedirectResponse(target, status_code=303)

    # --- what the pages show ---------------------------------------------------------

    def _find(self, request: Request) -> CalculatedDef | None:
        text = request.path_params["def_id"]
        if strict_int(text) is None or len(text) > 18:
            return None
        try:
            return self._service.get(int(text))
        except NotFound:
            return None

    def _row(self, definition: CalculatedDef) -> dict[str, Any]:
        progress = self._service.progress(definition.id)
        return {
            "definition": definition,
            "workspace": self._names.get(definition.workspace_id, str(definition.workspace_id)),
            "calculation": describe(definition.active or definition.draft),
            "progress": progress,
            "running": _running(definition, progress),
            "changed": definition.status == "active" and definition.draft != definition.active,
        }

    def _form_page(
        self,
        user: Visitor,
        found: CalculatedDef | None,
        form: CalculatedForm,
        errors: dict[str, str],
        *,
        status: int = 200,
        notice: str = "",
        editing: bool = True,
    ) -> Response:
        row = self._row(found) if found is not None else None
        values = {
            "form": form,
            "errors": errors,
            "row": row,
            "notice": notice,
            "may_change": user.may(CHANGE),
            "workspaces": [("", "choose one")]
            + [(str(i), f"{n} ({i})") for i, n in sorted(self._names.items())],
            "calculation_choices": _shown(CALCULATION_CHOICES),
            "event_choices": _shown(EVENT_CHOICES),
            "action_choices": [("", "any"), *_shown(ACTION_CHOICES)],
            "condition_ops": _shown(CONDITION_OPS),
            "draft_text": describe(found.draft) if found is not None else "",
            "active_text": describe(found.active) if found is not None else "",
            "editing": editing,
            "refresh_s": REFRESH_S if not editing and row is not None and row["running"] else 0,
        }
        title = "New calculated attribute"
        if found is not None:
            title = f"Edit {found.name}" if editing else found.name
        markup = page("calculated_edit.html", title, user=user, active=_ACTIVE, values=values)
        return html(markup, status)


def _shown(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(n, n.replace("_", " ")) for n in names]


def _running(definition: CalculatedDef, progress: Progress) -> bool:
    return definition.status == "active" and not progress.is_calculated


def _notice(request: Request) -> str:
    done = request.query_params.get("done", "")
    return {
        "saved": "The draft is saved.",
        "activated": "Activated: its values are being computed from the stored events.",
    }.get(done, "")


def _to(def_id: int, done: str) -> Response:
    return RedirectResponse(f"/ui/calculated/{def_id}?done={done}", status_code=303)


def _missing(request: Request, user: Visitor) -> Response:
    text = request.path_params["def_id"]
    return message(user, "Calculated attribute", _ACTIVE, f"No calculated attribute {text}.", 404)


def _refused(user: Visitor) -> Response:
    text = f"This needs the {CHANGE.value} role; {user.name} is {user.role.value}."
    return message(user, "Calculated attribute", _ACTIVE, text, 403)


def _back_to_list(_: Request) -> str:
    return "/ui/calculated"


def _back_to_one(request: Request) -> str:
    return f"/ui/calculated/{path_part(request.path_params['def_id'])}"


def _back_to_edit(request: Request) -> str:
    return _back_to_one(request) + "/edit"


def calculated_routes(container: Container, guards: Guards) -> list[Route]:
    pages = CalculatedPages(container)
    one = "/ui/calculated/{def_id}"
    return [
        Route("/ui/calculated", guards.page(pages.listing), methods=["GET"]),
        Route("/ui/calculated/new", guards.page(pages.new), methods=["GET"]),
        Route(
            "/ui/calculated",
            guards.action(pages.create, _back_to_list, needs=CHANGE),
            methods=["POST"],
        ),
        Route(one, guards.page(pages.one), methods=["GET"]),
        Route(one + "/edit", guards.page(pages.edit), methods=["GET"]),
        Route(one, guards.action(pages.save, _back_to_edit, needs=CHANGE), methods=["POST"]),
        Route(
            one + "/activate",
            guards.action(pages.activate, _back_to_one, needs=CHANGE),
            methods=["POST"],
        ),
        Route(
            one + "/delete",
            guards.action(pages.delete, _back_to_one, needs=CHANGE),
            methods=["POST"],
        ),
    ]
