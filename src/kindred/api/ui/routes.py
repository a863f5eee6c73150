"""The web UI's routes. Every page, form post and JSON answer needs a session: pages and
posts send the browser to the sign-in page (302), JSON answers 401. A post also needs the
session's CSRF token and the role it names (403 without them: a viewer's forged post
changes nothing). Audiences are shown as their access allows the user
(services.audiences.access). Only the sign-in page and the static files are open."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from kindred.api.ui.answers import html as _html
from kindred.api.ui.answers import message as _message
from kindred.api.ui.audience_tabs import IDENTITY_TYPES, AudienceTabs
from kindred.api.ui.audiences import (
    audience_tabs,
    audiences_view,
    connections_by_audience,
    default_tab,
    in_tab,
)
from kindred.api.ui.builder import builder_routes
from kindred.api.ui.calculated import calculated_routes
from kindred.api.ui.forwarding import forwarding_routes
from kindred.api.ui.layout import page
from kindred.api.ui.live import live_items, live_view
from kindred.api.ui.privacy import privacy_view, receipt_view
from kindred.api.ui.profiles import profile_view, search_form
from kindred.api.ui.render import Markup, path_part
from kindred.api.ui.session import COOKIE, Visitor
from kindred.api.ui.times import query
from kindred.bootstrap import Container
from kindred.domain.errors import InvalidBatch, NotFound, RateLimited
from kindred.domain.lifetime import is_expired
from kindred.domain.users import Role
from kindred.services.audiences.access import AudienceAccessCheck
from kindred.services.forwarding.admin import ConnectionView
from kindred.services.profiles.activity import LiveCursor, LiveFilter
from kindred.wire.limits import INT64_MAX, int64_param, strict_int

__all__ = ["OPEN_PATHS", "ui_routes"]

log = logging.getLogger("kindred.ui")

Handler = Callable[[Request], Awaitable[Response]]
UserHandler = Callable[[Request, Visitor], Awaitable[Response]]
Form = dict[str, list[str]]
ActionHandler = Callable[[Request, Visitor, Form], Awaitable[Response]]

_STATIC = {
    "ui.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "abtest.js": "text/javascript; charset=utf-8",
    "builder.js": "text/javascript; charset=utf-8",
}
# Reachable without a session: signing in, and the stylesheet and script.
OPEN_PATHS = frozenset({"/ui/login", *(f"/ui/static/{n}" for n in _STATIC)})


class UiPages:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._sessions = container.ui_sessions
        self._profiles = container.profiles
        self._activity = container.activity
        self._abtests = container.abtests
        self._names = {i: w.name for i, w in container.tenancy.workspaces.items()}
        self._access = AudienceAccessCheck(container.audiences)

    @property
    def access(self) -> AudienceAccessCheck:
        return self._access

    # --- access -----------------------------------------------------------------------

    def page(self, handler: UserHandler) -> Handler:
        async def guarded(request: Request) -> Response:
            user = self._visitor(request)
            if user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return _to_sign_in(target)
            return await handler(request, user)

        return guarded

    def action(
        self,
        handler: ActionHandler,
        back: Callable[[Request], str],
        needs: Role = Role.EDITOR,
    ) -> Handler:
        """A form post: a session, its CSRF token and the role `needs` needed. Without a
        session the browser signs in and comes back to `back` (the page the form was on),
        never to the post."""

        async def guarded(request: Request) -> Response:
            user = self._visitor(request)
            if user is None:
                return _to_sign_in(back(request))
            form = await _form(request)
            if not user.may_post(form.get("csrf", [""])[0]):
                message = (
                    "This form is out of date or did not come from this site. Nothing was changed."
                )
                values = {"alert": True, "message": message, "back": back(request)}
                return _html(page("message.html", "Refused", user=user, values=values), 403)
            if not user.may(needs):
                message = (
                    f"This needs the {needs.value} role; {user.name} is {user.role.value}."
                    " Nothing was changed."
                )
                values = {"alert": True, "message": message, "back": back(request)}
                return _html(page("message.html", "Refused", user=user, values=values), 403)
            return await handler(request, user, form)

        return guarded

    def json(self, handler: UserHandler) -> Handler:
        async def guarded(request: Request) -> Response:
            user = self._visitor(request)
            if user is None:
                return Response(
                    b'{"error":"sign in at /ui/login"}', 401, media_type="application/json"
                )
            return await handler(request, user)

        return guarded

    def _visitor(self, request: Request) -> Visitor | None:
        return self._sessions.visitor_of(request.cookies.get(COOKIE))

    async def login_form(self, request: Request) -> Response:
        return _html(_login_page(request.query_params.get("next", ""), error=""))

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        name = form.get("name", [""])[0]
        target = _local(form.get("next", [""])[0])
        address = request.client.host if request.client else None
        try:
            cookie = await self._sessions.sign_in(name, form.get("password", [""])[0], address)
        except RateLimited as limited:
            wait = limited.retry_after_s
            message = f"Too many sign-in attempts. Try again in {wait} s."
            response = _html(_login_page(target, error=message), status=429)
            response.headers["retry-after"] = str(wait)
            return response
        if cookie is None:
            return _html(_login_page(target, error="Wrong name or password."), status=401)
        response = RedirectResponse(target or "/ui/profiles", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=self._sessions.ttl_s,
            path="/ui",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request, __: Visitor, ___: Form) -> Response:
        """Ends the session in the store (every copy of the cookie, in every process) and
        clears the cookie."""
        await self._sessions.sign_out(request.cookies.get(COOKIE))
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="lax")
        return response

    # --- pages -----------------------------------------------------------------------

    async def home(self, _: Request, __: Visitor) -> Response:
        return RedirectResponse("/ui/profiles", status_code=302)

    async def search(self, request: Request, user: Visitor) -> Response:
        id_type = request.query_params.get("type", "customer_id")
        value = request.query_params.get("q", "").strip()
        message, status = "", 200
        if value:
            try:
                mpid = self._find(id_type, value)
            except (NotFound, InvalidBatch) as exc:
                message = str(exc)
                status = 400 if isinstance(exc, InvalidBatch) else 200
            else:
                return RedirectResponse(f"/ui/profiles/{path_part(mpid)}", status_code=302)
        return _profiles_message(user, search_form(id_type, value), message, status)

    def _find(self, id_type: str, value: str) -> int:
        if id_type == "mpid":
            return self._profiles.by_mpid(int64_param(value, "q")).mpid
        found = None
        for ws_id in self._names:
            try:
                found = self._profiles.by_identity(id_type, value, ws_id)
                break
            except NotFound:
                continue
        if found is None:
            raise NotFound(f"no profile with {id_type} {value!r}")
        return found.mpid

    async def profile(self, request: Request, user: Visitor) -> Response:
        text = request.path_params["mpid"]
        form = search_form("mpid", text)
        try:
            mpid = int64_param(text, "mpid")
        except InvalidBatch as exc:
            return _profiles_message(user, form, str(exc), 400)
        try:
            profile = self._profiles.by_mpid(mpid)
        except NotFound:
            message = (
                f"No profile with MPID {text}: it does not exist, or it expired and was deleted."
            )
            return _profiles_message(user, form, message, 404)
        now = self._c.clock.now_ms()
        event_type = request.query_params.get("event_type") or None
        timeline = self._activity.timeline(
            profile.mpid, now, event_type=event_type, page=_page_number(request) - 1
        )
        account = next(
            (
                w.account
                for w in self._c.tenancy.workspaces.values()
                if w.identity_scope == profile.scope
            ),
            None,
        )
        expired = account is not None and is_expired(profile, account, now)
        view = profile_view(
            profile,
            expired=expired,
            workspace_names=self._names,
            timeline=timeline,
            event_type=event_type,
            variations=self._abtests.variations_of(profile.mpid),
        )
        values = {"search": form, "view": view}
        title = f"Profile {profile.mpid}"
        return _html(page("profile.html", title, user=user, active="profiles", values=values))

    async def live(self, request: Request, user: Visitor) -> Response:
        live_filter = _live_filter(request)
        items, cursor = self._activity.live(live_filter, None)
        inputs = sorted(self._c.tenancy.inputs_by_name)
        interval = int(self._c.settings.ui.live_poll_interval_s * 1000)
        values = live_view(items, live_filter, inputs, cursor.text(), interval)
        return _html(page("live.html", "Live stream", user=user, active="live", values=values))

    async def live_feed(self, request: Request, _: Visitor) -> Response:
        text = request.query_params.get("after")
        after = LiveCursor.parse(text)
        if text and (after is None or max(after.log_id, after.reject_id) > INT64_MAX):
            raise InvalidBatch(f"after {text!r} is not a cursor this page gave", "after")
        items, cursor = self._activity.live(_live_filter(request), after)
        body = {"cursor": cursor.text(), "count": len(items), "html": str(live_items(items))}
        return Response(
            msgspec.json.encode(body),
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def audiences(self, request: Request, user: Visitor) -> Response:
        chosen = request.query_params.getlist("tag")
        service = self._c.audiences
        caller = user.principal
        every = self._access.visible(caller, service.all())
        tabs = audience_tabs(user)
        show = request.query_params.get("show", "")
        show = show if show in dict(tabs) else default_tab(user)
        wanted = set(chosen)
        shown = [a for a in every if wanted <= set(a.tags) and in_tab(a, show, user)]
        # Metrics of the audiences read above: reading each again would read every audience
        # once per row (bench/RESULTS.md, the audience list).
        rows = list(zip(shown, service.metrics_of(shown), strict=True))
        tags = sorted({t for a in every for t in a.tags})
        values = audiences_view(rows, tags, chosen, self._connections())
        connected = request.query_params.get("connected", "")
        values.update(
            tabs=tabs,
            show=show,
            outputs=[o.name for o in self._c.catalog.current().outputs],
            identity_types=IDENTITY_TYPES,
            connected=connected if strict_int(connected) is not None else "",
            connected_output=request.query_params.get("output", ""),
        )
        return _html(
            page("audiences.html", "Audiences", user=user, active="audiences", values=values)
        )

    async def privacy(self, request: Request, user: Visitor) -> Response:
        status = request.query_params.get("status", "")
        requests = self._c.dsr.list(None)
        receipts = await run_in_threadpool(self._c.receipts.list, None, 200)
        fingerprint = await run_in_threadpool(lambda: self._c.processor_key.fingerprint)
        values = privacy_view(requests, self._names, status, receipts, fingerprint)
        title = "Privacy requests"
        return _html(page("privacy.html", title, user=user, active="privacy", values=values))

    async def receipt(self, request: Request, user: Visitor) -> Response:
        try:
            record = self._c.receipts.get(request.path_params["receipt_id"])
        except NotFound as exc:
            return _message(user, "Erasure receipt", "privacy", str(exc), 404)
        values = receipt_view(record)
        title = "Erasure receipt"
        return _html(page("receipt.html", title, user=user, active="privacy", values=values))

    async def resume(self, request: Request, user: Visitor, _: Form) -> Response:
        """Resume one of the audience's faulted connections, as the admin API does."""
        text, name = request.path_params["audience_id"], request.path_params["name"]
        audience_id = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else -1
        try:
            self._access.seen(user.principal, audience_id)
        except NotFound:
            return self._no_audience(request, user, connection=name)
        if not any(c.name == name for c in self._connections().get(audience_id, [])):
            return self._no_audience(request, user, connection=name)
        try:
            view = self._c.deliveries.resume(name)
        except NotFound:  # taken away since the line above
            return self._no_audience(request, user, connection=name)
        log.info("ui user %s resumed %s (%d pending)", user.name, name, view.pending)
        target = f"/ui/audiences/{path_part(audience_id)}/connect" + query(resumed=name)
        return RedirectResponse(target, status_code=303)

    def _connections(self) -> dict[int, list[ConnectionView]]:
        defs = self._c.catalog.current()
        return connections_by_audience(defs.audience_connections, self._c.deliveries.connections())

    def _no_audience(self, request: Request, user: Visitor, connection: str = "") -> Response:
        text = request.path_params["audience_id"]
        message = f"Audience {text} has no connection {connection}." if connection else ""
        return _message(user, "Audience", "audiences", message or f"No audience {text}.", 404)


