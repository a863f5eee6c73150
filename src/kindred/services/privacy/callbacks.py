"""Status callbacks of data subject requests (OpenDSR reference §6): on each status change
the request's status object is POSTed to each of its `status_callback_urls`, with
`X-OpenDSR-Signature`: base64 of the RSA-SHA256 signature of the body by the processor's
key (whose certificate `GET /v3/discovery` gives).

They go through the outbox like every other delivery (ENR-3): one row per URL, of kind
"callback", on the connection `CALLBACK_CONNECTION`, which the delivery runner sends as it
sends any connection's rows (retries with backoff, dead letters, a lease per connection
across processes), so a callback outlives a restart and a receiver that is down. The rows
are written in the transaction that stores the new status (`DsrStore.insert_dsr`,
`update_dsr`; a completed erasure's in the erasure's own transaction, `uow.dsr.update`), so
they are queued in the order the statuses were stored, whichever process stored them; each
holds the body as signed then: a receiver gets each status in order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

import msgspec

from kindred.domain.dsr import DsrRequest
from kindred.domain.forwarding import EventConnection, OutputDef
from kindred.ports import Clock, Delivery
from kindred.services.forwarding.rendering import CALLBACK_KIND
from kindred.services.privacy.signing import ProcessorKey

__all__ = [
    "CALLBACK_CONNECTION",
    "CallbackMaker",
    "CallbackNote",
    "StatusCallbacks",
    "StatusOf",
    "callback_lane",
]

# The connection whose lane sends the callbacks (no output or connection of the catalog
# may take this name).
CALLBACK_CONNECTION = "opendsr-callbacks"

_ENCODE = msgspec.json.Encoder()


class CallbackNote(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a "callback" outbox row: where to POST `body` (the status object as
    signed) and its signature."""

    url: str
    body: str
    signature: str
    request_id: str
    status: str


class StatusOf(Protocol):
    """A request's status object, as `GET /v3/requests/{id}` answers. `queued`: sources of
    its erasure messages waiting in the outbox of the transaction that stores the status
    (not committed yet, so not read: they are pending)."""

    def __call__(self, request: DsrRequest, *, queued: Collection[str] = ()) -> dict[str, Any]: ...


# The callbacks' rows of a request's status stored inside an erasure's transaction, given
# the sources of the erasure messages that transaction queued.
CallbackMaker = Callable[[DsrRequest, Collection[str]], list[Delivery]]


class StatusCallbacks:
    def __init__(self, key: ProcessorKey, clock: Clock, status_of: StatusOf) -> None:
        self._key = key
        self._clock = clock
        self._status_of = status_of

    def rows(self, request: DsrRequest) -> list[Delivery]:
        """The outbox rows of the callbacks of the request's status as it is now."""
        return self._rows(request, (), self._key.sign)

    def maker(self, request: DsrRequest) -> CallbackMaker:
        """What makes the callbacks' rows of the request's next status inside a store
        transaction (an erasure's). The key is loaded now, before that transaction starts:
        loading may write to the store (the key is made on first use), which must not
        happen inside it."""
        if not request.callback_urls:
            return lambda _request, _queued: []
        signer = self._key.signer()
        return lambda later, queued: self._rows(later, queued, signer.sign)

    def _rows(
        self, request: DsrRequest, queued: Collection[str], sign: Callable[[bytes], str]
    ) -> list[Delivery]:
        if not request.callback_urls:
            return []
        body = _ENCODE.encode(self._status_of(request, queued=queued))
        signature = sign(body)
        now = self._clock.now_ms()
        return [
            Delivery(
                connection=CALLBACK_CONNECTION,
                kind=CALLBACK_KIND,
                workspace_id=request.workspace_id,
                created_ms=now,
                body=_ENCODE.encode(
                    CallbackNote(
                        url=url,
                        body=body.decode(),
                        signature=signature,
                        request_id=request.request_id,
                        status=request.status,
                    )
                ),
            )
            for url in request.callback_urls
        ]


def callback_lane(timeout_s: float) -> tuple[EventConnection, OutputDef]:
    """The connection and output the delivery runner sends the callbacks over: one
    message per request (each has its own URL)."""
    output = OutputDef(
        name=CALLBACK_CONNECTION,
        kind="webhook",
        url="http://status-callbacks.invalid/",
        timeout_s=timeout_s,
        batch_size=1,
    )
    connection = EventConnection(name=CALLBACK_CONNECTION, input="", output=CALLBACK_CONNECTION)
    return connection, output
