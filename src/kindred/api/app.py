"""The ASGI app factory: routes, CORS for browser callers, error table, lifespan."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kindred.api.admin import admin_routes
from kindred.api.admin_guard import AdminGuard
from kindred.api.dsr import dsr_routes
from kindred.api.errors import handle_kindred_error, status_of
from kindred.api.events import EventsApi
from kindred.api.fastpath import FastPath
from kindred.api.imports import ImportApi
from kindred.api.openapi import openapi_document
from kindred.api.platform import platform_routes
from kindred.api.ui import ui_routes
from kindred.bootstrap import Container
from kindred.domain.errors import KindredError

__all__ = ["create_app"]

Handler = Callable[[Request], Awaitable[Response]]


def create_app(container: Container, *, manage_lifecycle: bool = True) -> FastPath:
    """`manage_lifecycle`: start the container on startup and drain it on shutdown."""
    events = EventsApi(container)
    imports = ImportApi(container)
    timed = _timer(container)
    routes = [
        Route("/v2/import/csv", timed("import_csv", imports.csv), methods=["POST"]),
        Route("/healthz", _health(container), methods=["GET"]),
        Route("/readyz", _health(container), methods=["GET"]),
        Route("/metrics", _metrics(container), methods=["GET"]),
        Route("/openapi.json", _openapi(), methods=["GET"]),
        *dsr_routes(container, timed),
        *admin_routes(container),
        *platform_routes(container),
        *ui_routes(container),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            container.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                container.close()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["x-mp-key", "content-type", "authorization", "accept"],
                max_age=86400,
            ),
            Middleware(AdminGuard, callers=container.admin_callers),
        ],
        exception_handlers={
            KindredError: handle_kindred_error,
            ClientDisconnect: client_gone,
        },
        lifespan=lifespan,
    )
    return FastPath(app, events, container)


async def client_gone(_: Request, __: Exception) -> Response:
    """The client went away while its body was read: nobody is left to answer, and it is
    not a fault of the server's (no error logged)."""
    return Response(status_code=499)


def _timer(container: Container) -> Callable[[str, Handler], Handler]:
    histogram = container.metrics.request_seconds

    def wrap(route: str, handler: Handler) -> Handler:
        async def timed(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status_code
                return response
            except KindredError as exc:
                status = status_of(exc)
                raise
            finally:
                histogram.labels(route, str(status)).observe(time.perf_counter() - started)

        return timed

    return wrap


def _health(container: Container) -> Handler:
    async def health(_: Request) -> Response:
        if not container.started:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok", "queued": container.writer.queued()})

    return health


def _openapi() -> Handler:
    document = Response(msgspec.json.encode(openapi_document()), media_type="application/json").body

    async def openapi(_: Request) -> Response:
        return Response(document, media_type="application/json")

    return openapi


def _metrics(container: Container) -> Handler:
    """Prometheus exposition; behind a bearer token when `metrics.token` is set."""
    token = container.settings.metrics.token
    expected = None if token is None else f"bearer {token}".encode()

    async def metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if not hmac.compare_digest(f"{scheme.lower()} {value.strip()}".encode(), expected):
                return JSONResponse(
                    {"error": "Authorization: Bearer <metrics.token> is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        container.metrics.queue_depth.set(container.writer.queued())
        return Response(
            container.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return metrics
