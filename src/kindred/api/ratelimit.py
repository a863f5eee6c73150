"""Per-input rate limits (token buckets) checked before a body is read."""

from __future__ import annotations

from kindred.domain.errors import InvalidBatch, RateLimited
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
        """Take `cost` tokens from the input's bucket; RateLimited when it lacks them."""
        bucket = self._buckets.get(source.name)
        if bucket is None:
            bucket = TokenBucket(source.rate_limit_per_s, source.rate_limit_burst, now_s)
            self._buckets[source.name] = bucket
        wait = bucket.take(now_s, cost)
        if wait:
            raise RateLimited(wait, "feed" if source.source_type in _FEEDS else "app")

    def check_rest(self, source: InputDef, now_s: float, batches: int) -> None:
        """A request of `batches` batches whose first took its token in `check` (before its
        body was read): the others' tokens. InvalidBatch when the request carries more
        batches than the bucket ever holds, which no wait would let through."""
        if batches > source.rate_limit_burst:
            raise InvalidBatch(
                f"this request carries {batches} batches, more than input {source.name!r} may "
                f"send at once (its rate_limit_burst is {source.rate_limit_burst})"
            )
        self.check(source, now_s, cost=batches - 1)
