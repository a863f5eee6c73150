"""`Retry-After` as a receiver may send it: seconds or an HTTP date."""

from __future__ import annotations

import httpx

from kindred.outputs.webhook import retry_after_s


def test_seconds_and_http_dates() -> None:
    assert retry_after_s(httpx.Headers({"Retry-After": "120"})) == 120.0
    assert retry_after_s(httpx.Headers({"Retry-After": "-3"})) == 0.0
    date = httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_s(date, now_s=1445412450.0) == 30.0
    assert retry_after_s(date, now_s=1445412500.0) == 0.0
    assert retry_after_s(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after_s(httpx.Headers({})) is None
