"""One table from Kindred's exceptions to HTTP answers, in mParticle's error body shape."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from kindred.domain.errors import (
    AuthMissing,
    AuthRejected,
    ConfigError,
    Conflict,
    Gone,
    InvalidBatch,
    InvalidToken,
    KindredError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    StoreUnavailable,
)

__all__ = [
    "STATUS_BY_ERROR",
    "PayloadTooLarge",
    "UnsupportedEncoding",
    "error_body",
    "error_headers",
    "error_response",
    "handle_kindred_error",
]


class PayloadTooLarge(KindredError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedEncoding(KindredError):
    code = "UNSUPPORTED_MEDIA_TYPE"


STATUS_BY_ERROR: dict[type[KindredError], int] = {
    InvalidBatch: 400,
    AuthMissing: 401,
    AuthRejected: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    PayloadTooLarge: 413,
    UnsupportedEncoding: 415,
    RateLimited: 429,
    # Before StoreUnavailable, which it is a kind of (the first match counts).
    OutcomeUnknown: 504,
    StoreUnavailable: 503,
    ConfigError: 500,
}

_ENCODER = msgspec.json.Encoder()


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
    if isinstance(exc, StoreUnavailable):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, InvalidToken):
        return {"WWW-Authenticate": 'Bearer realm="kindred", error="invalid_token"'}
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
