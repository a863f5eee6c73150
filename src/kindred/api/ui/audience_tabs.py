"""One audience's pages, a tab each (UI-3, AUD-7 ... AUD-11, BEY-3): Overview (metrics, size
over time, the estimate until the calculation completes), Build (the definition, a link to
the builder), A/B test, Connect, Download and History. Each tab is its own address and
works without script; the A/B form's control share is also kept current by a small script
(static/abtest.js), the server computing it again on every answer.

Every tab needs the audience to be seen by the user (`AudienceAccessCheck.seen`; an
audience they may not see answers 404 as an unknown one). Changing the test needs it
changeable; connecting, disconnecting and downloading need it usable and the editor role.
A viewer sees no forms, and their forged post is refused (403, nothing changed)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from kindred.api.ui.answers import html, message, refusal
from kindred.api.ui.audiences import audience_view, connections_by_audience
from kindred.api.ui.layout import page
from kindred.api.ui.render import path_part
from kindred.api.ui.session import Visitor
from kindred.api.ui.times import query
from kindred.audiences.abtest import CONTROL, AbTestRequest, Variation
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container
from kindred.domain.errors import AuthRejected, ConfigError, Conflict, InvalidBatch, NotFound
from kindred.domain.forwarding import AudienceConnection
from kindred.domain.identities import DEVICE_IDENTITY_TYPES, USER_IDENTITY_TYPES
from kindred.domain.users import may_change, may_use
from kindred.services.audiences.abtests import AbTestView
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.services.audiences.connections import BulkAudience, BulkConnectionRequest
from kindred.services.forwarding.admin import ConnectionView
from kindred.wire.limits import INT64_MAX, int64_param

__all__ = [
    "IDENTITY_TYPES",
    "TABS",
    "AudienceTabs",
    "VariationRow",
    "control_share",
    "variation_rows",
]

log = logging.getLogger("kindred.ui")

Form = dict[str, list[str]]
TabHandler = Callable[[Request, Visitor, AudienceDef], Awaitable[Response]]
PostHandler = Callable[[Request, Visitor, AudienceDef, Form], Awaitable[Response]]

# (key, path after /ui/audiences/{id}, label), in the order the tabs show.
TABS = (
    ("overview", "", "Overview"),
    ("build", "/build", "Build"),
    ("ab-test", "/ab-test", "A/B test"),
    ("connect", "/connect", "Connect"),
    ("download", "/download", "Download"),
    ("history", "/history", "History"),
)
# The rows the A/B form offers: the variations besides the control.
_ROWS = 5
# Identity types offered first: the ones outputs take most.
_COMMON_TYPES = ("email", "customer_id", "mobile_number")
IDENTITY_TYPES = [
    *_COMMON_TYPES,
    *sorted((USER_IDENTITY_TYPES | DEVICE_IDENTITY_TYPES) - set(_COMMON_TYPES)),
]


@dataclass(frozen=True, slots=True)
class VariationRow:
    """One row of the A/B form: what was written and the server's word on each field."""

    index: int
    name: str = ""
    percentage: str = ""
    name_error: str = ""
    percentage_error: str = ""


def variation_rows(pairs: Sequence[tuple[str, str]]) -> list[VariationRow]:
    """The form's rows: the pairs given, then empty ones up to five."""
    padded = [*pairs, *[("", "")] * (_ROWS - len(pairs))][:_ROWS]
    return [VariationRow(index=n, name=a, percentage=b) for n, (a, b) in enumerate(padded)]


def control_share(rows: Sequence[VariationRow]) -> int:
    """What the variations leave of 100 percent (the control's share); a percentage that is
    no whole number counts as none."""
    return 100 - sum(_whole(r.percentage) or 0 for r in rows)


def _written(form: Form) -> list[VariationRow]:
    pairs = [
        (form.get(f"name_{n}", [""])[0].strip(), form.get(f"percentage_{n}", [""])[0].strip())
        for n in range(_ROWS)
    ]
    return variation_rows(pairs)


