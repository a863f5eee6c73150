"""Token bucket behind the per-input and per-credential rate limits (ING-1 429 + Retry-After)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.ratelimit import TokenBucket


def test_burst_is_available_at_once_then_refused() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now_s=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(100.0) == 1


def test_refill_at_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=2, now_s=0.0)
    assert bucket.take(0.0, cost=2) == 0
    assert bucket.take(0.25) == 1  # half a token saved up
    assert bucket.take(0.5) == 0  # the second quarter-second completes one token


def test_wait_is_whole_seconds_rounded_up() -> None:
    bucket = TokenBucket(rate=0.1, burst=1, now_s=0.0)
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == 10
    assert bucket.take(5.0) == 5
    assert bucket.take(9.5) == 1


def test_saved_tokens_are_capped_at_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now_s=0.0)
    assert [bucket.take(3600.0) for _ in range(3)] == [0, 0, 1]


def test_cost_above_one() -> None:
    bucket = TokenBucket(rate=1.0, burst=10, now_s=0.0)
    assert bucket.take(0.0, cost=8) == 0
    assert bucket.take(0.0, cost=5) == 3
    assert bucket.take(0.0, cost=2) == 0


def test_refused_request_consumes_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now_s=0.0)
    assert bucket.take(0.0) == 0
    assert bucket.take(0.5) == 1
    assert bucket.take(1.0) == 0


def test_clock_going_backwards_grants_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now_s=100.0)
    assert bucket.take(100.0) == 0
    assert bucket.take(50.0) == 1


def test_clock_stepping_back_and_forth_grants_no_extra_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now_s=100.0)
    assert bucket.take(100.0) == 0
    assert bucket.take(50.0) == 1
    assert bucket.take(100.5) == 1
    assert bucket.take(101.0) == 0


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(0.1, 1000.0),
    burst=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(1, 5)), max_size=20),
)
def test_waiting_the_advised_time_always_succeeds(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    now = 0.0
    bucket = TokenBucket(rate, burst, now)
    for delay, cost in steps:
        now += delay
        if cost > burst:
            continue
        wait = bucket.take(now, cost)
        assert wait >= 0
        if wait:
            now += wait
            assert bucket.take(now, cost) == 0


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0.5, 100.0), burst=st.integers(1, 20), seconds=st.integers(1, 30))
def test_admitted_requests_never_exceed_burst_plus_rate_times_time(
    rate: float, burst: int, seconds: int
) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    admitted = 0
    ticks = seconds * 10
    for tick in range(ticks + 1):
        now = tick / 10
        while bucket.take(now) == 0:
            admitted += 1
    assert admitted <= burst + rate * seconds + 1e-6
    assert admitted >= min(burst, 1)
