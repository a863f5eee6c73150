"""When a profile is due for the scheduler (CA-2): at the earliest instant a calculated
value changes with time alone, and never later than it was already due."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.attributes.active import scheduled
from kindred.domain.calculated import DAY_MS, CalcSpec, CalcState
from kindred.domain.calculated_values import next_change
from kindred.domain.profile import Profile, WorkspaceProfile
from tests.unit.domain.test_calculated import BASE, Event, events, incremental, specs

windowed = st.builds(
    CalcSpec,
    kind=st.sampled_from(["count", "sum", "unique_list", "last_occurrence_timestamp"]),
    within_days=st.integers(1, 10),
)


def profile_of(states: dict[str, CalcState], due: int | None) -> Profile:
    workspace = WorkspaceProfile(first_seen_ms=BASE, last_seen_ms=BASE, calculated=states)
    return Profile(
        mpid=1,
        scope="s",
        created_ms=BASE,
        last_stored_ms=BASE,
        workspaces={1: workspace},
        audience_due_ms=due,
    )


@settings(max_examples=300)
@given(windowed | specs, events, st.integers(0, 60 * DAY_MS), st.integers(0, 30 * DAY_MS))
def test_a_states_next_change_stays_put_until_it_comes(
    spec: CalcSpec, evs: list[Event], later: int, wait: int
) -> None:
    """Seen from any instant before it, a state's next change is the same instant (and none
    stays none): a due time set from it holds until then."""
    now = BASE + later
    state = incremental(spec, evs, now, BASE)
    due = next_change(state, now)
    if due is None or now + wait < due:
        assert next_change(state, now + wait) == due


@settings(max_examples=300)
@given(
    st.lists(st.tuples(windowed | specs, events), max_size=4),
    st.none() | st.integers(0, 80 * DAY_MS),
    st.integers(0, 60 * DAY_MS),
)
def test_scheduling_only_brings_the_due_time_forward(
    histories: list[tuple[CalcSpec, list[Event]]], current: int | None, later: int
) -> None:
    """The profile is due at the earliest of its states' next changes and the time it was
    due already (one that has come stays: what it was due for is not done yet)."""
    now = BASE + later
    states = {f"s{i}": incremental(k, h, now, BASE) for i, (k, h) in enumerate(histories)}
    due = current if current is None else BASE + current
    instants = [at for s in states.values() if (at := next_change(s, now)) is not None]
    expected = min([*instants, *([] if due is None else [due])], default=None)
    assert scheduled(profile_of(states, due), now).audience_due_ms == expected
