"""The partitioned batch log between API processes and workers (OPS-2, scale-out).

`BatchLog` is the log itself (a NATS JetStream stream in `kindred.stream`): API processes
append, workers read a partition in order from a position. The log keeps no reader state
that matters: where each partition has been applied to is kept by the store, in the
transaction that applies it (`EventLogWrites.move_position`), so a worker that dies
after applying and before anything else happens reads from the store's position again and
skips nothing and repeats nothing.

`PartitionLeases` is which worker reads which partition, kept by the shared store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Backlog",
    "BatchLog",
    "LogMetrics",
    "LogRecord",
    "PartitionLeases",
    "PartitionState",
]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One appended message: its position in the log (increasing within a partition,
    not necessarily by one) and its bytes."""

    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the log holds that workers have not yet trimmed (applied, then trimmed)."""

    bytes: int
    messages: int
    # When the oldest message held was appended (None: nothing held).
    oldest_ms: int | None
    # Messages held per partition.
    per_partition: dict[int, int] = field(default_factory=dict)


class BatchLog(Protocol):
    """Asynchronous: every call is made from one event loop (the one it first ran on)."""

    @property
    def partitions(self) -> int: ...

    async def append(self, partition: int, data: bytes, msg_id: str) -> int:
        """Append and wait until the log has stored it (replicated, in a cluster); its
        seq. `msg_id` makes a resend within the log's duplicate window a no-op."""
        ...

    async def read(
        self, partition: int, after_seq: int, limit: int, wait_s: float
    ) -> list[LogRecord]:
        """Up to `limit` records of the partition with seq > `after_seq`, in order;
        waits up to `wait_s` for the first one (an empty list when none came). One read
        of a partition at a time: a second one while the first is under way raises
        RuntimeError."""
        ...

    async def trim(self, positions: Mapping[int, int]) -> None:
        """Drop the records no partition needs any more: every record below the first
        one not yet applied, given each partition's applied position (records appended
        meanwhile are kept)."""
        ...

    async def backlog(self) -> Backlog: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PartitionState:
    partition: int
    # The last seq applied (0: none), the worker holding it and until when ('' / 0: none).
    position: int
    owner: str
    expires_ms: int


class PartitionLeases(Protocol):
    """Which worker reads which partition; times are the store's clock, so that workers on
    machines whose clocks differ agree."""

    def lease(self, owner: str, partitions: int, lease_ms: int) -> list[int]:
        """One round of `owner`'s lease: renew its own partitions and its presence, take
        free or expired ones up to its fair share (the partitions over the workers present),
        give back those beyond it. The partitions it holds afterwards, sorted."""
        ...

    def release(self, owner: str, partitions: Sequence[int] | None = None) -> None:
        """Give back these partitions (all, and the owner's presence, when None)."""
        ...

    def position(self, partition: int) -> int:
        """The partition's stored position (0: nothing applied)."""
        ...

    def partition_states(self, partitions: int) -> list[PartitionState]: ...


class LogMetrics(Protocol):
    """What the batch log's API and worker sides report."""

    def log_backlog(self, backlog: Backlog, age_s: float) -> None: ...

    def log_backlog_full(self) -> None: ...

    def log_applied(self, batches: int, redelivered: int) -> None: ...

    def log_partitions_held(self, count: int) -> None: ...
