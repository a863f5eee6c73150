"""Who may call the admin API, checked once for every path under /admin/: the caller (a
user's API key or the bootstrap `admin.token`, see `services.access.users.AdminCallers`)
and the role the method and path need (`domain.users.role_needed`). A route added under
/admin/ later is covered without code of its own; a route reads its caller with
`caller_of` (the audience routes check access to each audience with it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kindred.api.errors import error_body, error_headers, status_of
from kindred.domain.errors import AuthMissing, KindredError
from kindred.domain.users import Principal, role_needed
from kindred.services.access.users import AdminCallers

__all__ = ["ADMIN_PREFIX", "AdminGuard", "caller_of"]

ADMIN_PREFIX = "/admin/"
_STATE_KEY = "kindred_principal"


class AdminGuard:
    """ASGI middleware: a request under /admin/ reaches its route only with a caller whose
    role covers it (401 without a known credential, 403 naming the role needed)."""

    def __init__(self, app: ASGIApp, callers: AdminCallers) -> None:
        self._app = app
        self._callers = callers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ADMIN_PREFIX):
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = await self._callers.caller(
                request.headers.get("authorization"),
                request.client.host if request.client else None,
            )
            needed = role_needed(request.method, request.url.path)
            principal.require(needed, f"{request.method} {request.url.path}")
        except KindredError as exc:
            response = Response(
                error_body(exc),
                status_code=status_of(exc),
                media_type="application/json",
                headers=_without_basic(error_headers(exc)),
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE_KEY] = principal
        await self._app(scope, receive, send)


def caller_of(request: Request) -> Principal:
    """The caller AdminGuard let through (AuthMissing if the request did not pass it)."""
    principal = request.scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(principal, Principal):
        raise AuthMissing("missing Authorization: Bearer <user API key or admin.token>")
    return principal


def _without_basic(headers: dict[str, str]) -> dict[str, str]:
    """The admin API asks for a bearer credential, not HTTP Basic."""
    if "WWW-Authenticate" in headers and headers["WWW-Authenticate"].startswith("Basic"):
        return {**headers, "WWW-Authenticate": 'Bearer realm="kindred-admin"'}
    return headers
