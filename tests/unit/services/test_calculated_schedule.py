"""When a profile is due for the scheduler (CA-2): windowed values decay at the instant they
change, and a batch reads only the states it changed to keep that instant."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.calculated import DAY_MS, CalcSpec, CalcState, fold_values
from kindred.domain.calculated_values import next_change
from kindred.domain.profile import Profile, WorkspaceProfile
from kindred.services.calculated import scheduled
from tests.unit.domain.test_calculated import BASE, Event, events, incremental, specs

windowed = st.builds(
    CalcSpec,
    kind=st.sampled_from(["count", "sum", "unique_list", "last_occurrence_timestamp"]),
    within_days=st.integers(1, 10),
)
any_spec = windowed | specs


def profile_of(states: dict[str, CalcState], due: int | None = None) -> Profile:
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
@given(any_spec, events, st.integers(0, 60 * DAY_MS), st.integers(0, 30 * DAY_MS))
def test_a_states_next_change_stays_put_until_it_comes(
    spec: CalcSpec, evs: list[Event], later: int, wait: int
) -> None:
    """What reading only the changed states rests on: seen from any instant before it, a
    state's next change is the same instant (and none stays none)."""
    now = BASE + later
    state = incremental(spec, evs, now, BASE)
    due = next_change(state, now)
    if due is None or now + wait < due:
        assert next_change(state, now + wait) == due


@settings(max_examples=300)
@given(
    st.lists(st.tuples(any_spec, events), min_size=1, max_size=4),
    events,
    st.data(),
    st.integers(0, 40 * DAY_MS),
    st.integers(0, 20 * DAY_MS),
)
def test_scheduling_the_changed_states_is_never_late(
    histories: list[tuple[CalcSpec, list[Event]]],
    batch: list[Event],
    data: st.DataObject,
    first: int,
    wait: int,
) -> None:
    """A profile scheduled in full, then a batch folded into some of its states a while
    later: scheduling only those keeps it due no later than every state's next change."""
    then, now = BASE + first, BASE + first + wait
    states = {f"s{i}": incremental(k, h, then, BASE) for i, (k, h) in enumerate(histories)}
    before = scheduled(profile_of(states), then)
    changed = data.draw(st.sets(st.sampled_from(sorted(states))))
    folded = {
        name: fold_values(state, batch, now) if name in changed else state
        for name, state in states.items()
    }
    after = msgspec.structs.replace(
        before, workspaces={1: msgspec.structs.replace(before.workspaces[1], calculated=folded)}
    )
    due = scheduled(after, now, {1: changed}).audience_due_ms
    for state in folded.values():
        change = next_change(state, now)
        if change is not None:
            assert due is not None
            assert due <= change or due <= now  # an overdue profile: the scheduler's now
    full = scheduled(after, now).audience_due_ms
    assert (due is None) == (full is None)
