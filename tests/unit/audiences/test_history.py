"""The histories kept on ingest: at each batch every tracked history keeps the newest
events a criterion can still need, within its lookback, and those no longer tracked go."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kindred.audiences.evaluate import DAY_MS
from kindred.audiences.history import HistorySpec, histories_of, record_events, trimmed
from kindred.domain.observation import EventFact

NOW = 1_700_000_000_000
PLAY = HistorySpec(
    "custom_event:play#1", "custom_event:play", None, frozenset({"s"}), 7 * DAY_MS, 2
)
HOME = HistorySpec("screen_view:home#2", "screen_view:home", None, frozenset({"s"}), 3 * DAY_MS, 1)
TRACKED = histories_of([PLAY, HOME])


def _play(at_ms: int) -> EventFact:
    return EventFact(event_type="custom_event", timestamp_ms=at_ms, name="Play")


def test_a_history_the_batch_adds_to_keeps_its_newest_within_the_lookback() -> None:
    held = {PLAY.key: [NOW - 8 * DAY_MS, NOW - 3000, NOW - 2000]}
    kept = record_events(held, [_play(NOW - 1000)], "s", TRACKED, NOW)
    assert kept == {PLAY.key: [NOW - 2000, NOW - 1000]}


def test_a_history_the_batch_does_not_add_to_is_trimmed_too() -> None:
    homes = [NOW - 5000, NOW - 4000, NOW - 3000]  # more than it keeps
    held = {PLAY.key: [NOW - 8 * DAY_MS, NOW - 1000], HOME.key: homes}
    kept = {HOME.key: [NOW - 3000], PLAY.key: [NOW - 1000]}
    assert record_events(held, [], "s", TRACKED, NOW) == kept
    # Events from an input the histories do not take add nothing.
    assert record_events(held, [_play(NOW)], "other", TRACKED, NOW) == kept


def test_histories_no_longer_tracked_go() -> None:
    held = {"custom_event:play#9": [NOW - 1000], HOME.key: [NOW - 1000]}
    assert record_events(held, [], "s", TRACKED, NOW) == {HOME.key: [NOW - 1000]}


times = st.lists(st.integers(NOW - 10 * DAY_MS, NOW + DAY_MS), max_size=6).map(sorted)


@given(
    st.fixed_dictionaries({}, optional={PLAY.key: times, HOME.key: times}),
    st.lists(st.integers(NOW - 9 * DAY_MS, NOW + DAY_MS), max_size=4),
)
def test_a_batch_keeps_what_trimming_the_history_with_its_events_keeps(
    held: dict[str, list[int]], plays: list[int]
) -> None:
    kept = record_events(held, [_play(t) for t in plays], "s", TRACKED, NOW)
    for spec in (PLAY, HOME):
        every = sorted([*held.get(spec.key, []), *(plays if spec is PLAY else [])])
        assert kept.get(spec.key, []) == trimmed(every, spec, NOW)
        assert all(t >= NOW - spec.lookback_ms for t in kept.get(spec.key, []))
