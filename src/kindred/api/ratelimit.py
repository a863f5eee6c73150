"""Per-input rate limits (token buckets) checked before a body is read."""

from __future__ import annotations

from kindred.domain.errors import RateLimited
from kindred.domain.ratelimit import TokenBucket
from kindred.domain.tenancy import InputDef, SourceType

__all__ = ["InputRateLimiter"]

_FEEDS = frozenset(
    {
        SourceType.CUSTOM_FEED,
        SourceType.PARTNER_FEED,
        SourceType.CSV_IMPORT,
        SourceType.WAREHOUSE_SYNC,
    }
)


class InputRateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, source: InputDef, now_s: float, cost: float = 1.0) -> None:
        bucket = self._buckets.get(source.name)
        if bucket is None:
            bucket = TokenBucket(source.rate_limit_per_s, source.rate_limit_burst, now_s)
            self._buckets[source.name] = bucket
        wait = bucket.take(now_s, cost)
        if wait:
            raise RateLimited(wait, "feed" if source.source_type in _FEEDS else "app")
