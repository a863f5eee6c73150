"""What each refusal is answered with over HTTP: a store that may have taken the request
(its answer lost) is a 504 that says so, never the 503 that promises nothing was stored."""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request

from kindred.api.errors import handle_kindred_error
from kindred.domain.errors import KindredError, OutcomeUnknown, StoreUnavailable


def answered(exc: KindredError) -> tuple[int, dict[str, str], dict[str, object]]:
    request = Request({"type": "http", "method": "POST", "path": "/v2/events", "headers": []})
    response = asyncio.run(handle_kindred_error(request, exc))
    body = msgspec.json.decode(bytes(response.body))
    return response.status_code, dict(response.headers), body["errors"][0]


def test_a_store_that_may_have_taken_the_batch_is_a_504_naming_it() -> None:
    status, headers, error = answered(OutcomeUnknown("it may be stored; send it again unchanged"))
    assert status == 504
    assert headers["retry-after"] == "5"
    assert error == {
        "code": "OUTCOME_UNKNOWN",
        "message": "it may be stored; send it again unchanged",
    }


def test_a_store_that_took_nothing_is_a_503() -> None:
    status, headers, error = answered(StoreUnavailable("batch log unavailable"))
    assert (status, headers["retry-after"], error["code"]) == (503, "5", "SERVICE_UNAVAILABLE")
