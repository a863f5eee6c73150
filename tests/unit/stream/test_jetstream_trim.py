"""The batch log's trim over a JetStream whose answers a fake gives: it purges below the
first record some partition still needs, and not at all when the stream's leader changed
while it asked (the answers may then come from a node that has not stored everything the
old leader acknowledged)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from nats.js.errors import NotFoundError

from kindred.stream.jetstream import JetStreamLog, LogOptions


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


def trimmed(fake: FakeJetStream, positions: dict[int, int]) -> list[int]:
    log = JetStreamLog(
        LogOptions(
            servers=("nats://127.0.0.1:1",),
            stream="batches",
            subject_prefix="kindred.batches",
            partitions=2,
        )
    )
    log._js = fake  # type: ignore[assignment]
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
