"""The embedded default store: SQLite in WAL mode, one writer connection, reader per thread."""

from kindred.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
