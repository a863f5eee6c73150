"""What guards the two places a secret is checked, token requests and UI sign-in: limits on
attempts (per client id or user name, per source address) and the checks themselves, run
off the event loop.

A secret check is an scrypt on purpose (~0.1 s of CPU). On the event loop it would stop
every other request meanwhile, so checks run on a thread of their own (scrypt releases the
GIL): one per process, at a lower CPU priority than the server's other threads (`nice` 10,
where the system allows it), so that a flood of wrong secrets takes at most one core and
only what ingest leaves of it, with a bounded number waiting (more: answered 429 at once).
Every check costs one scrypt whatever its outcome: an unknown client id or user name is
checked against a decoy hash (`domain.credentials.check_secret`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kindred.domain.credentials import check_secret
from kindred.domain.errors import RateLimited
from kindred.domain.ratelimit import TokenBucket
from kindred.ports import Clock

__all__ = ["AttemptLimit", "AttemptLimiter", "SecretChecker"]

# How much lower than the rest of the server the checking thread runs (Linux: per thread).
_NICENESS = 10
# Keys remembered per limiter; past it the least recently used are forgotten (a flood of
# made-up client ids or addresses must not grow memory without end).
_MAX_KEYS = 10_000


@dataclass(frozen=True)
class AttemptLimit:
    """`burst` attempts at once, then `per_minute`."""

    per_minute: float
    burst: int


class AttemptLimiter:
    """A token bucket per key: every attempt takes one, before its secret is checked."""

    def __init__(
        self, scope: str, limit: AttemptLimit, clock: Clock, max_keys: int = _MAX_KEYS
    ) -> None:
        self._scope = scope
        self._rate = limit.per_minute / 60.0
        self._burst = limit.burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """RateLimited (with the whole seconds to wait) when `key` has no attempt left."""
        now = self._clock.now_ms() / 1000.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, now)
                while len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            wait = bucket.take(now)
        if wait:
            raise RateLimited(wait, self._scope)


class SecretChecker:
    """`check_secret` on a thread pool of its own; at most `max_waiting` checks queued or
    running, more are refused with RateLimited (scope `server`, retry after 1 s)."""

    def __init__(self, threads: int = 1, max_waiting: int = 32) -> None:
        self._threads = threads
        self._max_waiting = max_waiting
        self._waiting = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    async def check(self, secret: str, encoded: str | None) -> bool:
        """Whether `secret` matches `encoded` (None: no such client or user, never)."""
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise RateLimited(1, "server")
            self._waiting += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._threads, thread_name_prefix="secrets", initializer=_lower_priority
                )
            pool = self._pool
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, check_secret, secret, encoded)
        finally:
            with self._lock:
                self._waiting -= 1

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Lower this thread's CPU priority: when the CPU is contended the event loop and the
    writer go first. (On Linux a thread's niceness is its own; elsewhere, if it is refused
    or not supported, the thread keeps its priority.)"""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICENESS)
