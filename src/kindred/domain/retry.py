"""The delivery retry policy (ENR-3), pure: how long to wait before the next attempt, and
when to give up and fault the connection. Randomness (the jitter) is passed in."""

from __future__ import annotations

import msgspec

__all__ = ["RetryPolicy"]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The first retry waits about `base_s`, each next one twice as long, up to `max_delay_s`.
    base_s: float = 1.0
    max_delay_s: float = 300.0
    # Give up (fault the connection) after this many failed attempts of one delivery, or
    # once it has been failing for this long, whichever comes first.
    max_attempts: int = 10
    max_failing_s: float = 3600.0

    def delay_ms(self, failures: int, jitter: float, retry_after_s: float | None) -> int:
        """The wait after the `failures`-th failure in a row (1 for the first): exponential
        with "equal jitter" (half fixed, half drawn by `jitter` in [0, 1)), and never
        shorter than the receiver's Retry-After."""
        ceiling = min(self.max_delay_s, self.base_s * 2 ** max(failures - 1, 0))
        wait = ceiling / 2 + ceiling / 2 * jitter
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return int(wait * 1000)

    def gives_up(self, failures: int, failing_since_ms: int, now_ms: int) -> bool:
        return (
            failures >= self.max_attempts or now_ms - failing_since_ms >= self.max_failing_s * 1000
        )
