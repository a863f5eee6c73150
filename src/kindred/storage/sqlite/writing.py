"""How the SQLite store writes: one writer at a time across threads and processes, when a
commit reaches the disk, and a full disk (or the database at its size limit) refused as a
store unavailable for now."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kindred.domain.errors import StoreUnavailable

__all__ = ["CommitSync", "WriterLock", "full_is_unavailable"]

# The `synchronous` settings under which a commit is on the disk when COMMIT returns.
_SYNCED = frozenset({"FULL", "EXTRA"})


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


class CommitSync:
    """When a commit of the writer connection reaches the disk.

    Under `synchronous` FULL every commit is fsynced before COMMIT returns, except those a
    thread makes inside `deferred()`: they are written to the WAL with `synchronous`
    NORMAL (a process crash keeps them; SQLite keeps the database consistent through a
    power loss) and reach the disk at the next `sync()`, one fdatasync of the WAL file,
    which holds every frame committed before it. (A checkpoint in between syncs the WAL
    before copying it, and the database file after.) The group writer commits its groups
    deferred and answers their batches after a sync: its next group runs while the disk
    syncs the last one, and one fsync covers every group committed meanwhile.
    """

    def __init__(self, conn: sqlite3.Connection, path: str, synchronous: str) -> None:
        self._conn = conn
        self._wal = None if path == ":memory:" else f"{path}-wal"
        self._synchronous = synchronous
        self._current = synchronous  # the connection's setting now
        self._local = threading.local()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """This thread's commits inside are not synced: `sync()` makes them durable."""
        self._local.deferred = True
        try:
            yield
        finally:
            self._local.deferred = False

    def before_begin(self) -> None:
        """Called under the write lock, before a write transaction begins: the connection
        set to sync its commit, or to leave it to `sync()` when this thread defers."""
        deferring = getattr(self._local, "deferred", False) and self._synchronous in _SYNCED
        wanted = "NORMAL" if deferring else self._synchronous
        if wanted != self._current:
            self._conn.execute(f"PRAGMA synchronous = {wanted}")
            self._current = wanted

    def sync(self) -> None:
        """Every commit made so far on the disk (nothing to do unless commits are synced)."""
        if self._wal is None or self._synchronous not in _SYNCED:
            return
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:
            # No WAL: the last connection closed, and closing checkpointed every commit
            # into the database file and synced it.
            return
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise StoreUnavailable(f"store unavailable: the disk failed a sync ({exc})") from exc
        finally:
            os.close(fd)
