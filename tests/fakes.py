"""Fakes of the outside world for unit tests: a clock that moves when told, predictable
secrets."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["CountingSecrets", "FakeClock", "NullMetrics", "SequentialMpids"]


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


class NullMetrics:
    """Metrics nobody reads."""

    def batch_done(self, input_name: str, status: str, events: int) -> None:
        del input_name, status, events

    def notes(self, input_name: str, reasons: Sequence[str]) -> None:
        del input_name, reasons

    def batch_refused(self, input_name: str, reason: str) -> None:
        del input_name, reason

    def group_committed(self, size: int, seconds: float) -> None:
        del size, seconds


class SequentialMpids:
    """MPIDs 1, 2, 3, ... (a real source draws random signed 64-bit ones)."""

    def __init__(self, start: int = 1) -> None:
        self._next = itertools.count(start)

    def new_mpid(self) -> int:
        return next(self._next)
