"""Token bucket: `rate` tokens a second, at most `burst` saved up. Time is passed in."""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, now_s: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now_s

    def take(self, now_s: float, cost: float = 1.0) -> int:
        """0 when the request may go ahead; otherwise whole seconds to wait (at least 1)."""
        elapsed = max(0.0, now_s - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        # A clock stepping back must not make the same stretch of time count twice.
        self._updated = max(self._updated, now_s)
        # The tolerance absorbs float rounding: waiting the advised time must be enough.
        if self._tokens >= cost - 1e-9:
            self._tokens = max(0.0, self._tokens - cost)
            return 0
        return max(1, math.ceil((cost - self._tokens) / self._rate))
