"""The group writer on a store that syncs after the fact: a submitter is answered only once
its group is durable, the next group runs while the disk syncs, and a failed sync is the
submitters' answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from kindred.domain.errors import StoreUnavailable
from kindred.services.writes.commands import Command
from kindred.services.writes.group_writer import GroupWriter

WAIT = 5.0


@dataclass(frozen=True)
class Echo(Command[int]):
    value: int


class FakeDisk:
    """A DeferredSync whose sync blocks until the test lets it finish."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.release = threading.Event()
        self.release.set()
        self.syncing = threading.Event()
        self.syncs = 0
        self.fail: Exception | None = None
        self.deferred_groups: list[bool] = []

    @contextmanager
    def deferred_sync(self, *, copy_meanwhile: bool = False) -> Iterator[None]:
        # The group writer's checkpoints wait for its own syncs (CommitSync.committed).
        assert not copy_meanwhile
        self.local.deferred = True
        try:
            yield
        finally:
            self.local.deferred = False

    def sync(self) -> None:
        self.syncing.set()
        assert self.release.wait(WAIT)
        self.syncs += 1
        if self.fail is not None:
            raise self.fail


def _writer(disk: FakeDisk | None, processed: list[list[int]]) -> GroupWriter:
    def process(commands: Sequence[Command[Any]]) -> list[int]:
        if disk is not None:
            disk.deferred_groups.append(getattr(disk.local, "deferred", False))
        values = [c.value for c in commands if isinstance(c, Echo)]
        processed.append(values)
        return [v * 10 for v in values]

    writer = GroupWriter(process, durability=disk)
    writer.start()
    return writer


def test_an_answer_waits_for_the_sync_of_its_group() -> None:
    disk, processed = FakeDisk(), list[list[int]]()
    disk.release.clear()
    writer = _writer(disk, processed)
    future: Future[int] = writer.submit(Echo(1))
    assert disk.syncing.wait(WAIT)
    assert processed == [[1]]  # committed ...
    assert not future.done()  # ... but not answered before it is durable
    disk.release.set()
    assert future.result(WAIT) == 10
    assert disk.deferred_groups == [True]  # the group's commit was left to the sync
    writer.stop()


def test_the_next_group_runs_while_the_disk_syncs_and_one_sync_covers_many() -> None:
    disk, processed = FakeDisk(), list[list[int]]()
    disk.release.clear()
    writer = _writer(disk, processed)
    first = writer.submit(Echo(1))
    assert disk.syncing.wait(WAIT)
    later = [writer.submit(Echo(n)) for n in (2, 3, 4)]
    deadline = threading.Event()
    for _ in range(100):  # the writer takes them while the first sync still runs
        if sum(len(group) for group in processed) == 4:
            break
        deadline.wait(0.02)
    assert sum(len(group) for group in processed) == 4
    assert not any(f.done() for f in [first, *later])
    disk.release.set()
    assert [f.result(WAIT) for f in [first, *later]] == [10, 20, 30, 40]
    writer.stop()
    assert disk.syncs <= 2  # the first group's sync, then one for all three


def test_a_failed_sync_is_the_answer_of_every_group_it_covered() -> None:
    disk, processed = FakeDisk(), list[list[int]]()
    disk.fail = StoreUnavailable("store unavailable: the disk failed a sync")
    writer = _writer(disk, processed)
    future = writer.submit(Echo(1))
    with pytest.raises(StoreUnavailable, match="failed a sync"):
        future.result(WAIT)
    disk.fail = None
    assert writer.submit(Echo(2)).result(WAIT) == 20  # the writer goes on
    writer.stop()


def test_stop_answers_the_last_group_after_its_sync() -> None:
    disk, processed = FakeDisk(), list[list[int]]()
    writer = _writer(disk, processed)
    futures = [writer.submit(Echo(n)) for n in range(20)]
    writer.stop()
    assert [f.result(0) for f in futures] == [n * 10 for n in range(20)]
    assert disk.syncs >= 1


def test_without_a_deferred_sync_a_group_is_answered_after_its_commit() -> None:
    processed: list[list[int]] = []
    writer = _writer(None, processed)
    assert writer.submit(Echo(3)).result(WAIT) == 30
    writer.stop()


def test_a_sync_that_breaks_is_a_503_not_a_hang() -> None:
    disk, processed = FakeDisk(), list[list[int]]()
    disk.fail = RuntimeError("unexpected")
    writer = _writer(disk, processed)
    with pytest.raises(StoreUnavailable, match="the sync failed"):
        writer.submit(Echo(1)).result(WAIT)
    disk.fail = None
    assert writer.submit(Echo(2)).result(WAIT) == 20
    writer.stop()