def _page_number(request: Request) -> int:
    text = request.query_params.get("page", "1")
    page = strict_int(text) if len(text) <= 18 else None
    return page if page is not None and page > 0 else 1


def _live_filter(request: Request) -> LiveFilter:
    params = request.query_params
    environment = params.get("environment", "development")
    return LiveFilter(
        input=params.get("input") or None,
        event_type=params.get("event_type") or None,
        environment=None if environment == "all" else environment,
    )


async def _form(request: Request) -> Form:
    return parse_qs((await request.body()).decode("utf-8", errors="replace"))


def _to_sign_in(target: str) -> Response:
    return RedirectResponse("/ui/login" + query(next=target), status_code=302)


def _audience_page(request: Request) -> str:
    return f"/ui/audiences/{path_part(request.path_params['audience_id'])}"


def _local(target: str) -> str:
    """Only a path of this UI is a place to go back to after signing in."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in target:
        return ""
    return target


def _login_page(target: str, *, error: str) -> Markup:
    values = {"error": error, "target": _local(target)}
    return page("login.html", "Sign in", user=None, values=values)


def _profiles_message(
    user: Visitor, search: dict[str, object], message: str, status: int
) -> Response:
    """The profile search page, with a line saying why nothing is shown (if it has one)."""
    values = {"message": message, "alert": False, "search": search}
    return _html(
        page("message.html", "User activity", user=user, active="profiles", values=values), status
    )


def _static(name: str) -> Handler:
    content = resources.files("kindred.api.ui").joinpath("static", name).read_bytes()
    media_type = _STATIC[name]

    async def serve(_: Request) -> Response:
        return Response(content, media_type=media_type, headers={"cache-control": "max-age=300"})

    return serve


def ui_routes(container: Container) -> list[Route]:
    ui = UiPages(container)
    tabs = AudienceTabs(container, ui.access)
    return [
        Route("/ui/login", ui.login_form, methods=["GET"]),
        Route("/ui/login", ui.login, methods=["POST"]),
        Route(
            "/ui/logout",
            ui.action(ui.logout, lambda _: "/ui/profiles", needs=Role.VIEWER),
            methods=["POST"],
        ),
        *(Route(f"/ui/static/{name}", _static(name), methods=["GET"]) for name in _STATIC),
        Route("/ui", ui.page(ui.home), methods=["GET"]),
        Route("/ui/", ui.page(ui.home), methods=["GET"]),
        Route("/ui/profiles", ui.page(ui.search), methods=["GET"]),
        Route("/ui/profiles/{mpid}", ui.page(ui.profile), methods=["GET"]),
        Route("/ui/live", ui.page(ui.live), methods=["GET"]),
        Route("/ui/api/live", ui.json(ui.live_feed), methods=["GET"]),
        *builder_routes(container, ui, _html),  # before /ui/audiences/{id}: it takes "new"
        Route("/ui/audiences", ui.page(ui.audiences), methods=["GET"]),
        Route("/ui/privacy", ui.page(ui.privacy), methods=["GET"]),
        Route("/ui/privacy/receipts/{receipt_id}", ui.page(ui.receipt), methods=["GET"]),
        Route(
            "/ui/audiences/connect",
            ui.action(tabs.bulk_connect, lambda _: "/ui/audiences"),
            methods=["POST"],
        ),
        Route(
            "/ui/audiences/{audience_id}/connections/{name}/resume",
            ui.action(ui.resume, _audience_page),
            methods=["POST"],
        ),
        *calculated_routes(container, ui),
        *forwarding_routes(container, ui),
        *_audience_tab_routes(ui, tabs),
    ]


def _audience_tab_routes(ui: UiPages, tabs: AudienceTabs) -> list[Route]:
    """One audience's tabs (GET) and their form posts."""
    one = "/ui/audiences/{audience_id}"
    pages = (
        ("", tabs.overview),
        ("/overview", tabs.overview),
        ("/build", tabs.build),
        ("/ab-test", tabs.abtest),
        ("/connect", tabs.connect_tab),
        ("/download", tabs.download_tab),
        ("/download/zip", tabs.download),
        ("/history", tabs.history),
    )
    posts = (
        ("/ab-test", tabs.save_test, "change"),
        ("/ab-test/delete", tabs.delete_test, "change"),
        ("/connect", tabs.connect, "use"),
        ("/connections/{name}/disconnect", tabs.disconnect, "use"),
    )
    return [
        *(Route(one + p, ui.page(tabs.tab(h)), methods=["GET"]) for p, h in pages),
        *(
            Route(one + p, ui.action(tabs.post(h, needs), _audience_page), methods=["POST"])
            for p, h, needs in posts
        ),
    ]
