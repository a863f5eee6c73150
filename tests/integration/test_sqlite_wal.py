"""The SQLite store keeps its WAL bounded under a writer that never pauses."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

from kindred.bootstrap.activation_processes import ACTIVATION_WAL_BYTES, activation_store
from kindred.bootstrap.stores import make_store
from kindred.config import load_settings
from kindred.domain.profile import Profile
from kindred.ports import Store, UnitOfWork
from kindred.storage.sqlite import SqliteStore
from kindred.storage.sqlite.store import WAL_RESTART_BYTES

CONFIG = Path(__file__).resolve().parents[1] / "e2e" / "kindred-e2e.toml"


@pytest.mark.parametrize("deferred", [False, True], ids=["synced-at-commit", "deferred"])
def test_wal_stays_bounded_under_continuous_writes(tmp_path: Path, deferred: bool) -> None:
    """Also as the group writer commits: deferred, a sync after each, and the background
    checkpointer copying the WAL meanwhile."""
    limit = 1024 * 1024
    synchronous = "FULL" if deferred else "NORMAL"
    store = SqliteStore(tmp_path / "k.db", synchronous=synchronous, wal_limit_bytes=limit)
    store.migrate()
    wal = tmp_path / "k.db-wal"
    largest, written, mpid = 0, 0, 1
    # Until enough is written to matter (the WAL limit many times over), however fast the
    # machine writes; the deadline only stops a store that cannot keep up at all.
    deadline = time.monotonic() + 60
    while written <= 64 * limit and time.monotonic() < deadline:
        with (
            store.deferred_sync() if deferred else nullcontext(),
            store.unit_of_work() as uow,  # back to back, as under sustained load
        ):
            mpid = _save_profiles(uow, mpid, 50)
        if deferred:
            store.sync()
        written += 50 * 4096
        largest = max(largest, wal.stat().st_size)
    store.close()
    assert written > 64 * limit, "the test did not write enough to matter"
    # Bounded by the limit plus one transaction; without checkpoints that complete, the WAL
    # grows with everything written (hundreds of MB here).
    assert largest < 4 * limit, f"WAL grew to {largest} bytes"
    assert not wal.exists() or wal.stat().st_size == 0  # closing checkpoints it away


def _synchronous_in_transaction(store: SqliteStore) -> int:
    """The writer connection's `synchronous` while a write transaction is open (1 NORMAL,
    2 FULL)."""
    with store.unit_of_work():
        return int(store._writer.execute("PRAGMA synchronous").fetchone()[0])


def test_deferred_commits_are_left_to_one_sync_of_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "k.db")  # synchronous FULL, the default
    store.migrate()
    synced: list[str] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    assert _synchronous_in_transaction(store) == 2  # a commit of its own: synced by COMMIT
    with store.deferred_sync():
        assert _synchronous_in_transaction(store) == 1  # left to the sync
        with store.unit_of_work() as uow:
            uow.profiles.save(
                Profile(mpid=7, scope="a1", created_ms=1, last_stored_ms=1, version=1)
            )
    assert synced == []
    assert store.get_profile(7) is not None  # committed and visible before the sync
    store.sync()
    assert synced == [str(tmp_path / "k.db-wal")]
    assert _synchronous_in_transaction(store) == 2  # other threads' commits synced again
    store.close()


def test_without_full_sync_there_is_nothing_to_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "k.db", synchronous="NORMAL")
    store.migrate()
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", calls.append)
    with store.deferred_sync(), store.unit_of_work() as uow:
        uow.profiles.save(Profile(mpid=7, scope="a1", created_ms=1, last_stored_ms=1, version=1))
    store.sync()
    assert calls == []
    store.close()


def _in_database_file(path: Path, mpid: int) -> bool:
    """Whether the profile is in the database file alone (immutable: its WAL ignored)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT 1 FROM profiles WHERE mpid = ?", (mpid,)).fetchone() is not None
    except sqlite3.DatabaseError:  # not even the tables there yet, or a page mid-copy
        return False
    finally:
        conn.close()


def _copied_soon(path: Path, mpid: int) -> bool:
    deadline = time.monotonic() + 10
    while not _in_database_file(path, mpid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _in_database_file(path, mpid)


def test_synced_commits_are_copied_into_the_database_in_the_background(tmp_path: Path) -> None:
    """As the group writer commits: deferred, then synced; the copy comes after the sync
    (a checkpoint's own syncs would otherwise come before the group's)."""
    store = SqliteStore(tmp_path / "k.db")
    store.migrate()
    with store.deferred_sync(), store.unit_of_work() as uow:
        uow.profiles.save(Profile(mpid=7, scope="a1", created_ms=1, last_stored_ms=1, version=1))
    time.sleep(0.5)
    assert not _in_database_file(tmp_path / "k.db", 7)  # committed to the WAL only
    store.sync()
    # The checkpointer copied it, though the WAL is far from full.
    assert _copied_soon(tmp_path / "k.db", 7)
    store.close()


def test_a_run_of_deferred_commits_is_copied_in_the_background_before_its_sync(
    tmp_path: Path,
) -> None:
    """An activation's pages: its commits wait for one sync at the end of the run, and the
    WAL is copied meanwhile, not all by the writer's own checkpoint inside a commit."""
    store = SqliteStore(tmp_path / "k.db")
    store.migrate()
    with store.deferred_sync(copy_meanwhile=True):
        with store.unit_of_work() as uow:
            uow.profiles.save(
                Profile(mpid=9, scope="a1", created_ms=1, last_stored_ms=1, version=1)
            )
        assert _copied_soon(tmp_path / "k.db", 9)
    store.close()


def _save_profiles(uow: UnitOfWork, first: int, count: int) -> int:
    """`count` profiles of ~2 KB from MPID `first`; the next MPID."""
    for mpid in range(first, first + count):
        profile = Profile(
            mpid=mpid, scope="a1", created_ms=1, last_stored_ms=1, version=1, ip="x" * 2000
        )
        uow.profiles.save(profile)
    return first + count


def _largest_wal_writing(store: Store, megabytes: int) -> int:
    """The largest size the WAL reaches while `megabytes` of profiles are committed, a
    transaction at a time, as an activation's pages are."""
    assert isinstance(store, SqliteStore)
    store.migrate()
    wal = Path(f"{store.path}-wal")
    largest, mpid = 0, 1
    while mpid * 2_000 < megabytes * 1024 * 1024:
        with store.unit_of_work() as uow:
            mpid = _save_profiles(uow, mpid, 200)
        largest = max(largest, wal.stat().st_size)
    store.close()
    return largest


def test_an_activation_process_leaves_the_wal_to_grow_past_the_servers_limit(
    tmp_path: Path,
) -> None:
    """An activation's processes checkpoint only past ACTIVATION_WAL_BYTES; the server's
    store past WAL_RESTART_BYTES (16 MB) as before."""
    assert WAL_RESTART_BYTES < 24 * 1024 * 1024 < ACTIVATION_WAL_BYTES
    sizes = {}
    for name, opened in (("server", make_store), ("activation", activation_store)):
        (tmp_path / name).mkdir()
        settings = load_settings(CONFIG, data_dir=str(tmp_path / name), env={})
        sizes[name] = _largest_wal_writing(opened(settings), 24)
    assert sizes["server"] < WAL_RESTART_BYTES + 2 * 1024 * 1024
    assert sizes["activation"] > 22 * 1024 * 1024
