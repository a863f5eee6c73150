"""The delivery retry policy: exponential backoff with equal jitter, Retry-After, limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.retry import RetryPolicy

POLICY = RetryPolicy(base_s=1, max_delay_s=60, max_attempts=5, max_failing_s=600)


def test_each_retry_waits_twice_as_long_up_to_the_ceiling() -> None:
    low = [POLICY.delay_ms(n, 0.0, None) for n in range(1, 9)]
    high = [POLICY.delay_ms(n, 0.999999, None) for n in range(1, 9)]
    assert low == [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
    assert high == [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999]


@given(
    failures=st.integers(1, 40),
    jitter=st.floats(0, 1, exclude_max=True),
    retry_after=st.none() | st.floats(0, 10_000),
)
def test_a_wait_is_never_shorter_than_retry_after_nor_than_half_the_backoff(
    failures: int, jitter: float, retry_after: float | None
) -> None:
    wait = POLICY.delay_ms(failures, jitter, retry_after)
    ceiling = min(60.0, 2.0 ** (failures - 1))
    assert wait >= int(ceiling * 500)
    if retry_after is not None:
        assert wait >= int(retry_after * 1000)
    else:
        assert wait <= ceiling * 1000


def test_giving_up_by_attempts_or_by_time() -> None:
    assert not POLICY.gives_up(4, failing_since_ms=0, now_ms=599_999)
    assert POLICY.gives_up(5, failing_since_ms=0, now_ms=1)
    assert POLICY.gives_up(1, failing_since_ms=0, now_ms=600_000)
