"""Event stamps, the compact record of a logged batch's events: what is written reads back
as it was, whatever the type or the time, and bytes of another shape are refused."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.observation import EventFact
from kindred.domain.stamps import event_stamps, stamped_events

RECEIVED = 1_700_000_000_000

facts = st.builds(
    EventFact,
    event_type=st.sampled_from(["custom_event", "screen_view", "first_run", "made_up_type", ""]),
    timestamp_ms=st.integers(RECEIVED - 10**12, RECEIVED + 10**10),
    name=st.none() | st.text(max_size=20),
    is_install=st.booleans(),
)


@given(st.lists(facts, max_size=12))
def test_stamps_read_back_each_events_type_name_and_time(events: list[EventFact]) -> None:
    expected = [
        ("install" if e.is_install else e.event_type, e.name, e.timestamp_ms) for e in events
    ]
    assert stamped_events(event_stamps(events, RECEIVED), RECEIVED) == expected


def test_common_types_are_stored_as_numbers() -> None:
    play = EventFact(event_type="custom_event", name="Play", timestamp_ms=RECEIVED - 86_400_000)
    # One array of three: a type number, the name, the distance before the receipt.
    assert len(event_stamps([play], RECEIVED)) < len(b"custom_event") + len(b"Play") + 8


@pytest.mark.parametrize("stamps", [b"\xc1", msgspec.msgpack.encode([[999, None, 0]]), b"{}"])
def test_other_bytes_are_refused(stamps: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        stamped_events(stamps, RECEIVED)
