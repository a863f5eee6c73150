"""A windowed calculated value decays on schedule whatever else touches the profile's due
time (CA-2). The time is shared with audiences: an audience's evaluation (a batch's, the
scheduler's or an audience's backfill) must not push it past a value's next change, and
once the time has come it stays until what was due is done, values and audiences alike.
On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.domain.calculated import DAY_MS
from tests.fakes import FakeClock
from tests.integration.plays import plays_of, send, stored

CUSTOMER = "decay-1"
# 01:00 UTC of a day: a Play's day leaves a 7-day window at midnight, 7 days on.
START = 1_700_000_000_000 // DAY_MS * DAY_MS + 3_600_000
LEAVES = (START // DAY_MS + 7) * DAY_MS
GOLD_FOR_TEN_YEARS: dict[str, object] = {
    "and": [
        {"attribute": "tier", "op": "equals", "value": "gold"},
        {"first_seen": "within_last_days", "value": 3650},
    ]
}


def started(
    tmp_path: Path, store_url: str | None = None, config: Path | None = None
) -> tuple[Container, FakeClock]:
    """A container on a fresh store (SQLite in `tmp_path`, or PostgreSQL at `store_url`)."""
    clock = FakeClock(START)
    env = {} if store_url is None else {"KINDRED_STORE_URL": store_url}
    container = build(load_settings(config, data_dir=str(tmp_path), env=env), clock=clock)
    container.store.migrate()
    return container, clock


def activate_plays(container: Container) -> int:
    """`plays`: the count of Play events within 7 days, computed over what is stored."""
    plays = container.calculated.create(
        CalculatedDef(
            name="plays",
            workspace_id=1,
            draft={
                "calculation_type": "count",
                "event": {"event": "custom_event", "name": "Play"},
                "window": {"type": "within", "days": 7},
            },
        )
    )
    container.calculated.activate(plays.id)
    while not container.calculated.progress(plays.id).is_calculated:
        container.calculated_backfill.run()
    return plays.id


def activate_audience(
    container: Container, criteria: dict[str, object], workspaces: tuple[int, ...] = (1,)
) -> int:
    """An audience, active and computed over the profiles stored (its backfill re-evaluates
    each, due time and all)."""
    made = container.audiences.create(
        AudienceDef(name=f"timed {len(workspaces)}", workspaces=list(workspaces), criteria=criteria)
    )
    container.audiences.set_status(made.id, "active")
    while container.audiences.metrics(made.id).backfill_running:
        container.audience_backfill.run()
    return made.id


def test_an_audience_backfill_keeps_the_profile_due_when_a_window_moves(
    tmp_path: Path, store_url: str | None
) -> None:
    container, clock = started(tmp_path, store_url)
    activate_plays(container)
    send(container, "play-1", 1, customer=CUSTOMER, attributes={"tier": "gold"})
    assert stored(container, CUSTOMER).audience_due_ms == LEAVES
    gold = activate_audience(container, GOLD_FOR_TEN_YEARS)  # its own next change: 10 years
    assert stored(container, CUSTOMER).audience_due_ms == LEAVES
    clock.advance(LEAVES - START + 60_000)
    container.audience_schedule.run()
    assert plays_of(container, CUSTOMER) == 0
    assert gold in stored(container, CUSTOMER).memberships
    container.store.close()


def test_an_audience_backfill_leaves_an_overdue_profile_to_the_scheduler(
    tmp_path: Path, store_url: str | None
) -> None:
    container, clock = started(tmp_path, store_url)
    activate_plays(container)
    send(container, "play-1", 1, customer=CUSTOMER, attributes={"tier": "gold"})
    clock.advance(LEAVES - START + 60_000)  # the window's change is due; no scheduler yet
    activate_audience(container, GOLD_FOR_TEN_YEARS)
    assert stored(container, CUSTOMER).audience_due_ms == LEAVES
    container.audience_schedule.run()
    assert plays_of(container, CUSTOMER) == 0
    container.store.close()


def test_a_batch_to_another_workspace_brings_every_value_up_to_date(
    tmp_path: Path, store_url: str | None
) -> None:
    config = Path(__file__).with_name("two-workspaces.toml")
    container, clock = started(tmp_path, store_url, config)
    activate_plays(container)
    activate_audience(container, {"first_seen": "within_last_days", "value": 3650}, (2,))
    send(container, "play-1", 1, customer=CUSTOMER)
    clock.advance(LEAVES - START + 60_000)  # workspace 1's change is due; no scheduler yet
    send(container, "second-1", 0, customer=CUSTOMER, input_name="second-server")
    assert plays_of(container, CUSTOMER) == 0
    due = stored(container, CUSTOMER).audience_due_ms
    assert due is not None
    assert due > clock.now_ms()  # every audience evaluated: on to the audience's next change
    container.store.close()


def test_an_activation_leaves_a_due_audience_exit_to_the_scheduler(
    tmp_path: Path, store_url: str | None
) -> None:
    container, clock = started(tmp_path, store_url)
    recent = activate_audience(container, {"first_seen": "within_last_days", "value": 1})
    send(container, "play-1", 1, customer=CUSTOMER)
    assert recent in stored(container, CUSTOMER).memberships
    clock.advance(DAY_MS + 60_000)  # the audience exit is due; no scheduler yet
    activate_plays(container)  # saves the profile with its new state and due time
    container.audience_schedule.run()
    assert recent not in stored(container, CUSTOMER).memberships
    container.store.close()


def test_the_scheduler_drops_a_deleted_definitions_value(
    tmp_path: Path, store_url: str | None
) -> None:
    container, clock = started(tmp_path, store_url)
    plays = activate_plays(container)
    send(container, "play-1", 1, customer=CUSTOMER)
    container.calculated.delete(plays)
    clock.advance(LEAVES - START + 60_000)
    container.audience_schedule.run()
    workspace = stored(container, CUSTOMER).workspaces[1]
    assert "plays" not in workspace.attributes
    assert "plays" not in workspace.calculated
    container.store.close()


def test_a_scheduler_elsewhere_keeps_a_definition_just_edited(tmp_path: Path) -> None:
    """Process B's scheduler loaded its definitions a moment before process A edited one
    (7 days to 30) and computed it again: B works with the definitions as of its own
    transaction, so it keeps the state A computed."""
    first, clock = started(tmp_path)  # two processes on one SQLite store
    second = build(load_settings(None, data_dir=str(tmp_path), env={}), clock=clock)
    plays = activate_plays(first)
    send(first, "play-1", 1, customer=CUSTOMER)
    clock.advance(LEAVES - START - 1000)
    send(second, "warm-up", 0, customer="other-1")  # its definitions loaded: plays over 7 days
    first.calculated.edit(
        plays,
        {
            "draft": {
                "calculation_type": "count",
                "event": {"event": "custom_event", "name": "Play"},
                "window": {"type": "within", "days": 30},
            }
        },
    )
    first.calculated.activate(plays)
    while not first.calculated.progress(plays).is_calculated:
        first.calculated_backfill.run()
    clock.advance(1500)  # the 7-day window's change has come; the 30-day one has not
    second.audience_schedule.run()
    send(first, "play-2", 1, customer=CUSTOMER)
    assert plays_of(first, CUSTOMER) == 2
    first.store.close()
    second.store.close()
