"""The worker's readers of the batch log: one reader per partition at a time in a process,
even when stopping a reader's read drops the cancellation (Python 3.11's
`asyncio.wait_for`, under the NATS client's fetch, returns the message that arrived as it
was cancelled); every record applied once and in order through lost and regained leases;
the worker stops promptly."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping, Sequence

from kindred.ports.batch_log import Backlog, LogRecord, PartitionState
from kindred.services.ingest.positioned import OUT_OF_ORDER, REDELIVERED, Positioned
from kindred.services.partitions.worker import PartitionWorker, WorkerOptions
from kindred.services.writes.commands import BatchOutcome

RECORDS = [LogRecord(seq, b"r%d" % seq) for seq in range(3, 300, 3)]


class SwallowingLog:
    """One partition whose reads give one record at a time and drop a cancellation that
    comes while they wait, returning the record all the same."""

    partitions = 1

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0

    async def read(
        self, partition: int, after_seq: int, limit: int, wait_s: float
    ) -> list[LogRecord]:
        assert partition == 0
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            # A cancellation while waiting is dropped, as wait_for drops one that comes
            # as its message does.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(min(wait_s, 0.005))
            return [r for r in RECORDS if r.seq > after_seq][: min(limit, 1)]
        finally:
            self.in_flight -= 1

    async def append(self, partition: int, data: bytes, msg_id: str) -> int:
        raise NotImplementedError

    async def trim(self, positions: Mapping[int, int]) -> None:  # noqa: ARG002
        return None

    async def backlog(self) -> Backlog:
        return Backlog(0, 0, None)

    async def close(self) -> None:
        return None


class ScriptedLeases:
    """Partition 0 held, lost, held again, ... one lease round each; the stored position
    moved as `Store.apply` moves it."""

    def __init__(self) -> None:
        self.rounds = 0
        self.stored = 0
        self.lock = threading.Lock()

    def lease(self, owner: str, partitions: int, lease_ms: int) -> list[int]:  # noqa: ARG002
        self.rounds += 1
        return [0] if self.rounds % 2 else []

    def release(self, owner: str, partitions: Sequence[int] | None = None) -> None:  # noqa: ARG002
        return None

    def position(self, partition: int) -> int:
        assert partition == 0
        with self.lock:
            return self.stored

    def partition_states(self, partitions: int) -> list[PartitionState]:  # noqa: ARG002
        return [PartitionState(0, self.position(0), "w", 0)]


class Store:
    """Applies a Positioned command as the store's handler does: once, in order."""

    def __init__(self, leases: ScriptedLeases) -> None:
        self.leases = leases
        self.applied: list[int] = []

    def submit(self, command: Positioned) -> asyncio.Future[BatchOutcome]:
        future: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
        future.set_result(self.apply(command))
        return future

    def apply(self, command: Positioned) -> BatchOutcome:
        with self.leases.lock:
            if self.leases.stored >= command.seq:
                return BatchOutcome(REDELIVERED)
            if self.leases.stored != command.after:
                return BatchOutcome(OUT_OF_ORDER)
            self.leases.stored = command.seq
            self.applied.append(command.seq)
            return BatchOutcome("applied")


class Metrics:
    def log_backlog(self, backlog: Backlog, age_s: float) -> None: ...

    def log_backlog_full(self) -> None: ...

    def log_applied(self, batches: int, redelivered: int) -> None: ...

    def log_partitions_held(self, count: int) -> None: ...


def test_a_partition_lost_and_regained_is_never_read_twice_at_once_and_all_is_applied() -> None:
    batch_log, leases = SwallowingLog(), ScriptedLeases()
    store = Store(leases)
    worker = PartitionWorker(
        lambda: batch_log,
        leases,
        submit=store.submit,
        inputs=lambda _name: None,
        metrics=Metrics(),
        options=WorkerOptions(owner="w", partitions=1, lease_s=0.06, wait_s=0.05),
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while len(store.applied) < len(RECORDS) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        started = time.monotonic()
        worker.stop()
        stopped_in = time.monotonic() - started
    assert stopped_in < 2.0
    assert leases.rounds > 10  # the partition was lost and regained again and again
    assert batch_log.most_in_flight == 1
    assert store.applied == [r.seq for r in RECORDS]
