"""The real clock and the real randomness, behind the Clock and MpidSource ports."""

from __future__ import annotations

import secrets
import time

__all__ = ["SecureMpids", "SystemClock"]


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class SecureMpids:
    """MPIDs from the OS's CSPRNG: random non-zero signed 64-bit integers."""

    def new_mpid(self) -> int:
        while True:
            value = secrets.randbits(64) - 2**63
            if value != 0:
                return value
