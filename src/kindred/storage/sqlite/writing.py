"""How the SQLite store writes: one writer at a time across threads and processes, and a
full disk (or the database at its size limit) refused as a store unavailable for now."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kindred.domain.errors import StoreUnavailable

__all__ = ["WriterLock", "full_is_unavailable"]


class WriterLock:
    """Who may write: one thread of this process, and one process of the machine.

    SQLite already serializes writers, but its busy handler polls with sleeps of up to
    100 ms; with several server processes that lands in the tail latency. A blocking
    `flock` on a side file hands the lock over the moment its holder lets go.
    """

    def __init__(self, path: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path else None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def full_is_unavailable() -> Iterator[None]:
    """A full disk (or the database at its size limit), or one failing to write, refuses
    the write with StoreUnavailable (503, come back later): its transaction rolled back,
    nothing of it stored, everything committed before intact."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        name = exc.sqlite_errorname or ""
        if name != "SQLITE_FULL" and not name.startswith("SQLITE_IOERR"):
            raise
        raise StoreUnavailable(
            f"store unavailable: {exc} (writes are refused until it has room)"
        ) from exc
