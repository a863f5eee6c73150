"""Work a server process repeats on a timer: the lifetime sweep, the audience scheduler,
audience backfills."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

log = logging.getLogger("kindred.background")


class Periodic:
    """Runs a task every `interval_s` on a daemon thread until stopped; a failing run is
    logged and the next one goes ahead. With `again_if`, a run whose result it holds true
    (work done, maybe more left) is followed by the next at once."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        task: Callable[[], object],
        *,
        first_after_s: float | None = None,
        again_if: Callable[[object], bool] | None = None,
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._first_after_s = interval_s if first_after_s is None else first_after_s
        self._task = task
        self._again_if = again_if
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        wait = self._first_after_s
        while not self._stop.wait(wait):
            wait = self._interval_s
            try:
                result = self._task()
                log.debug("%s: %s", self._name, result)
                if self._again_if is not None and self._again_if(result):
                    wait = 0.0
            except Exception:
                log.exception("%s failed; next run in %s s", self._name, self._interval_s)
