"""The batch log as one JetStream stream whose subjects are its partitions.

Partition p is subject `<prefix>.<p>`; a record's seq is the stream's sequence number
(increasing within a partition, with gaps where other partitions' messages sit). Reading is
an ephemeral pull consumer per partition, filtered to its subject, starting where the
caller asks and acknowledging nothing: where a partition has been applied to is the
store's business (ports.batch_log), so a consumer lost with a node is simply made again
from there. An append waits for the stream's acknowledgement, which in a cluster means a
majority of the stream's replicas stored it; a failed append is sent again under the same
`Nats-Msg-Id` (the stream drops the copy within its duplicate window) until its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from kindred.domain.errors import OutcomeUnknown, StoreUnavailable
from kindred.ports.batch_log import Backlog, LogRecord

__all__ = ["JetStreamLog", "LogOptions"]

_FAILURES = (NatsError, OSError, asyncio.TimeoutError)
# Publish answers that mean the record was not stored: nobody took the request (no stream
# leader), or the stream answered with an error.
_REFUSED = (NoRespondersError, NoStreamResponseError, APIError)
# Empty reads in a row after which a partition's consumer is made again.
_IDLE_READS = 5


@dataclass(frozen=True)
class LogOptions:
    servers: tuple[str, ...]
    stream: str
    subject_prefix: str
    partitions: int
    replicas: int = 1
    # Hard limits of the stream itself (the API's backlog limit refuses well before).
    max_bytes: int = -1
    max_age_s: float = 0.0
    duplicate_window_s: float = 120.0
    # How long an append may keep trying (a leader election takes a few seconds).
    append_deadline_s: float = 10.0
    request_timeout_s: float = 2.0


@dataclass
class _Reader:
    """A partition's pull consumer: the stream seq its next record follows, and how many
    messages it has delivered (its consumer sequence: one more each, with no gaps)."""

    sub: JetStreamContext.PullSubscription
    after: int
    delivered: int = 0
    idle: int = 0  # empty reads in a row


class JetStreamLog:
    def __init__(self, options: LogOptions) -> None:
        self._o = options
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()
        self._readers: dict[int, _Reader] = {}
        self._reading: set[int] = set()  # partitions with a read under way

    @property
    def partitions(self) -> int:
        return self._o.partitions

    def subject(self, partition: int) -> str:
        return f"{self._o.subject_prefix}.{partition}"

    async def append(self, partition: int, data: bytes, msg_id: str) -> int:
        """The record's stream seq once the stream has stored it. Tried again (with the
        same message id: the stream keeps one) until `append_deadline_s`; then
        StoreUnavailable when no attempt reached the stream, OutcomeUnknown when one may
        have (its answer lost): it may be stored, and applied."""
        deadline = time.monotonic() + self._o.append_deadline_s
        maybe_stored = False
        while True:
            try:
                js = await self._jetstream()
            except _FAILURES as exc:
                failure: BaseException = exc  # not connected: nothing was sent
            else:
                try:
                    ack = await js.publish(
                        self.subject(partition),
                        data,
                        timeout=self._o.request_timeout_s,
                        stream=self._o.stream,
                        headers={"Nats-Msg-Id": msg_id},
                    )
                    return int(ack.seq)
                except _REFUSED as exc:
                    failure = exc  # no stream leader, or the stream refused it: not stored
                except _FAILURES as exc:
                    # Sent, and no answer: a client that reconnects also sends what it
                    # held meanwhile, so the stream may store it even later.
                    failure, maybe_stored = exc, True
            if time.monotonic() >= deadline:
                if maybe_stored:
                    raise OutcomeUnknown(
                        f"the batch log did not confirm the batch in time ({failure!r}):"
                        " it may be stored; send it again unchanged"
                    ) from failure
                raise StoreUnavailable(f"batch log unavailable: {failure!r}") from failure
            await asyncio.sleep(0.2)

    async def read(
        self, partition: int, after_seq: int, limit: int, wait_s: float
    ) -> list[LogRecord]:
        # Two reads of one partition at once would share its consumer, each returning part
        # of what it delivers in order: the caller would see gaps it cannot tell from none.
        if partition in self._reading:
            raise RuntimeError(f"partition {partition} is already being read")
        self._reading.add(partition)
        try:
            return await self._read(partition, after_seq, limit, wait_s)
        finally:
            self._reading.discard(partition)

    async def _read(
        self, partition: int, after_seq: int, limit: int, wait_s: float
    ) -> list[LogRecord]:
        reader = await self._reader(partition, after_seq)
        try:
            messages = await reader.sub.fetch(limit, timeout=wait_s)
        except (TimeoutError, NatsTimeout):
            reader.idle += 1
            if reader.idle >= _IDLE_READS:
                # Nothing for a while: the consumer may have gone with a node that died,
                # and a pull nobody answers looks like an empty partition. A new one.
                await self._drop_reader(partition)
            return []
        except _FAILURES:
            await self._drop_reader(partition)
            raise
        reader.idle = 0
        records = []
        for message in messages:
            sequence = message.metadata.sequence
            if sequence.consumer != reader.delivered + 1:
                # A message this consumer delivered was lost on the way (a fetch that
                # timed out as it arrived): read again from the last record returned.
                await self._drop_reader(partition)
                break
            reader.delivered = sequence.consumer
            reader.after = sequence.stream
            records.append(LogRecord(sequence.stream, message.data))
        return await self._checked(partition, after_seq, records)

    async def _checked(
        self, partition: int, after_seq: int, records: list[LogRecord]
    ) -> list[LogRecord]:
        """The records as the stream's leader holds them: each one the partition's next
        after the one before it. A consumer reads the copy of the stream on its own node,
        and a node that was killed can come back with a hole in that copy (nats-server
        2.9: records it had acknowledged missing, later ones there): a consumer placed on
        it passes over the hole, and the record would never be applied. At the first
        record that is not the leader's next, the page ends (with the leader's record
        instead when the consumer passed it over) and the consumer is made again. The
        requests for a page go out together: one round trip a page. A leader that was
        itself killed may hold the same hole; this does not see that."""
        if not records:
            return records
        js = await self._jetstream()
        subject = self.subject(partition)
        befores = [after_seq, *(r.seq for r in records[:-1])]
        leaders = await asyncio.gather(*(self._next_record(js, subject, s) for s in befores))
        for index, (record, leader) in enumerate(zip(records, leaders, strict=True)):
            if leader is not None and leader.seq == record.seq:
                continue
            await self._drop_reader(partition)
            kept = records[:index]
            if leader is not None and leader.seq < record.seq:
                kept.append(leader)  # passed over: the leader's copy
            # Otherwise the leader lacks it (a new leader still catching up): read again.
            return kept
        return records

    async def _next_record(
        self, js: JetStreamContext, subject: str, after: int
    ) -> LogRecord | None:
        """The leader's first record of `subject` after stream seq `after` (None: none)."""
        try:
            found = await js.get_msg(self._o.stream, seq=after + 1, next=True, subject=subject)
        except NotFoundError:
            return None
        if found.seq is None or found.data is None:
            return None
        return LogRecord(found.seq, found.data)

    async def trim(self, positions: Mapping[int, int]) -> None:
        """One purge of the whole stream below the first record some partition still
        needs. Never a purge of one subject: nats-server 2.9 replays a subject's purge as
        a purge of every subject when a node recovers, and moves other subjects'
        consumers past it (nats-server#4196, #3838), either of which loses records."""
        js = await self._jetstream()
        # Read first: a record appended after it is above it, so it is kept.
        before = await js.stream_info(self._o.stream)
        keep_from = before.state.last_seq + 1
        for partition in range(self._o.partitions):
            after = positions.get(partition, 0)
            try:
                first = await js.get_msg(
                    self._o.stream, seq=after + 1, next=True, subject=self.subject(partition)
                )
            except NotFoundError:
                continue  # nothing of this partition waits
            if first.seq is not None:
                keep_from = min(keep_from, first.seq)
        if _leader(before) != _leader(await js.stream_info(self._o.stream)):
            # The answers above may come from two nodes: a new leader that has not yet
            # stored what the old one had acknowledged answers "not found" for records
            # still waiting, which this purge would then remove. Trim next round instead.
            return
        await js.purge_stream(self._o.stream, seq=keep_from)

    async def backlog(self) -> Backlog:
        js = await self._jetstream()
        info = await js.stream_info(self._o.stream, subjects_filter=f"{self._o.subject_prefix}.*")
        state = info.state
        oldest: int | None = None
        if state.messages:
            try:
                first = await js.get_msg(self._o.stream, seq=state.first_seq, next=True)
                if first.time is not None:
                    oldest = int(first.time.timestamp() * 1000)
            except NotFoundError:
                oldest = None
        per_partition = {
            int(subject.rsplit(".", 1)[1]): count
            for subject, count in (state.subjects or {}).items()
        }
        return Backlog(state.bytes, state.messages, oldest, per_partition)

    async def close(self) -> None:
        # The consumers are not deleted one by one (a request each, which waits its
        # timeout when their node is gone): they go by their inactivity threshold.
        self._readers.clear()
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(client.close(), self._o.request_timeout_s)

    async def _reader(self, partition: int, after_seq: int) -> _Reader:
        held = self._readers.get(partition)
        if held is not None and held.after == after_seq:
            return held
        await self._drop_reader(partition)
        js = await self._jetstream()
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after_seq + 1,
            filter_subject=self.subject(partition),
            # A worker that dies leaves its consumers behind only this long.
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        sub = await js.pull_subscribe(
            self.subject(partition), durable=None, stream=self._o.stream, config=config
        )
        reader = _Reader(sub, after_seq)
        self._readers[partition] = reader
        return reader

    async def _drop_reader(self, partition: int) -> None:
        held = self._readers.pop(partition, None)
        if held is None:
            return
        # When this fails the consumer goes by its inactivity threshold.
        with contextlib.suppress(*_FAILURES):
            await held.sub.unsubscribe()

    async def _jetstream(self) -> JetStreamContext:
        if self._js is not None:
            return self._js
        async with self._connecting:
            if self._js is None:
                self._client = await nats.connect(
                    servers=list(self._o.servers),
                    connect_timeout=self._o.request_timeout_s,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.2,
                )
                js = self._client.jetstream(timeout=self._o.request_timeout_s)
                await self._ensure_stream(js)
                self._js = js
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self._o.stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self._o.stream,
                    subjects=[f"{self._o.subject_prefix}.*"],
                    storage=StorageType.FILE,
                    num_replicas=self._o.replicas,
                    max_bytes=self._o.max_bytes,
                    max_age=self._o.max_age_s or None,
                    duplicate_window=self._o.duplicate_window_s,
                )
            )


def _leader(info: StreamInfo) -> str | None:
    """The node that answered for a stream (None on a single server)."""
    return info.cluster.leader if info.cluster is not None else None
