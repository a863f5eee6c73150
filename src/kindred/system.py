"""The real clock and the real randomness, behind the Clock, MpidSource and Secrets ports."""

from __future__ import annotations

import os
import secrets
import time

__all__ = ["FileOffsetClock", "SecureMpids", "SecureSecrets", "SystemClock"]


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FileOffsetClock:
    """The system clock plus a number of milliseconds read from a file (KINDRED_CLOCK_FILE),
    re-read whenever the file changes: lets a test move a running server through time."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset()

    def _offset(self) -> int:
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            return 0
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            with open(self._path, encoding="ascii") as file:
                text = file.read().strip()
            self._offset_ms = int(text or "0")
            self._stamp = stamp
        return self._offset_ms


class SecureMpids:
    """MPIDs from the OS's CSPRNG: random non-zero signed 64-bit integers."""

    def new_mpid(self) -> int:
        while True:
            value = secrets.randbits(64) - 2**63
            if value != 0:
                return value


class SecureSecrets:
    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)
