"""How the SQLite store writes: one writer at a time across threads and processes, when a
commit reaches the disk, and a full disk (or the database at its size limit) refused as a
store unavailable for now."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kindred.domain.errors import StoreUnavailable

__all__ = ["CheckpointAhead", "CommitSync", "WriterLock", "full_is_unavailable"]

log = logging.getLogger("kindred.store")

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

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        synchronous: str,
        connect: Callable[[], sqlite3.Connection],
    ) -> None:
        """`connect`: a new connection to the database (the background checkpointer's)."""
        self._conn = conn
        self._wal = None if path == ":memory:" else f"{path}-wal"
        self._synchronous = synchronous
        self._current = synchronous  # the connection's setting now
        self._local = threading.local()
        self._ahead = CheckpointAhead(connect)

    @contextmanager
    def deferred(self, *, copy_meanwhile: bool = False) -> Iterator[None]:
        """This thread's commits inside are not synced: `sync()` makes them durable. With
        `copy_meanwhile`, each wakes the background checkpointer (see `committed`)."""
        self._local.deferred = True
        self._local.copy_meanwhile = copy_meanwhile
        try:
            yield
        finally:
            self._local.deferred = False
            self._local.copy_meanwhile = False

    def before_begin(self) -> None:
        """Called under the write lock, before a write transaction begins: the connection
        set to sync its commit, or to leave it to `sync()` when this thread defers."""
        deferring = getattr(self._local, "deferred", False) and self._synchronous in _SYNCED
        wanted = "NORMAL" if deferring else self._synchronous
        if wanted != self._current:
            self._conn.execute(f"PRAGMA synchronous = {wanted}")
            self._current = wanted

    def committed(self) -> None:
        """After a commit of this thread: one deferred with `copy_meanwhile` has the
        background checkpointer copy the WAL (at most every `interval_s`), so that a long
        run of deferred commits (an activation's pages) does not leave the whole copy to
        the writer's own checkpoint, inside its commits. (Not the group writer's: there
        the checkpoint's syncs would come before the group's own, which its batches wait
        for; `sync()` wakes it after.)"""
        if (
            self._wal is not None
            and getattr(self._local, "copy_meanwhile", False)
            and self._synchronous in _SYNCED
        ):
            self._ahead.nudge()

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
        self._ahead.nudge()

    def close(self) -> None:
        self._ahead.close()


class CheckpointAhead:
    """Copies the WAL into the database in the background while the writer goes on.

    The writer still checkpoints after its commit once the WAL passes its limit (there the
    checkpoint always completes, so the WAL starts over and stays bounded). Without help,
    that checkpoint copies the whole WAL and fsyncs the database while every batch waits:
    tens of ms, once a second or so under load. A PASSIVE checkpoint from another
    connection, at most every `interval_s` while commits are synced, copies most frames
    and fsyncs the database beforehand, without blocking writers; the writer's own
    checkpoint is left only the frames committed since. (A background checkpointer alone
    never finds the WAL fully copied under back-to-back commits, so the WAL would grow
    without end: it helps the writer's checkpoint, it does not replace it.)
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], interval_s: float = 0.25):
        self._connect = connect
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def nudge(self) -> None:
        """Commits were synced: a checkpoint is due if the last one is old enough."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(
                        target=self._run, name="kindred-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wake.wait()
                if self._stopping:
                    return
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    # Busy (another checkpoint runs) or the disk refused: the writer's own
                    # checkpoint still bounds the WAL.
                    log.debug("background checkpoint skipped: %s", exc)
                time.sleep(self._interval_s)
        finally:
            conn.close()
