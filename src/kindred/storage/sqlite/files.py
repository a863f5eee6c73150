"""The SQLite store's files on the disk: private to the service user."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_file", "tighten"]


def private_file(path: Path) -> None:
    """The database file (and its directory) private to the service user: a directory
    Kindred makes is 0700, the file 0600 (made before SQLite opens it, so that its WAL and
    shared-memory files are made 0600 too)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    tighten(path)


def tighten(path: Path) -> None:
    """Take group and other permissions off a file of the store (0600)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)
    except FileNotFoundError:
        pass
