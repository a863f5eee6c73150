"""A windowed calculated value decays on schedule whatever else set the profile's due time
(CA-2): the due time is shared with audiences, and an audience's evaluation (a batch's, the
scheduler's or an activation's backfill) must not push it past a value's next change."""

from __future__ import annotations

from pathlib import Path

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import build
from kindred.config import load_settings
from kindred.domain.calculated import DAY_MS
from tests.fakes import FakeClock
from tests.integration.plays import plays_of, send, stored

CUSTOMER = "decay-1"
# 01:00 UTC of a day: the window's day leaves it at midnight, 7 days on.
START = 1_700_000_000_000 // DAY_MS * DAY_MS + 3_600_000


def test_an_audience_backfill_keeps_the_profile_due_when_a_window_moves(tmp_path: Path) -> None:
    clock = FakeClock(START)
    container = build(load_settings(None, data_dir=str(tmp_path), env={}), clock=clock)
    container.store.migrate()
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
    send(container, "play-1", 1, customer=CUSTOMER, attributes={"tier": "gold"})
    leaves = (START // DAY_MS + 7) * DAY_MS  # the Play's day leaves the window
    assert stored(container, CUSTOMER).audience_due_ms == leaves
    # A timed audience whose own next change is ten years away, computed over the profiles
    # already stored (its backfill re-evaluates this one, due time and all).
    gold = container.audiences.create(
        AudienceDef(
            name="gold",
            workspaces=[1],
            criteria={
                "and": [
                    {"attribute": "tier", "op": "equals", "value": "gold"},
                    {"first_seen": "within_last_days", "value": 3650},
                ]
            },
        )
    )
    container.audiences.set_status(gold.id, "active")
    while container.audiences.metrics(gold.id).backfill_running:
        container.audience_backfill.run()
    assert stored(container, CUSTOMER).audience_due_ms == leaves
    clock.advance(leaves - START + 60_000)
    container.audience_schedule.run()
    profile = stored(container, CUSTOMER)
    assert plays_of(container, CUSTOMER) == 0
    assert gold.id in profile.memberships
    container.store.close()
