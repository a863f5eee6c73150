"""The HTTP processes' side of `kindred serve --writer-process`: a batch sent to the
writer process and answered with its outcome, or raising what the writer raised, as the
group writer answers in one process; and the two ends of that translation (an error as
the writer process answers it, the answer as the HTTP process raises it)."""

from __future__ import annotations

from collections.abc import Sequence

from kindred.domain.errors import (
    Conflict,
    Gone,
    InvalidBatch,
    KindredError,
    NotFound,
    OutcomeUnknown,
    StoreUnavailable,
)
from kindred.observability import PrometheusMetrics
from kindred.services.writes.commands import Accepted, BatchOutcome, Refused
from kindred.stream.writer_link import WriterLink
from kindred.wire.writer_frames import AcceptedFrame, RefusedFrame, ReplyFrame, RequestFrame

__all__ = ["RemoteWriter", "failure_reply"]

_ERRORS: dict[str, type[KindredError]] = {
    cls.__name__: cls for cls in (StoreUnavailable, OutcomeUnknown, NotFound, Conflict, Gone)
}


class RemoteWriter:
    """Batches sent to the writer process, each answered with its outcome (or raising
    what the writer raised), as the group writer answers them in one process."""

    def __init__(self, link: WriterLink, metrics: PrometheusMetrics) -> None:
        self._link = link
        self._metrics = metrics

    async def submit(self, items: Sequence[Accepted | Refused]) -> list[BatchOutcome]:
        frames = [self._frame(item) for item in items]
        replies = await self._link.send(frames)
        outcomes = []
        for item, reply in zip(items, replies, strict=True):
            if reply.error:
                raise _error_of(reply)
            if isinstance(item, Accepted):
                events = len(item.observation.events)
                self._metrics.batch_done(item.input.name, reply.status, events)
            outcomes.append(BatchOutcome(reply.status, reply.mpid))
        return outcomes

    async def close(self) -> None:
        await self._link.close()

    def _frame(self, item: Accepted | Refused) -> RequestFrame:
        if isinstance(item, Accepted):
            return AcceptedFrame(
                self._link.next_id(),
                item.input.name,
                item.observation,
                item.body,
                item.client_ip,
                item.historical,
            )
        return RefusedFrame(
            self._link.next_id(),
            item.input_name,
            item.received_ms,
            item.kind,
            item.reason,
            item.body,
        )


def _error_of(reply: ReplyFrame) -> Exception:
    if reply.error == "InvalidBatch":
        return InvalidBatch(reply.message, reply.path)
    known = _ERRORS.get(reply.error)
    if known is not None:
        return known(reply.message)
    return RuntimeError(f"the writer process failed: {reply.error}: {reply.message}")


def failure_reply(request: int, exc: BaseException) -> ReplyFrame:
    """What the writer process answers for a request its writer refused or failed: what
    `RemoteWriter` raises again in the HTTP process (`_error_of`)."""
    if isinstance(exc, InvalidBatch):
        return ReplyFrame(request, error="InvalidBatch", message=exc.reason, path=exc.path)
    return ReplyFrame(request, error=type(exc).__name__, message=str(exc))
