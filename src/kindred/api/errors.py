"""One table from Kindred's exceptions to HTTP answers, in mParticle's error body shape."""

from __future__ import annotations

import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kindred.domain.errors import (
    AuthMissing,
    AuthRejected,
    ConfigError,
    InvalidBatch,
    KindredError,
    NotFound,
    RateLimited,
    StoreUnavailable,
)

__all__ = [
    "STATUS_BY_ERROR",
    "PayloadTooLarge",
    "error_body",
    "error_headers",
    "error_response",
    "handle_kindred_error",
    "invalid",
]


class PayloadTooLarge(KindredError):
    code = "PAYLOAD_TOO_LARGE"


STATUS_BY_ERROR: dict[type[KindredError], int] = {
    InvalidBatch: 400,
    AuthMissing: 401,
    AuthRejected: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    RateLimited: 429,
    StoreUnavailable: 503,
    ConfigError: 500,
}

_ENCODER = msgspec.json.Encoder()
_PATH = re.compile(r"(.*) - at `\$\.?(.*)`$")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = _ENCODER.encode({"errors": [{"code": code, "message": message}]})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def status_of(exc: KindredError) -> int:
    return next((s for t, s in STATUS_BY_ERROR.items() if isinstance(exc, t)), 500)


def error_headers(exc: KindredError) -> dict[str, str]:
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after_s), "X-mp-rate-limit-exceeded": exc.scope}
    if isinstance(exc, AuthMissing):
        return {"WWW-Authenticate": 'Basic realm="kindred"'}
    return {}


def error_body(exc: KindredError) -> bytes:
    return _ENCODER.encode({"errors": [{"code": exc.code, "message": str(exc)}]})


async def handle_kindred_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, KindredError)
    return Response(
        error_body(exc),
        status_code=status_of(exc),
        media_type="application/json",
        headers=error_headers(exc),
    )


def invalid(exc: Exception, prefix: str = "") -> InvalidBatch:
    """An InvalidBatch from a msgspec error or another InvalidBatch, with the path prefixed
    (`[3].` for the fourth batch of a bulk request)."""
    if isinstance(exc, InvalidBatch):
        return InvalidBatch(exc.reason, _join(prefix, exc.path))
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidBatch(f"body is not valid JSON: {exc}", prefix.rstrip("."))
    match = _PATH.match(str(exc))
    if match is None:
        return InvalidBatch(str(exc), prefix.rstrip("."))
    return InvalidBatch(match.group(1), _join(prefix, match.group(2)))


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix.rstrip(".")
    return prefix + path if not path.startswith("[") else prefix.rstrip(".") + path
