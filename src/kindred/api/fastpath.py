"""A lean ASGI path for the hot routes, in front of the Starlette app.

Ingest and the Profile API are the hot paths: at thousands of requests a second,
Starlette's request objects and middleware stack cost more CPU than the work itself. These
routes are matched on the raw ASGI scope and answered directly; everything else goes to the
Starlette app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kindred.api.bodies import (
    LARGER_BODIES,
    bounded,
    declared_over,
    gunzipped,
    gzipped,
    header,
    inflating,
    unsupported_encoding,
)
from kindred.api.errors import (
    PayloadTooLarge,
    error_body,
    error_headers,
    status_of,
)
from kindred.api.events import EventsApi
from kindred.api.idsync import IdSyncApi, identity_error_body, identity_route
from kindred.api.profile_api import PROFILE_PREFIX, Answer, OAuthApi, ProfileReadApi
from kindred.bootstrap import Container
from kindred.domain.errors import KindredError

__all__ = ["FastPath"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_WEB_PREFIXES = ("/v3/JS/", "/webevents/v3/JS/")
_CORS = [(b"access-control-allow-origin", b"*")]
_JSON = [(b"content-type", b"application/json")]
_INTERNAL_ERROR = (
    b'{"errors":[{"code":"INTERNAL_ERROR","message":"internal error; see the server log"}]}'
)

log = logging.getLogger("kindred.api")


class FastPath:
    def __init__(self, fallback: ASGIApp, events: EventsApi, container: Container) -> None:
        self._fallback = fallback
        self._events = events
        self._profiles = ProfileReadApi(container)
        self._oauth = OAuthApi(container)
        self._identity = IdSyncApi(container)
        self._max_body = container.settings.server.max_body_bytes
        self._histogram = container.metrics.request_seconds
        self._timers: dict[tuple[str, int], Any] = {}
        self._server_routes = {
            "/v2/events": "events",
            "/v2/bulkevents": "bulkevents",
            "/v2/bulkevents/historical": "bulkevents_historical",
        }

    def paths(self) -> list[str]:
        """The paths answered here (for the docs check)."""
        return list(dict.fromkeys(path for _, path in self.endpoints()))

    def endpoints(self) -> list[tuple[str, str]]:
        """Every (method, path template) answered here, for the checks that walk all routes."""
        profile = f"{PROFILE_PREFIX}{{orgId}}/{{accountId}}/{{workspaceId}}/{{mpid}}"
        resolve = f"{PROFILE_PREFIX}resolve/{{orgId}}/{{accountId}}/{{workspaceId}}"
        posts = [
            *self._server_routes,
            *(f"{p}{{api_key}}/events" for p in _WEB_PREFIXES),
            "/oauth/token",
            *(f"/v1/{call}" for call in ("identify", "search", "login", "logout")),
            "/v1/{mpid}/modify",
            *(f"/identity/v1/{call}" for call in ("identify", "search", "login", "logout")),
            "/identity/v1/{mpid}/modify",
            "/webevents/v1/identity/{api_key}/Alias",
            "/v1/identity/{api_key}/Alias",
        ]
        return [
            *(("POST", path) for path in posts),
            ("GET", "/tags/JS/v2/{api_key}/config"),
            ("GET", profile),
            ("GET", resolve),
            ("POST", resolve),
        ]

    def fallback_routes(self) -> list[Any]:
        return list(getattr(self._fallback, "routes", []))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused: KindredError | None = unsupported_encoding(scope)
            if refused is None and await self._answered_here(scope, receive, send):
                return
            if refused is None:
                limit = LARGER_BODIES.get(scope["path"], self._max_body)
                if declared_over(header(scope, b"content-length"), limit):
                    # Answered before the body is read: the routes behind read it whole.
                    refused = PayloadTooLarge(f"request body over {limit} bytes")
                receive = bounded(receive, limit)
                if gzipped(scope):
                    receive = inflating(receive, limit)
            if refused is not None:
                await _respond(send, *_refusal(refused))
                return
        await self._fallback(scope, receive, send)

    async def _answered_here(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether the request is one of the routes answered here (and now answered)."""
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(PROFILE_PREFIX):
            route = self._profiles.route_of(method, path)
            if route is not None:
                await self._answer(route, scope, receive, send)
                return True
        elif method == "POST":
            route = self._server_routes.get(path)
            if route is not None:
                await self._timed(route, scope, receive, send, cors=False)
                return True
            if path.startswith(_WEB_PREFIXES) and path.endswith("/events"):
                await self._timed("web_events", scope, receive, send, cors=True)
                return True
            if path == "/oauth/token":
                await self._answer("oauth_token", scope, receive, send)
                return True
        found = identity_route(method, path)
        if found is not None:
            await self._identity_call(found, scope, receive, send)
            return True
        return False

    def is_read(self, path: str) -> bool:
        """A Profile API read by MPID: `answer_read` answers it without the request's body."""
        return path.startswith(PROFILE_PREFIX) and self._profiles.route_of("GET", path) == "profile"

    def answer_read(self, path: str, query: bytes, authorization: str | None) -> Answer:
        """The whole answer to a read by MPID (`is_read`), as `__call__` gives it."""
        started = time.perf_counter()
        try:
            status, body, headers = self._profiles.handle(
                "profile", path, query, authorization, b""
            )
        except KindredError as exc:
            status, body, headers = _refusal(exc)
        except Exception:
            log.exception("profile failed")
            status, body, headers = 500, _INTERNAL_ERROR, _JSON
        self._timer("profile", status).observe(time.perf_counter() - started)
        return status, body, headers

    async def _identity_call(
        self, found: tuple[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        route, argument = found
        started = time.perf_counter()
        status, body = 200, b""
        try:
            if route == "config":
                body = self._identity.remote_config(argument)
            elif route == "alias":
                await self._identity.alias(argument, await self._body(scope, receive))
                status = 202
            else:
                payload = await self._body(scope, receive)
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                source = self._identity.caller(headers, "POST", scope["path"], payload)
                body = await self._identity.call(route, argument, source, payload)
        except KindredError as exc:
            status = status_of(exc)
            body = identity_error_body(exc.code, str(exc))
            extra = [(k.encode(), v.encode()) for k, v in error_headers(exc).items()]
            await _respond(send, status, body, _JSON + extra + _CORS)
        except Exception:
            log.exception("identity %s failed", route)
            status = 500
            await _respond(send, 500, _INTERNAL_ERROR, _JSON + _CORS)
        else:
            await _respond(send, status, body, (_JSON if body else []) + _CORS)
        self._timer(f"identity_{route}", status).observe(time.perf_counter() - started)

    async def _answer(self, route: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A route whose handler computes the whole answer from the request's parts."""
        started = time.perf_counter()
        try:
            body = await self._body(scope, receive)
            if route == "oauth_token":
                status, body, headers = await self._oauth.token(
                    header(scope, b"content-type"),
                    header(scope, b"authorization"),
                    body,
                    _peer(scope),
                )
            else:
                status, body, headers = self._compute(route, scope, body)
        except KindredError as exc:
            status, body, headers = _refusal(exc)
        except Exception:
            # Still a JSON answer, as every other one on these routes; the cause is logged.
            log.exception("%s failed", route)
            status, body, headers = 500, _INTERNAL_ERROR, _JSON
        await _respond(send, status, body, headers)
        self._timer(route, status).observe(time.perf_counter() - started)

    def _compute(self, route: str, scope: Scope, body: bytes) -> Answer:
        return self._profiles.handle(
            route,
            scope["path"],
            scope.get("query_string", b""),
            header(scope, b"authorization"),
            body,
        )

    async def _timed(
        self, route: str, scope: Scope, receive: Receive, send: Send, *, cors: bool
    ) -> None:
        started = time.perf_counter()
        extra = _CORS if cors else []
        try:
            await self._dispatch(route, scope, receive)
            status = 202
            await _respond(send, 202, b"", extra)
        except KindredError as exc:
            status, body, headers = _refusal(exc)
            await _respond(send, status, body, headers + extra)
        self._timer(route, status).observe(time.perf_counter() - started)

    async def _dispatch(self, route: str, scope: Scope, receive: Receive) -> None:
        if route == "web_events":
            api_key = scope["path"].rsplit("/", 2)[-2]
            source = self._events.web_input(api_key)
            body = await self._body(scope, receive)
            await self._events.web_events(source, body, _client_ip(scope))
            return
        source = self._events.server_input(header(scope, b"authorization"))
        body = await self._body(scope, receive)
        if route == "events":
            await self._events.events(source, body)
        else:
            await self._events.bulk(source, body, historical=route == "bulkevents_historical")

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        declared = header(scope, b"content-length")
        if declared_over(declared, self._max_body):
            raise PayloadTooLarge(f"request body over {self._max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLarge(f"request body over {self._max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return gunzipped(raw, self._max_body) if gzipped(scope) else raw

    def _timer(self, route: str, status: int) -> Any:
        key = (route, status)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self._histogram.labels(route, str(status))
        return timer


def _refusal(exc: KindredError) -> Answer:
    headers = [(k.encode(), v.encode()) for k, v in error_headers(exc).items()]
    return status_of(exc), error_body(exc), _JSON + headers


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _peer(scope: Scope) -> str | None:
    """The address the request came from, as the server reports it (uvicorn takes it from
    X-Forwarded-For only when the peer is a trusted proxy: its `forwarded_allow_ips`)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _client_ip(scope: Scope) -> str | None:
    """The user's address for client SDK batches: the first X-Forwarded-For hop, else the peer."""
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip() or None
    client = scope.get("client")
    return str(client[0]) if client else None
