"""Group commit: one writer thread turns many concurrent submissions into few transactions.

Callers (HTTP handlers on the event loop, the CSV importer) submit work and wait on a future;
the writer takes everything queued, up to `max_group`, and runs it as one group. Batches are
durable when their future resolves, so a 202 is never sent before the commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["GroupWriter", "WriterStopped"]

log = logging.getLogger("kindred.writer")

In = TypeVar("In")
Out = TypeVar("Out")

_STOP = object()


class WriterStopped(RuntimeError):
    """The writer is shutting down and takes no more work."""


class GroupWriter(Generic[In, Out]):
    def __init__(
        self, process: Callable[[Sequence[In]], list[Out]], *, max_group: int = 256
    ) -> None:
        self._process = process
        self._max_group = max_group
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kindred-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: In) -> Future[Out]:
        if self._stopping:
            raise WriterStopped("the writer is stopping")
        future: Future[Out] = Future()
        self._queue.put((item, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything already submitted, then stop."""
        self._stopping = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def queued(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            group, stop = self._take_group()
            if group:
                self._run_group(group)
            if stop:
                return

    def _take_group(self) -> tuple[list[tuple[In, Future[Out]]], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        group: list[tuple[In, Future[Out]]] = [first]  # type: ignore[list-item]
        while len(group) < self._max_group:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is _STOP:
                return group, True
            group.append(more)  # type: ignore[arg-type]
        return group, False

    def _run_group(self, group: list[tuple[In, Future[Out]]]) -> None:
        try:
            results = self._process([item for item, _ in group])
        except BaseException as exc:  # the futures must learn of it, whatever it is
            log.exception("writer group failed")
            for _, future in group:
                future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
