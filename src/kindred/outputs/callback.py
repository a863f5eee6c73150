"""Status callbacks of data subject requests (OpenDSR): each message is one POST of a
status object, already signed, to its own URL, with `X-OpenDSR-Signature`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from kindred.domain.errors import DeliveryFailed
from kindred.domain.redact import redact_text
from kindred.outputs.webhook import retry_after_s

__all__ = ["CallbackSink"]

_TRANSIENT = frozenset({408, 425, 429})


class CallbackSink:
    """Messages `{url, body, signature, idempotency_key}`: `body` POSTed as it was signed."""

    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.Client(timeout=timeout_s)

    def send(self, messages: Sequence[dict[str, Any]]) -> None:
        for message in messages:
            self._post(message)

    def _post(self, message: dict[str, Any]) -> None:
        try:
            response = self._client.post(
                str(message["url"]),
                content=str(message["body"]).encode(),
                headers={
                    "content-type": "application/json",
                    "X-OpenDSR-Signature": str(message["signature"]),
                    "idempotency-key": str(message.get("idempotency_key", "")),
                },
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(redact_text(f"{type(exc).__name__}: {exc}")) from exc
        status = response.status_code
        if status < 300:
            return
        text = redact_text(f"HTTP {status} from a status callback: {response.text[:200]}")
        if status in _TRANSIENT or status >= 500:
            raise DeliveryFailed(text, retry_after_s=retry_after_s(response.headers))
        raise DeliveryFailed(text, permanent=True)

    def close(self) -> None:
        self._client.close()
