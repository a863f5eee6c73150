"""Group commit: one writer thread turns many concurrent submissions into few transactions.

Callers submit work and wait: coroutines on an event loop get an asyncio future (settled
for a whole group with one thread-safe call, not one wakeup per batch); plain threads (the
CSV importer) get a concurrent future. The writer takes everything queued, up to
`max_group`, and runs it as one group. A future resolves only after its group committed,
so a 202 is never sent before the batch is durable.

On a store that can sync after the fact (`DeferredSync`: SQLite), a group's commit is not
waited on to reach the disk: the writer hands the group to a syncer thread and goes on
with the next one, and the syncer settles the groups handed over once one `sync()` has
made them all durable. The disk's fsync then overlaps the next group's work instead of
following it, and each fsync covers every group committed while the last one ran.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar, cast

from kindred.domain.errors import StoreUnavailable
from kindred.ports import DeferredSync
from kindred.services.writes.commands import Command

__all__ = ["GroupWriter", "WriterStopped"]

log = logging.getLogger("kindred.writer")

R = TypeVar("R")

_STOP = object()

# A group committed and what to answer its submitters, waiting for its sync.
_Committed = tuple[list[tuple[Command[Any], object]], Sequence[Any] | None, BaseException | None]


class WriterStopped(RuntimeError):
    """The writer is shutting down and takes no more work."""


class GroupWriter:
    def __init__(
        self,
        process: Callable[[Sequence[Command[Any]]], Sequence[Any]],
        *,
        max_group: int = 256,
        durability: DeferredSync | None = None,
    ) -> None:
        """`process` answers each item of a group: its result, or the exception its
        submitter gets (a whole group failing raises instead). `durability`: the store,
        when its commits can be synced after the fact."""
        self._process = process
        self._max_group = max_group
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kindred-writer", daemon=True)
        self._stopping = False
        self._durability = durability
        # Groups committed, waiting for the sync that makes them durable (then answered).
        self._unsynced: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._syncer = threading.Thread(target=self._sync_loop, name="kindred-syncer", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self._durability is not None:
            self._syncer.start()

    def submit(self, command: Command[R]) -> Future[R]:
        """From any thread: a future that resolves once `command` is committed, to its
        result or its refusal."""
        self._check_open()
        future: Future[R] = Future()
        self._queue.put((command, future))
        return future

    def submit_async(self, command: Command[R]) -> asyncio.Future[R]:
        """From a coroutine: an asyncio future of the running loop."""
        self._check_open()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put((command, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything already submitted, then stop."""
        self._stopping = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._syncer.is_alive():  # the writer handed it the stop after its last group
            self._syncer.join(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def _check_open(self) -> None:
        if self._stopping:
            raise WriterStopped("the writer is stopping")

    def _run(self) -> None:
        while True:
            group, stop = _take(self._queue, self._max_group)
            if group:
                self._run_group(group)  # type: ignore[arg-type]
            if stop:
                self._unsynced.put(_STOP)
                return

    def _run_group(self, group: list[tuple[Command[Any], object]]) -> None:
        try:
            with self._deferring():
                results: Sequence[Any] | None = self._process([item for item, _ in group])
            error: BaseException | None = None
        except BaseException as exc:  # the waiters must learn of it, whatever it is
            log.exception("writer group failed")
            results, error = None, exc
        if self._durability is None:
            _settle(group, results, error)
        else:
            self._unsynced.put((group, results, error))

    def _deferring(self) -> AbstractContextManager[None]:
        return nullcontext() if self._durability is None else self._durability.deferred_sync()

    def _sync_loop(self) -> None:
        """Take every group committed so far, make them durable with one sync, answer them."""
        assert self._durability is not None
        while True:
            committed, stop = _take(self._unsynced, limit=None)
            if committed:
                failure: BaseException | None = None
                try:
                    self._durability.sync()
                except StoreUnavailable as exc:
                    log.error("sync failed: %s", exc)
                    failure = exc  # committed, but not known durable: the sender retries
                except Exception as exc:  # whatever it is, the waiters must not hang
                    log.exception("sync failed")
                    failure = StoreUnavailable(f"store unavailable: the sync failed ({exc})")
                for item in committed:
                    group, results, error = cast(_Committed, item)
                    _settle(group, None if failure else results, error or failure)
            if stop:
                return


def _take(source: queue.SimpleQueue[object], limit: int | None) -> tuple[list[object], bool]:
    """What is queued (waiting for the first item; at most `limit`) and whether the stop
    came with it."""
    first = source.get()
    if first is _STOP:
        return [], True
    taken = [first]
    while limit is None or len(taken) < limit:
        try:
            more = source.get_nowait()
        except queue.Empty:
            break
        if more is _STOP:
            return taken, True
        taken.append(more)
    return taken, False


def _settle(
    group: list[tuple[Command[Any], object]],
    results: Sequence[Any] | None,
    error: BaseException | None,
) -> None:
    """Each submitter told its outcome: a concurrent future at once, the asyncio futures of
    each event loop with one thread-safe call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
    for index, (_, future) in enumerate(group):
        outcome: object = error if results is None else results[index]
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        else:
            _settle_concurrent(future, outcome)  # type: ignore[arg-type]
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_async, pairs)
        except RuntimeError:
            log.warning("event loop closed before %d results were delivered", len(pairs))


def _settle_concurrent(future: Future[object], outcome: object) -> None:
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_async(pairs: list[tuple[asyncio.Future[Any], object]]) -> None:
    for future, outcome in pairs:
        if future.done():  # the caller went away (client disconnected)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
