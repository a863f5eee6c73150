"""The real clock and the real randomness, behind the Clock, MpidSource and Secrets ports;
Fernet encryption behind the SecretBox port."""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from kindred.domain.errors import ConfigError

__all__ = ["FernetBox", "FileOffsetClock", "SecureMpids", "SecureSecrets", "SystemClock"]

_SEALED = "enc:"


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


class FernetBox:
    """Secrets encrypted with Fernet (AES-128-CBC and HMAC-SHA256, authenticated, with a
    timestamp) under the keys `load` returns, the first in use and the others still
    decrypting. The keys are loaded when first needed and loaded again when a secret does
    not decrypt (the key file was rotated by `kindred keys rotate` meanwhile)."""

    def __init__(self, load: Callable[[], list[bytes]], describe: str = "the secrets key") -> None:
        self._load = load
        self._describe = describe
        self._fernet: MultiFernet | None = None
        self._lock = threading.Lock()

    def seal(self, plaintext: str) -> str:
        return _SEALED + self._keys().encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(_SEALED):
            return sealed  # stored before secrets were encrypted: plaintext
        token = sealed.removeprefix(_SEALED).encode()
        try:
            return self._keys().decrypt(token).decode()
        except InvalidToken:
            pass
        try:
            return self._keys(reload=True).decrypt(token).decode()
        except InvalidToken:
            raise ConfigError(
                f"a stored secret does not decrypt with {self._describe}: it was sealed"
                " with another key"
            ) from None

    def reload(self) -> None:
        """Read the keys again (after this process rotated them)."""
        self._keys(reload=True)

    def _keys(self, *, reload: bool = False) -> MultiFernet:
        with self._lock:
            if self._fernet is None or reload:
                keys = self._load()
                self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])
            return self._fernet
