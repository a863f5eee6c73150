"""The SQLite store keeps its WAL bounded under a writer that never pauses."""

from __future__ import annotations

import time
from pathlib import Path

from kindred.domain.profile import Profile
from kindred.storage.sqlite import SqliteStore


def test_wal_stays_bounded_under_continuous_writes(tmp_path: Path) -> None:
    limit = 1024 * 1024
    store = SqliteStore(tmp_path / "k.db", synchronous="NORMAL", wal_limit_bytes=limit)
    store.migrate()
    wal = tmp_path / "k.db-wal"
    largest, written, mpid = 0, 0, 1
    # Until enough is written to matter (the WAL limit many times over), however fast the
    # machine writes; the deadline only stops a store that cannot keep up at all.
    deadline = time.monotonic() + 60
    while written <= 64 * limit and time.monotonic() < deadline:
        with store.unit_of_work() as uow:  # back to back, as under sustained load
            for _ in range(50):
                uow.profiles.save(
                    Profile(
                        mpid=mpid,
                        scope="a1",
                        created_ms=1,
                        last_stored_ms=1,
                        version=1,
                        ip="x" * 2000,
                    )
                )
                mpid += 1
        written += 50 * 4096
        largest = max(largest, wal.stat().st_size)
    store.close()
    assert written > 64 * limit, "the test did not write enough to matter"
    # Bounded by the limit plus one transaction; without checkpoints that complete, the WAL
    # grows with everything written (hundreds of MB here).
    assert largest < 4 * limit, f"WAL grew to {largest} bytes"
    assert not wal.exists() or wal.stat().st_size == 0  # closing checkpoints it away
