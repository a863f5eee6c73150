"""Group commit: one writer thread turns many concurrent submissions into few transactions.

Callers submit work and wait: coroutines on an event loop get an asyncio future (settled
for a whole group with one thread-safe call, not one wakeup per batch); plain threads (the
CSV importer) get a concurrent future. The writer takes everything queued, up to
`max_group`, and runs it as one group. A future resolves only after its group committed,
so a 202 is never sent before the batch is durable.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from kindred.services.writes.commands import Command

__all__ = ["GroupWriter", "WriterStopped"]

log = logging.getLogger("kindred.writer")

R = TypeVar("R")

_STOP = object()


class WriterStopped(RuntimeError):
    """The writer is shutting down and takes no more work."""


class GroupWriter:
    def __init__(
        self,
        process: Callable[[Sequence[Command[Any]]], Sequence[Any]],
        *,
        max_group: int = 256,
    ) -> None:
        """`process` answers each item of a group: its result, or the exception its
        submitter gets (a whole group failing raises instead)."""
        self._process = process
        self._max_group = max_group
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kindred-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

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

    def queued(self) -> int:
        return self._queue.qsize()

    def _check_open(self) -> None:
        if self._stopping:
            raise WriterStopped("the writer is stopping")

    def _run(self) -> None:
        while True:
            group, stop = self._take_group()
            if group:
                self._run_group(group)
            if stop:
                return

    def _take_group(self) -> tuple[list[tuple[Command[Any], object]], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        group: list[tuple[Command[Any], object]] = [first]  # type: ignore[list-item]
        while len(group) < self._max_group:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is _STOP:
                return group, True
            group.append(more)  # type: ignore[arg-type]
        return group, False

    def _run_group(self, group: list[tuple[Command[Any], object]]) -> None:
        try:
            results: Sequence[Any] | None = self._process([item for item, _ in group])
            error: BaseException | None = None
        except BaseException as exc:  # the waiters must learn of it, whatever it is
            log.exception("writer group failed")
            results, error = None, exc
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
