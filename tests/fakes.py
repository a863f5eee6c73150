"""Fakes of the outside world for unit tests: a clock that moves when told, predictable
secrets."""

from __future__ import annotations

import itertools

__all__ = ["CountingSecrets", "FakeClock"]


class FakeClock:
    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class CountingSecrets:
    """Distinct, predictable bytes: n bytes of one counter value per call."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def token_bytes(self, n: int) -> bytes:
        return next(self._counter).to_bytes(n, "big")
