"""Which store the settings name, and where an embedded one lives."""

from __future__ import annotations

from pathlib import Path

from kindred.config import Settings
from kindred.ports import (
    Store,
)

__all__ = ["make_store", "missing_store"]


def make_store(settings: Settings, *, wal_limit_bytes: int | None = None) -> Store:
    """The store the settings name. `wal_limit_bytes`: on SQLite, the size past which this
    store's own commits checkpoint the WAL (SqliteStore; the default when None)."""
    url = settings.store.url
    if url.startswith("sqlite://"):
        from kindred.storage.sqlite import SqliteStore  # noqa: PLC0415 - chosen by config
        from kindred.storage.sqlite.store import WAL_RESTART_BYTES  # noqa: PLC0415

        return SqliteStore(
            _sqlite_path(url, settings.data_dir),
            synchronous=settings.store.sqlite_synchronous.upper(),
            max_size_mb=settings.store.sqlite_max_size_mb,
            wal_limit_bytes=WAL_RESTART_BYTES if wal_limit_bytes is None else wal_limit_bytes,
        )
    from kindred.storage.postgres import PostgresStore  # noqa: PLC0415 - chosen by config

    return PostgresStore(url, pool_size=settings.store.pool_size)


def missing_store(settings: Settings) -> Path | None:
    """The embedded store's file when it does not exist yet (None for PostgreSQL, whose
    database is made by its operator, and for a store that exists)."""
    url = settings.store.url
    if not url.startswith("sqlite://"):
        return None
    path = _sqlite_path(url, settings.data_dir)
    return None if path.exists() else path.resolve()


def _sqlite_path(url: str, data_dir: str) -> Path:
    """sqlite:///name.db lives in the data directory; sqlite:////abs/name.db where it says."""
    rest = url.removeprefix("sqlite://")
    if rest.startswith("//"):
        return Path(rest[1:])
    return Path(data_dir) / rest.lstrip("/")
