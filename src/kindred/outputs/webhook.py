"""HTTP webhook: POST a JSON array of messages, with the configured auth header."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from kindred.domain.errors import DeliveryFailed
from kindred.domain.forwarding import OutputDef
from kindred.domain.redact import redact_text

__all__ = ["WebhookSink", "retry_after_s"]

_ENCODER = msgspec.json.Encoder()
# Worth sending again: the receiver is busy, slow or broken for now.
_TRANSIENT = frozenset({408, 425, 429})


class WebhookSink:
    def __init__(self, output: OutputDef) -> None:
        assert output.url is not None
        self._url = output.url
        headers = {"content-type": "application/json"}
        if output.auth_header:
            name, _, value = output.auth_header.partition(":")
            headers[name.strip()] = value.strip()
        self._client = httpx.Client(timeout=output.timeout_s, headers=headers)

    def send(self, messages: Sequence[dict[str, Any]]) -> None:
        keys = [str(m.get("idempotency_key", "")) for m in messages]
        # The request's own key: the same messages sent again carry the same one.
        request_key = f"{keys[0]}..{keys[-1]}" if keys else ""
        try:
            response = self._client.post(
                self._url,
                content=_ENCODER.encode(list(messages)),
                headers={"idempotency-key": request_key},
            )
        except httpx.HTTPError as exc:
            # The error goes to logs and the connection's status: never the URL's secrets.
            raise DeliveryFailed(redact_text(f"{type(exc).__name__}: {exc}")) from exc
        status = response.status_code
        if status < 300:
            return
        text = redact_text(f"HTTP {status}: {response.text[:200]}")
        if status in _TRANSIENT or status >= 500:
            raise DeliveryFailed(text, retry_after_s=retry_after_s(response.headers))
        raise DeliveryFailed(text, permanent=True)

    def close(self) -> None:
        self._client.close()


def retry_after_s(headers: httpx.Headers, now_s: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))
