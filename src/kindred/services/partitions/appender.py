"""The API role's side of the batch log: a batch that passed the edge is appended to its
partition, and answered 202 once the log has stored it.

Nothing here touches the store, so API processes keep accepting while PostgreSQL is down
or slow, until the backlog (what workers have not yet applied) passes its limit in bytes
or age; then each batch is answered 503 with Retry-After, and nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kindred.domain.errors import StoreUnavailable
from kindred.identity.partition import partition_key, partition_of
from kindred.ports import Clock
from kindred.ports.batch_log import Backlog, BatchLog, LogMetrics
from kindred.services.writes.commands import Accepted, Refused
from kindred.wire.envelope import Envelope, encode_envelope

__all__ = ["BacklogFull", "BacklogLimits", "LogAppender", "envelope_of", "partition_for"]


# How old the last backlog figure may be when the log cannot be asked.
_STALE_S = 15.0


class BacklogFull(StoreUnavailable):
    """The batch log holds as much as it may: come back later (503, Retry-After)."""


@dataclass(frozen=True)
class BacklogLimits:
    max_bytes: int
    max_age_s: float
    retry_after_s: int = 5
    # How often the backlog is read again (each API process reads it on its own).
    refresh_s: float = 0.5


class LogAppender:
    def __init__(
        self,
        log: BatchLog,
        limits: BacklogLimits,
        clock: Clock,
        metrics: LogMetrics,
        msg_ids: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._log = log
        self._limits = limits
        self._clock = clock
        self._metrics = metrics
        self._msg_ids = msg_ids
        self._backlog: Backlog | None = None
        self._read_at = 0.0  # when the backlog was last read
        self._next_read = 0.0  # when it is read again
        self._reading = asyncio.Lock()

    async def submit(self, items: Sequence[Accepted | Refused]) -> None:
        """Every item appended and stored by the log; raises BacklogFull over the limit,
        StoreUnavailable when the log cannot be reached."""
        await self._check_backlog()
        await asyncio.gather(*(self._append(item) for item in items))

    async def close(self) -> None:
        await self._log.close()

    async def _append(self, item: Accepted | Refused) -> None:
        partition = partition_for(item, self._log.partitions)
        await self._log.append(partition, encode_envelope(envelope_of(item)), self._msg_ids())

    async def _check_backlog(self) -> None:
        backlog = await self._current()
        limits = self._limits
        age_s = self._age_s(backlog)
        if backlog.bytes > limits.max_bytes or age_s > limits.max_age_s:
            self._metrics.log_backlog_full()
            full = BacklogFull(
                f"ingest backlog full ({backlog.bytes} bytes, oldest {age_s:.0f} s):"
                " come back later"
            )
            full.retry_after_s = limits.retry_after_s
            raise full

    async def _current(self) -> Backlog:
        if self._backlog is not None and time.monotonic() < self._next_read:
            return self._backlog
        async with self._reading:  # one read at a time; those waiting use its answer
            if self._backlog is None or time.monotonic() >= self._next_read:
                await self._read_backlog()
        assert self._backlog is not None
        return self._backlog

    async def _read_backlog(self) -> None:
        now = time.monotonic()
        self._next_read = now + self._limits.refresh_s
        try:
            backlog = await self._log.backlog()
        except Exception as exc:
            # A stream leader being elected answers nothing for a few seconds: the last
            # figure stands in meanwhile (appends wait for the new leader).
            if self._backlog is None or now - self._read_at > _STALE_S:
                raise StoreUnavailable(f"batch log unavailable: {exc!r}") from exc
            return
        self._backlog, self._read_at = backlog, now
        self._metrics.log_backlog(backlog, self._age_s(backlog))

    def _age_s(self, backlog: Backlog) -> float:
        if backlog.oldest_ms is None:
            return 0.0
        return max(0.0, (self._clock.now_ms() - backlog.oldest_ms) / 1000)


def partition_for(item: Accepted | Refused, partitions: int) -> int:
    """An accepted batch by its user's key; a refused one (no user to speak of) by its
    input."""
    if isinstance(item, Refused):
        return partition_of(f"refused\x1f{item.input_name}", partitions)
    workspace = item.input.workspace
    key = partition_key(item.observation, workspace.identity_scope, workspace.account.identity)
    return partition_of(key, partitions)


def envelope_of(item: Accepted | Refused) -> Envelope:
    if isinstance(item, Refused):
        return Envelope(
            kind="quarantined" if item.kind == "quarantined" else "rejected",
            input=item.input_name,
            received_ms=item.received_ms,
            body=item.body,
            reason=item.reason,
        )
    return Envelope(
        kind="accepted",
        input=item.input.name,
        received_ms=item.observation.received_ms,
        body=item.body,
        client_ip=item.client_ip,
        historical=item.historical,
    )
