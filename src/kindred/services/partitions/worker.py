"""The worker role's side of the batch log: the partitions this process holds, each read
in order and applied through the group writer, exactly once.

One thread runs an event loop of its own. Every lease round (a third of the lease) asks
the store which partitions this process holds (`PartitionLeases.lease`: its fair share,
a dead worker's taken over once its lease ran out) and starts or stops one reader task
per partition. A reader starts from the partition's stored position, reads a page of
records, turns each into a `Positioned` command and waits for all of them to commit; the
store moves the position in the same transaction as each batch's change, so whatever
stops a reader (a crash, the store gone, the lease lost to another worker that reads the
partition meanwhile) it starts over from the stored position and nothing is applied
twice. The worker holding partition 0 trims what every partition has applied from the
log now and then.

A partition is read by one reader task at a time in a process: a reader being stopped
keeps its partition until it has ended. Two readers of one partition would share its
consumer and each apply part of what it delivers, and the part read by the one behind
would then count as applied already: lost. Stopping a reader does not rely on the
cancellation reaching it either: Python 3.11's `asyncio.wait_for` (under the NATS
client's fetch) drops a cancellation that arrives as its message does, so a reader also
looks at whether it has been asked to stop (`Task.cancelling`) at every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from kindred.domain.errors import InvalidBatch
from kindred.domain.tenancy import InputDef
from kindred.ports.batch_log import BatchLog, LogMetrics, LogRecord, PartitionLeases
from kindred.services.ingest.positioned import OUT_OF_ORDER, REDELIVERED, Positioned
from kindred.services.writes.commands import Accepted, BatchOutcome, Refused
from kindred.wire.envelope import decode_envelope
from kindred.wire.errors import as_invalid_batch
from kindred.wire.observe import observe

__all__ = ["PartitionWorker", "WorkerOptions", "command_of"]

log = logging.getLogger("kindred.partitions")

Submit = Callable[[Positioned], "asyncio.Future[BatchOutcome]"]


@dataclass(frozen=True)
class WorkerOptions:
    owner: str
    partitions: int
    lease_s: float = 6.0
    page: int = 256
    # How long a read waits for a record before the reader looks at its lease again.
    wait_s: float = 1.0
    # How often applied records are trimmed from the log.
    trim_every_s: float = 2.0
    # After a failure (store or log gone), the wait before reading again.
    backoff_s: float = 1.0


class PartitionWorker:
    def __init__(
        self,
        make_log: Callable[[], BatchLog],
        leases: PartitionLeases,
        *,
        submit: Submit,
        inputs: Callable[[str], InputDef | None],
        metrics: LogMetrics,
        options: WorkerOptions,
    ) -> None:
        self._make_log = make_log
        self._leases = leases
        self._submit = submit
        self._inputs = inputs
        self._metrics = metrics
        self._o = options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._readers: dict[int, asyncio.Task[None]] = {}
        # Readers asked to stop that have not ended yet: their partitions wait for them.
        self._stopping: dict[int, asyncio.Task[None]] = {}

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="kindred-partitions", daemon=True
        )
        self._thread.start()
        ready.wait()

    def stop(self, timeout: float = 15.0) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def held(self) -> list[int]:
        return sorted(self._readers)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop, self._stopped = loop, asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        assert self._stopped is not None
        batch_log = self._make_log()
        trimmer = asyncio.create_task(self._trim_now_and_then(batch_log), name="log-trim")
        try:
            while not self._stopped.is_set():
                await self._lease_round(batch_log)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), self._o.lease_s / 3)
        finally:
            trimmer.cancel()
            await asyncio.gather(trimmer, return_exceptions=True)
            await self._stop_readers(list(self._readers))
            await _quietly(asyncio.to_thread(self._leases.release, self._o.owner))
            await batch_log.close()

    async def _lease_round(self, batch_log: BatchLog) -> None:
        lease_ms = int(self._o.lease_s * 1000)
        try:
            held = await asyncio.to_thread(
                self._leases.lease, self._o.owner, self._o.partitions, lease_ms
            )
        except Exception as exc:
            # The store is away: keep reading what we hold (every apply fails too until it
            # is back, and a position read again then decides what is applied).
            log.warning("partition lease round failed: %s", exc)
            return
        await self._stop_readers([p for p in self._readers if p not in held])
        for partition in held:
            if partition in self._stopping:
                continue  # its last reader has not ended yet: next round
            if partition not in self._readers or self._readers[partition].done():
                self._readers[partition] = asyncio.create_task(
                    self._read_partition(batch_log, partition), name=f"partition-{partition}"
                )
        self._metrics.log_partitions_held(len(held))

    async def _trim_now_and_then(self, batch_log: BatchLog) -> None:
        """The worker holding partition 0 drops the records every partition has applied
        (the positions as committed), every `trim_every_s`."""
        while True:
            await asyncio.sleep(self._o.trim_every_s)
            if 0 not in self._readers:
                continue
            try:
                states = await asyncio.to_thread(self._leases.partition_states, self._o.partitions)
                await batch_log.trim({s.partition: s.position for s in states})
            except Exception as exc:
                log.warning("trimming the batch log failed: %r", exc)

    async def _stop_readers(self, partitions: list[int]) -> None:
        """Each reader asked to stop, and awaited a while (it ends at its next step at the
        latest, and a read waits `wait_s`); one that has not ended by then keeps its
        partition in `_stopping` until it has."""
        for partition in partitions:
            task = self._readers.pop(partition)
            task.cancel()
            self._stopping[partition] = task
        tasks = [self._stopping[p] for p in partitions]
        if tasks:
            await asyncio.wait(tasks, timeout=self._o.wait_s * 3)
        for partition, task in list(self._stopping.items()):
            if task.done():
                del self._stopping[partition]
                if not task.cancelled() and task.exception() is not None:
                    log.warning("partition %d: reader ended: %r", partition, task.exception())

    async def _read_partition(self, batch_log: BatchLog, partition: int) -> None:
        reader = _PartitionReader(self, batch_log, partition)
        while True:
            _stop_if_asked()
            try:
                await reader.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("partition %d: %r; reading again from its position", partition, exc)
                reader.position = None
                await asyncio.sleep(self._o.backoff_s)


class _PartitionReader:
    def __init__(self, worker: PartitionWorker, batch_log: BatchLog, partition: int) -> None:
        self._w = worker
        self._log = batch_log
        self._partition = partition
        self.position: int | None = None

    async def step(self) -> None:
        w, partition = self._w, self._partition
        if self.position is None:
            self.position = await asyncio.to_thread(w._leases.position, partition)
        records = await self._log.read(partition, self.position, w._o.page, w._o.wait_s)
        _stop_if_asked()  # records read as the reader was stopped are read again by the next
        if records:
            await self._apply(records)
            self.position = records[-1].seq

    async def _apply(self, records: list[LogRecord]) -> None:
        w = self._w
        befores = [self.position or 0, *(r.seq for r in records[:-1])]
        commands = [
            Positioned(self._partition, r.seq, after, command_of(r.data, w._inputs))
            for r, after in zip(records, befores, strict=True)
        ]
        # Submitted in order, so the group writer applies them in order.
        futures = [w._submit(c) for c in commands]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            # A Positioned command refuses nothing: an error means it may not be stored
            # (the store away, the group failed); the partition is read again from the
            # position the store holds, which says what was.
            if isinstance(result, BaseException):
                raise result
            if isinstance(result, BatchOutcome) and result.status == OUT_OF_ORDER:
                raise RuntimeError("a record before this page is not applied yet")
        redelivered = sum(
            1 for r in results if isinstance(r, BatchOutcome) and r.status == REDELIVERED
        )
        w._metrics.log_applied(len(records), redelivered)


def command_of(data: bytes, inputs: Callable[[str], InputDef | None]) -> Accepted | Refused | None:
    """The command a record makes: the batch decoded again as the API decoded it (same
    input, same receive time); None when its input is gone from the config or the record
    is no envelope."""
    try:
        envelope = decode_envelope(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.error("a record of the batch log is no envelope; skipped")
        return None
    if envelope.kind != "accepted":
        reason = envelope.reason or ""
        return Refused(envelope.input, envelope.received_ms, envelope.kind, reason, envelope.body)
    source = inputs(envelope.input)
    if source is None:
        log.error("batch of unknown input %r in the batch log; skipped", envelope.input)
        return None
    try:
        obs = observe(
            envelope.body,
            source,
            envelope.received_ms,
            envelope.client_ip,
            historical=envelope.historical,
        )
    except (msgspec.DecodeError, InvalidBatch) as exc:
        reason = str(as_invalid_batch(exc))
        return Refused(envelope.input, envelope.received_ms, "rejected", reason, envelope.body)
    return Accepted(
        source, obs, envelope.body, client_ip=envelope.client_ip, historical=envelope.historical
    )


def _stop_if_asked() -> None:
    """Raises CancelledError when the running task has been cancelled, though the
    cancellation itself was swallowed on the way (see the module's docstring)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _quietly(call: asyncio.Future[None] | object) -> None:
    try:
        await call  # type: ignore[misc]
    except Exception as exc:
        log.warning("releasing partitions failed: %s", exc)