def _with_error(rows: list[VariationRow], index: int, field: str, text: str) -> list[VariationRow]:
    return [
        VariationRow(
            index=r.index,
            name=r.name,
            percentage=r.percentage,
            name_error=text if r.index == index and field == "name" else r.name_error,
            percentage_error=text if r.index == index and field != "name" else r.percentage_error,
        )
        for r in rows
    ]


def _tab_path(audience_id: int, tab: str) -> str:
    suffix = next(p for key, p, _ in TABS if key == tab)
    return f"/ui/audiences/{path_part(audience_id)}{suffix}"


class AudienceTabs:
    def __init__(self, container: Container, access: AudienceAccessCheck) -> None:
        self._c = container
        self._access = access
        self._names = {i: w.name for i, w in container.tenancy.workspaces.items()}

    # --- the audience and the page ------------------------------------------------------

    def tab(self, handler: TabHandler) -> Callable[[Request, Visitor], Awaitable[Response]]:
        """A tab's page: the audience seen by the user, or 404 as for none."""

        async def shown(request: Request, user: Visitor) -> Response:
            text = request.path_params["audience_id"]
            try:
                audience_id = int64_param(text, "audience_id")
                audience = self._access.seen(user.principal, audience_id)
            except InvalidBatch as exc:
                return message(user, "Audience", "audiences", str(exc), 400)
            except NotFound:
                return message(user, "Audience", "audiences", f"No audience {text}.", 404)
            return await handler(request, user, audience)

        return shown

    def post(
        self, handler: PostHandler, needs: str
    ) -> Callable[[Request, Visitor, Form], Awaitable[Response]]:
        """A tab's form post: the audience seen, then changeable or usable (`needs`) by the
        user, else 404 or 403 with nothing changed."""

        async def checked(request: Request, user: Visitor, form: Form) -> Response:
            text = request.path_params["audience_id"]
            audience_id = _whole(text)
            audience_id = -1 if audience_id is None else audience_id
            back = f"/ui/audiences/{path_part(text)}"
            try:
                if needs == "change":
                    audience = self._access.changeable(user.principal, audience_id)
                else:
                    audience = self._access.usable(user.principal, audience_id)
            except NotFound:
                return message(user, "Audience", "audiences", f"No audience {text}.", 404)
            except AuthRejected as exc:
                return refusal(user, f"{exc} Nothing was changed.", back, 403)
            return await handler(request, user, audience, form)

        return checked

    def _page(
        self,
        user: Visitor,
        audience: AudienceDef,
        tab: str,
        template: str,
        values: Mapping[str, Any],
        *,
        status: int = 200,
    ) -> Response:
        caller = user.principal
        shell = {
            "audience": audience,
            "tabs": TABS,
            "tab": tab,
            "base_path": f"/ui/audiences/{path_part(audience.id)}",
            "may_change": may_change(caller, audience.created_by),
            "may_use": user.may_edit and may_use(caller, audience.created_by, audience.access),
        }
        markup = page(
            template, audience.name, user=user, active="audiences", values={**shell, **values}
        )
        return html(markup, status)

    def _connections(self) -> dict[int, list[ConnectionView]]:
        defs = self._c.catalog.current()
        return connections_by_audience(defs.audience_connections, self._c.deliveries.connections())

    def _test(self, audience_id: int) -> AbTestView | None:
        try:
            return self._c.abtests.show(audience_id)
        except NotFound:
            return None

    # --- Overview and Build -------------------------------------------------------------

    async def overview(self, _request: Request, user: Visitor, audience: AudienceDef) -> Response:
        service = self._c.audiences
        now = self._c.clock.now_ms()
        changes = service.membership_changes(audience.id, until_ms=now, limit=100_000)
        values = audience_view(
            audience,
            service.metrics(audience.id),
            changes,
            now,
            self._names,
            connections=[],
        )
        values["estimate"] = self._c.estimates.while_calculating(audience)
        return self._page(user, audience, "overview", "audience.html", values)

    async def build(self, _request: Request, user: Visitor, audience: AudienceDef) -> Response:
        values = audience_view(
            audience, self._c.audiences.metrics(audience.id), [], 0, self._names, connections=[]
        )
        return self._page(user, audience, "build", "audience_build.html", values)

    # --- A/B test -----------------------------------------------------------------------

    async def abtest(self, request: Request, user: Visitor, audience: AudienceDef) -> Response:
        test = self._test(audience.id)
        pairs = [
            (v.name, str(v.percentage)) for v in (test.variations if test else []) if not v.control
        ]
        saved = request.query_params.get("done", "")
        return self._abtest_page(user, audience, test, variation_rows(pairs), done=saved)

    def _abtest_page(
        self,
        user: Visitor,
        audience: AudienceDef,
        test: AbTestView | None,
        rows: list[VariationRow],
        *,
        done: str = "",
        error: str = "",
        status: int = 200,
    ) -> Response:
        values = {
            "test": test,
            "rows": rows,
            "control": CONTROL,
            "control_share": control_share(rows),
            "done": done if done in ("saved", "deleted") else "",
            "error": error,
        }
        return self._page(user, audience, "ab-test", "audience_abtest.html", values, status=status)

    async def save_test(
        self, _request: Request, user: Visitor, audience: AudienceDef, form: Form
    ) -> Response:
        """Create or change the test from the form's rows (an empty row is none); a refusal
        is shown at its field, with the status the admin API answers."""
        rows = _written(form)
        kept: list[tuple[int, Variation]] = []
        for row in rows:
            if not row.name and not row.percentage:
                continue
            percentage = _whole(row.percentage)
            if percentage is None:
                text = f"the percentage of {row.name or 'a variation'} is a whole number, 1..100"
                rows = _with_error(rows, row.index, "percentage", text)
                return self._abtest_page(user, audience, self._test(audience.id), rows, status=400)
            kept.append((row.index, Variation(name=row.name, percentage=percentage)))
        try:
            self._c.abtests.set(audience.id, AbTestRequest(variations=[v for _, v in kept]))
        except InvalidBatch as exc:
            return self._refused_test(user, audience, rows, kept, exc)
        except Conflict as exc:
            test = self._test(audience.id)
            return self._abtest_page(user, audience, test, rows, error=str(exc), status=409)
        log.info("ui user %s set the A/B test of audience %d", user.name, audience.id)
        target = _tab_path(audience.id, "ab-test") + query(done="saved")
        return RedirectResponse(target, status_code=303)

    def _refused_test(
        self,
        user: Visitor,
        audience: AudienceDef,
        rows: list[VariationRow],
        kept: list[tuple[int, Variation]],
        exc: InvalidBatch,
    ) -> Response:
        path = exc.path
        test = self._test(audience.id)
        for position, (index, _) in enumerate(kept):
            where = f"variations[{position}]."
            if path.startswith(where):
                rows = _with_error(rows, index, path[len(where) :], exc.reason)
                return self._abtest_page(user, audience, test, rows, status=400)
        return self._abtest_page(user, audience, test, rows, error=str(exc), status=400)

    async def delete_test(
        self, _request: Request, user: Visitor, audience: AudienceDef, _: Form
    ) -> Response:
        try:
            self._c.abtests.delete(audience.id)
        except NotFound as exc:
            return message(user, "A/B test", "audiences", str(exc), 404)
        log.info("ui user %s deleted the A/B test of audience %d", user.name, audience.id)
        target = _tab_path(audience.id, "ab-test") + query(done="deleted")
        return RedirectResponse(target, status_code=303)

    # --- Connect ------------------------------------------------------------------------

    async def connect_tab(self, request: Request, user: Visitor, audience: AudienceDef) -> Response:
        params = request.query_params
        done = {k: params.get(k, "") for k in ("connected", "disconnected", "resumed")}
        return self._connect_page(user, audience, done=done)

    def _connect_page(
        self,
        user: Visitor,
        audience: AudienceDef,
        *,
        done: Mapping[str, str] | None = None,
        error: str = "",
        chosen: Mapping[str, object] | None = None,
        status: int = 200,
    ) -> Response:
        defs = self._c.catalog.current()
        views = self._connections().get(audience.id, [])
        names = {v.name for v in views}
        of_audience = {c.name: c for c in defs.audience_connections if c.audience_id == audience.id}
        test = self._test(audience.id)
        values = {
            "connections": views,
            "targets": {n: of_audience[n].variation for n in names if n in of_audience},
            "removable": {n for n in names if not self._c.catalog.is_declared(n)},
            "outputs": [o.name for o in defs.outputs],
            "variations": [v.name for v in test.variations] if test else [],
            "identity_types": IDENTITY_TYPES,
            "done": {
                k: v if v in names or k == "disconnected" else ""
                for k, v in (
                    {"connected": "", "disconnected": "", "resumed": ""} | dict(done or {})
                ).items()
            },
            "error": error,
            "chosen": {"output": "", "target": "", "types": ["email"], "name": ""}
            | dict(chosen or {}),
        }
        return self._page(user, audience, "connect", "audience_connect.html", values, status=status)

    async def connect(
        self, _request: Request, user: Visitor, audience: AudienceDef, form: Form
    ) -> Response:
        """Connect the full audience or one variation to an output (as `POST
        /admin/v1/connections/audiences`); its initial sync starts."""
        output = form.get("output", [""])[0]
        target = form.get("target", [""])[0]
        types = form.get("identity_types", [])
        name = form.get("name", [""])[0].strip()
        chosen = {"output": output, "target": target, "types": types, "name": name}
        default = f"{output}-{audience.id}" + (f"-{target}" if target else "")
        connection = AudienceConnection(
            name=name or default,
            audience_id=audience.id,
            output=output,
            identity_types=types,
            variation=target or None,
        )
        error = _connection_error(connection, self._test(audience.id))
        if not error:
            try:
                self._c.catalog.save_many("audience_connection", [connection])
            except ConfigError as exc:
                error = str(exc).removeprefix("audience_connections[0].")
        if error:
            return self._connect_page(user, audience, error=error, chosen=chosen, status=400)
        log.info("ui user %s connected audience %d as %s", user.name, audience.id, connection.name)
        target_path = _tab_path(audience.id, "connect") + query(connected=connection.name)
        return RedirectResponse(target_path, status_code=303)

    async def disconnect(
        self, request: Request, user: Visitor, audience: AudienceDef, _: Form
    ) -> Response:
        name = request.path_params["name"]
        back = _tab_path(audience.id, "connect")
        if not any(c.name == name for c in self._connections().get(audience.id, [])):
            text = f"Audience {audience.id} has no connection {name}."
            return message(user, "Audience", "audiences", text, 404)
        try:
            self._c.catalog.delete("audience_connection", name)
        except ConfigError as exc:
            return refusal(user, f"{exc}: change it there. Nothing was changed.", back, 400)
        except NotFound:
            text = f"Audience {audience.id} has no connection {name}."
            return message(user, "Audience", "audiences", text, 404)
        log.info("ui user %s disconnected %s", user.name, name)
        return RedirectResponse(back + query(disconnected=name), status_code=303)

    async def bulk_connect(self, _request: Request, user: Visitor, form: Form) -> Response:
        """The list's bulk connect: the audiences chosen to one output (all or none)."""
        ids = [n for n in map(_whole, form.get("audience_id", [])) if n is not None]
        output = form.get("output", [""])[0]
        types = form.get("identity_types", [])
        try:
            if not ids:
                raise InvalidBatch("choose at least one audience", "audiences")
            named = [(f"audiences[{n}]", a) for n, a in enumerate(ids)]
            self._access.check_connecting(user.principal, named)
            if not types:
                raise InvalidBatch("choose at least one identity type", "identity_types")
            audiences: list[int | BulkAudience] = [*ids]
            asked = BulkConnectionRequest(output=output, identity_types=types, audiences=audiences)
            made = self._c.bulk_connections.connect(asked)
        except InvalidBatch as exc:
            return refusal(user, f"{exc}. Nothing was connected.", "/ui/audiences", 400)
        except AuthRejected as exc:
            return refusal(user, f"{exc}. Nothing was connected.", "/ui/audiences", 403)
        log.info("ui user %s connected %d audiences to %s", user.name, len(made), output)
        target = "/ui/audiences" + query(connected=str(len(made)), output=output)
        return RedirectResponse(target, status_code=303)

    # --- Download -----------------------------------------------------------------------

    async def download_tab(
        self, _request: Request, user: Visitor, audience: AudienceDef
    ) -> Response:
        return self._download_page(user, audience)

    def _download_page(
        self, user: Visitor, audience: AudienceDef, *, error: str = "", status: int = 200
    ) -> Response:
        test = self._test(audience.id)
        values = {
            "identity_types": IDENTITY_TYPES,
            "variations": [v.name for v in test.variations] if test else [],
            "error": error,
        }
        template = "audience_download.html"
        return self._page(user, audience, "download", template, values, status=status)

    async def download(self, request: Request, user: Visitor, audience: AudienceDef) -> Response:
        """The ZIP (as `GET /admin/v1/audiences/{id}/download`), streamed as it is read."""
        back = _tab_path(audience.id, "download")
        if not user.may_edit:
            text = f"Downloading needs the editor role; {user.name} is {user.role.value}."
            return refusal(user, text, back, 403)
        try:
            self._access.usable(user.principal, audience.id)
        except AuthRejected as exc:
            return refusal(user, str(exc), back, 403)
        params = request.query_params
        sample = None
        if params.get("size") == "sample":
            sample = _sample_size(params.get("sample", ""))
        try:
            types, variations = params.getlist("identity_types"), params.getlist("variations")
            prepared = self._c.downloads.prepare([audience.id], types, sample, variations)
        except InvalidBatch as exc:
            return self._download_page(user, audience, error=str(exc), status=400)
        log.info("ui user %s downloaded audience %d", user.name, audience.id)
        return StreamingResponse(
            prepared.chunks(),
            media_type="application/zip",
            headers={
                "content-disposition": f'attachment; filename="{prepared.archive_name}"',
                "cache-control": "no-store",
            },
        )

    # --- History ------------------------------------------------------------------------

    async def history(self, request: Request, user: Visitor, audience: AudienceDef) -> Response:
        service = self._c.audiences
        versions = service.versions(audience.id)
        numbers = [v.version for v in versions]
        latest = numbers[-1] if numbers else 0
        params = request.query_params
        # Without a choice: the last version against the one before it.
        chosen_from = _number(params.get("from"), latest - 1)
        chosen_to = _number(params.get("to"), latest)
        changes = None
        error = ""
        if chosen_from in numbers and chosen_to in numbers:
            changes = service.diff(audience.id, chosen_from, chosen_to)
        elif "from" in params or "to" in params:
            error = f"choose two of the versions {', '.join(map(str, numbers))}"
        now = self._c.clock.now_ms()
        log_ = service.membership_changes(audience.id, until_ms=now, limit=100_000)
        values = {
            "versions": list(reversed(versions)),
            "numbers": numbers,
            "chosen_from": chosen_from,
            "chosen_to": chosen_to,
            "changes": changes,
            "error": error,
            "history": list(reversed(log_))[:100],
        }
        status = 400 if error else 200
        return self._page(user, audience, "history", "audience_history.html", values, status=status)


def _whole(text: str) -> int | None:
    """A whole number written in ASCII digits that fits 64 bits, or None."""
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


def _sample_size(text: str) -> int:
    """The sample asked for: a number larger than any audience is the whole of it; one that
    is no whole number is 0, which the download refuses at `sample`."""
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit():
        return 0
    return INT64_MAX if len(digits) > 18 else int(digits)


def _number(text: str | None, default: int) -> int:
    """The number asked for (-1: none that could be one), or `default` when none is."""
    if text is None:
        return default
    found = _whole(text)
    return -1 if found is None else found


def _connection_error(connection: AudienceConnection, test: AbTestView | None) -> str:
    """What is wrong with a connection the form asks for, before the catalog's checks."""
    if not connection.output:
        return "choose an output"
    if not connection.identity_types:
        return "choose at least one identity type"
    if connection.variation is not None:
        names = [v.name for v in test.variations] if test else []
        if connection.variation not in names:
            return f"no variation {connection.variation!r} in the audience's A/B test"
    return ""
