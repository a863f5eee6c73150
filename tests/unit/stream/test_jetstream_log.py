"""The batch log over a JetStream whose answers a fake gives. The trim purges below the
first record some partition still needs, and not at all when the stream's leader changed
while it asked (the answers may then come from a node that has not stored everything the
old leader acknowledged). An append that never got its answer says whether the record may
have been stored: refused (503) only when no attempt can have reached the stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from kindred.domain.errors import OutcomeUnknown, StoreUnavailable
from kindred.stream.jetstream import JetStreamLog, LogOptions, _Reader


@dataclass
class FakeJetStream:
    """Records by stream seq and subject; `leaders` answers each stream_info in turn."""

    records: dict[int, str]
    leaders: list[str | None]
    purged_below: list[int] = field(default_factory=list)

    async def stream_info(self, _stream: str, **_: Any) -> Any:
        leader = self.leaders.pop(0) if len(self.leaders) > 1 else self.leaders[0]
        cluster = None if leader is None else SimpleNamespace(leader=leader)
        return SimpleNamespace(state=SimpleNamespace(last_seq=max(self.records)), cluster=cluster)

    async def get_msg(self, _stream: str, seq: int, next: bool, subject: str) -> Any:
        assert next  # the first record at or after seq
        for at in sorted(self.records):
            if at >= seq and self.records[at] == subject:
                return SimpleNamespace(seq=at)
        raise NotFoundError

    async def purge_stream(self, _stream: str, seq: int) -> None:
        self.purged_below.append(seq)


def _log(js: object, *, deadline_s: float = 10.0) -> JetStreamLog:
    log = JetStreamLog(
        LogOptions(
            servers=("nats://127.0.0.1:1",),
            stream="batches",
            subject_prefix="kindred.batches",
            partitions=2,
            append_deadline_s=deadline_s,
        )
    )
    log._js = js  # type: ignore[assignment]
    return log


def trimmed(fake: FakeJetStream, positions: dict[int, int]) -> list[int]:
    log = _log(fake)
    asyncio.run(log.trim(positions))
    return fake.purged_below


# Partition 0 has applied up to seq 3; seq 4 (partition 1) and 5 (partition 0) wait.
RECORDS = {
    1: "kindred.batches.0",
    2: "kindred.batches.1",
    3: "kindred.batches.0",
    4: "kindred.batches.1",
    5: "kindred.batches.0",
}


def test_purges_below_the_first_record_a_partition_still_needs() -> None:
    assert trimmed(FakeJetStream(dict(RECORDS), ["a"]), {0: 3, 1: 2}) == [4]
    assert trimmed(FakeJetStream(dict(RECORDS), [None]), {0: 5, 1: 4}) == [6]


def test_no_purge_when_the_leader_changed_while_it_asked() -> None:
    assert trimmed(FakeJetStream(dict(RECORDS), ["a", "b"]), {0: 3, 1: 2}) == []


@dataclass
class FakePublishes:
    """A publish answering each outcome in turn (the last one for ever after): an
    exception raised, or the stream seq acknowledged."""

    outcomes: list[BaseException | int]
    tried: int = 0

    async def publish(self, *_: Any, **__: Any) -> Any:
        outcome = self.outcomes[min(self.tried, len(self.outcomes) - 1)]
        self.tried += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return SimpleNamespace(seq=outcome)


def appended(outcomes: list[BaseException | int]) -> int:
    return asyncio.run(_log(FakePublishes(outcomes), deadline_s=0.3).append(0, b"{}", "id-1"))


def test_an_append_acknowledged_after_a_lost_answer_is_stored() -> None:
    assert appended([TimeoutError(), NoStreamResponseError(), 7]) == 7


def test_an_append_no_stream_took_is_refused_as_not_stored() -> None:
    with pytest.raises(StoreUnavailable) as refused:
        appended([NoStreamResponseError(), APIError(code=503, description="no leader")])
    assert not isinstance(refused.value, OutcomeUnknown)


def test_an_append_whose_answer_was_lost_may_be_stored() -> None:
    with pytest.raises(OutcomeUnknown, match="may be stored"):
        appended([TimeoutError(), NoStreamResponseError()])


def test_an_append_that_never_connected_is_refused_as_not_stored() -> None:
    log = _log(None, deadline_s=0.3)
    log._js = None

    async def unreachable() -> Any:
        raise OSError("connection refused")

    log._jetstream = unreachable  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable) as refused:
        asyncio.run(log.append(0, b"{}", "id-1"))
    assert not isinstance(refused.value, OutcomeUnknown)


class FakeConsumer:
    """A consumer delivering the given stream seqs, numbered 1, 2, ... as it delivers."""

    def __init__(self, seqs: list[int]) -> None:
        self._seqs = seqs
        self.unsubscribed = False

    async def fetch(self, limit: int, timeout: float) -> list[Any]:
        del timeout
        return [
            SimpleNamespace(
                metadata=SimpleNamespace(sequence=SimpleNamespace(consumer=n, stream=seq)),
                data=f"copy {seq}".encode(),
            )
            for n, seq in enumerate(self._seqs[:limit], start=1)
        ]

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


@dataclass
class FakeLeader:
    """The stream's leader: its records of partition 0, by stream seq."""

    seqs: list[int]

    async def get_msg(self, _stream: str, seq: int, next: bool, subject: str) -> Any:
        assert next
        assert subject == "kindred.batches.0"
        for at in self.seqs:
            if at >= seq:
                return SimpleNamespace(seq=at, data=f"leader {at}".encode())
        raise NotFoundError


def read(leader: list[int], delivered: list[int], after: int = 10) -> tuple[list[Any], bool]:
    """A page read after `after` from a consumer delivering `delivered`: (seq, data) of each
    record, and whether the consumer was dropped (to be made again)."""
    log = _log(FakeLeader(leader))
    consumer = FakeConsumer(delivered)
    log._readers[0] = _Reader(consumer, after)  # type: ignore[arg-type]
    records = asyncio.run(log.read(0, after, 100, 1.0))
    return [(r.seq, r.data) for r in records], consumer.unsubscribed


def test_a_page_the_leader_holds_as_delivered_is_read_as_it_is() -> None:
    assert read([12, 15, 19], [12, 15, 19]) == (
        [(12, b"copy 12"), (15, b"copy 15"), (19, b"copy 19")],
        False,
    )
    assert read([12], []) == ([], False)


def test_a_record_the_consumer_passed_over_is_read_from_the_leader() -> None:
    # The consumer's node lost 15 when it was killed; the leader has it.
    assert read([12, 15, 19], [12, 19]) == ([(12, b"copy 12"), (15, b"leader 15")], True)
    assert read([15, 19], [19]) == ([(15, b"leader 15")], True)


def test_a_record_the_leader_does_not_hold_yet_is_read_again_later() -> None:
    # A new leader still catching up: nothing past what it holds is taken.
    assert read([12], [12, 15]) == ([(12, b"copy 12")], True)
    assert read([], [12]) == ([], True)
