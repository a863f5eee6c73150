"""The store contract for web UI sessions, on every store: saved and read by key, ended
once, and purged when expired or ended; a session ended through one store object is ended
for another on the same store (another process)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from kindred.domain.sessions import UiSession
from kindred.ports import Store
from kindred.storage.sqlite import SqliteStore

__all__: list[str] = []


def session(key: str, **changes: object) -> UiSession:
    base = UiSession(key=key, user="ann", created_ms=1_000, expires_ms=10_000)
    return msgspec.structs.replace(base, **changes)


def test_a_session_is_read_back_by_its_key(store: Store) -> None:
    assert store.get_session("k1") is None
    first, second = session("k1"), session("k2", user="bob", created_ms=2_000, expires_ms=9_000)
    store.save_session(first)
    store.save_session(second)
    assert store.get_session("k1") == first
    assert store.get_session("k2") == second
    assert store.get_session("k3") is None


def test_ending_a_session_keeps_the_first_end(store: Store) -> None:
    store.save_session(session("k1"))
    store.save_session(session("k2"))
    store.end_session("k1", 5_000)
    store.end_session("k1", 6_000)
    store.end_session("unknown", 5_000)
    assert store.get_session("k1") == session("k1", ended_ms=5_000)
    assert store.get_session("k2") == session("k2")
    assert store.get_session("unknown") is None


def test_sessions_that_expired_or_ended_before_a_time_are_purged(store: Store) -> None:
    store.save_session(session("expired", expires_ms=4_999))
    store.save_session(session("expires-then", expires_ms=5_000))
    store.save_session(session("ended", expires_ms=20_000))
    store.save_session(session("ends-later", expires_ms=20_000))
    store.save_session(session("standing", expires_ms=20_000))
    store.end_session("ended", 4_000)
    store.end_session("ends-later", 5_000)
    assert store.purge_sessions(5_000) == 2
    assert store.get_session("expired") is None
    assert store.get_session("ended") is None
    for key in ("expires-then", "ends-later", "standing"):
        assert store.get_session(key) is not None
    assert store.purge_sessions(5_000) == 0


def test_a_session_ended_by_one_process_is_ended_for_another(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = SqliteStore(path), SqliteStore(path)
    first.migrate()
    second.migrate()
    try:
        first.save_session(session("k1"))
        assert second.get_session("k1") == session("k1")
        second.end_session("k1", 3_000)
        assert first.get_session("k1") == session("k1", ended_ms=3_000)
    finally:
        first.close()
        second.close()
