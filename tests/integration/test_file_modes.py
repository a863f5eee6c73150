"""Data files are private to the service user (SEC-3), whatever the process's umask: the
SQLite database with its WAL, shared-memory and lock files 0600, directories Kindred makes
0700, jsonl output files 0600."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kindred.domain.forwarding import OutputDef
from kindred.outputs.jsonl import JsonlSink
from kindred.storage.sqlite import SqliteStore


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The umask a careless service manager might leave: everything readable by all."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


@pytest.mark.usefixtures("open_umask")
def test_the_sqlite_store_and_its_side_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "kindred.db"
    store = SqliteStore(path)
    try:
        store.migrate()
        store.server_secret("k", b"x" * 32)
        assert mode(path.parent) == 0o700
        for name in ("kindred.db", "kindred.db-wal", "kindred.db-shm", "kindred.db.writer-lock"):
            assert mode(path.parent / name) == 0o600, name
    finally:
        store.close()


@pytest.mark.usefixtures("open_umask")
def test_an_older_stores_files_are_tightened_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "kindred.db"
    SqliteStore(path).close()
    path.chmod(0o644)
    store = SqliteStore(path)
    try:
        assert mode(path) == 0o600
    finally:
        store.close()


@pytest.mark.usefixtures("open_umask")
def test_jsonl_output_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "out"
    sink = JsonlSink(OutputDef(name="files", kind="jsonl", directory=str(directory)))
    sink.send([{"idempotency_key": "a"}])
    assert mode(directory) == 0o700
    (written,) = directory.iterdir()
    assert mode(written) == 0o600
