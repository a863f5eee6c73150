"""The batch log as an operator sees it (`kindred stream status`): the backlog, and per
partition its stored position, the batches waiting and the worker holding it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from kindred.domain.errors import StoreUnavailable
from kindred.ports.batch_log import Backlog, BatchLog, PartitionLeases, PartitionState

__all__ = ["LogStatus", "read_status"]


@dataclass(frozen=True)
class LogStatus:
    backlog: Backlog
    partitions: list[PartitionState]

    def as_dict(self, now_ms: int) -> dict[str, object]:
        oldest = self.backlog.oldest_ms
        return {
            "backlog_bytes": self.backlog.bytes,
            "backlog_batches": self.backlog.messages,
            "backlog_age_s": 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000),
            "partitions": [
                {
                    "partition": p.partition,
                    "position": p.position,
                    "lag": self.backlog.per_partition.get(p.partition, 0),
                    "worker": p.owner or None,
                }
                for p in self.partitions
            ],
        }


def read_status(
    make_log: Callable[[], BatchLog], leases: PartitionLeases, partitions: int
) -> LogStatus:
    async def backlog() -> Backlog:
        batch_log = make_log()
        try:
            return await batch_log.backlog()
        finally:
            await batch_log.close()

    states = leases.partition_states(partitions)
    try:
        held = asyncio.run(backlog())
    except Exception as exc:
        raise StoreUnavailable(f"batch log unavailable: {exc!r}") from exc
    return LogStatus(held, states)
