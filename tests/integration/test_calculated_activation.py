"""Activation against batches applied by another process at the same moment: two Kindred
processes (two containers) on one SQLite store. The second loaded its definitions before
the first activated one, and applies a batch right after (well within its reload
interval); that batch is counted once, by the live path, and the batches before the
activation once, by the computation over the log."""

from __future__ import annotations

import json
from pathlib import Path

from kindred.attributes.definition import CalculatedDef
from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.domain.observation import Observation
from kindred.services.writes.commands import Accepted, IdentityCall
from kindred.wire.observe import observe
from tests.integration.plays import plays_of, send

PLAYS: dict[str, object] = {
    "calculation_type": "count",
    "event": {"event": "custom_event", "name": "Play"},
}


def test_a_batch_applied_elsewhere_right_after_activation_is_counted_once(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), env={})
    first, second = build(settings), build(settings)
    first.store.migrate()
    send(first, "before-1", plays=2)
    made = first.calculated.create(CalculatedDef(name="plays", workspace_id=1, draft=PLAYS))
    send(second, "warm-up", plays=0)  # its definitions loaded now: this one still a draft
    first.calculated.activate(made.id)
    send(second, "after-1", plays=3)  # the second process, its definitions 0 s old
    while not first.calculated.progress(made.id).is_calculated:
        first.calculated_backfill.run()
    progress = first.calculated.progress(made.id)
    # The batches logged before activation, read once; the later ones are not the run's.
    assert (progress.batches_read, progress.batches_total) == (2, 2)
    send(first, "after-2", plays=1)
    assert plays_of(first) == 6
    first.store.close()
    second.store.close()


def test_the_history_of_a_profile_merged_by_a_login_is_counted_once(tmp_path: Path) -> None:
    """A known profile's batches and an anonymous one's, logged under two MPIDs in one page
    of the log, then merged by an IDSync login: activation counts all four."""
    container = build(load_settings(None, data_dir=str(tmp_path), env={}))
    container.store.migrate()
    source = container.tenancy.input_named("demo-server")
    assert source is not None

    def play(request_id: str, who: dict[str, object]) -> int | None:
        body = json.dumps(
            {
                "environment": "production",
                "source_request_id": request_id,
                **who,
                "events": [
                    {
                        "event_type": "custom_event",
                        "data": {"event_name": "Play", "custom_event_type": "other"},
                    }
                ],
            }
        ).encode()
        now = container.clock.now_ms()
        return container.commands.run_all([Accepted(source, observe(body, source, now), body)])[
            0
        ].mpid

    known = play("k1", {"user_identities": {"customerid": "login-1"}})
    anonymous = play("a1", {"device_info": {"device_application_stamp": "stamp-1"}})
    assert known is not None
    assert anonymous not in {None, known}
    play("k2", {"user_identities": {"customerid": "login-1"}})
    play("a2", {"mpid": str(anonymous)})
    now = container.clock.now_ms()
    login = IdentityCall(
        kind="login",
        input=source,
        observation=Observation(
            received_ms=now,
            effective_ms=now,
            user_identities={"customer_id": "login-1"},
            device_identities={"device_application_stamp": "stamp-1"},
        ),
        previous_mpid=anonymous,
    )
    container.commands.run_all([login])
    merged = container.store.get_profile(anonymous)
    assert merged is not None
    assert merged.merged_into == known
    made = container.calculated.create(CalculatedDef(name="plays", workspace_id=1, draft=PLAYS))
    container.calculated.activate(made.id)
    while not container.calculated.progress(made.id).is_calculated:
        container.calculated_backfill.run()
    assert plays_of(container, "login-1") == 4
    container.store.close()


def computed(container: Container, def_id: int) -> None:
    while not container.calculated.progress(def_id).is_calculated:
        container.calculated_backfill.run()


def edited_while_a_run_reads_the_first(tmp_path: Path) -> tuple[Container, int, CalculatedDef]:
    """Three batches of a Play; `plays` activated (the definition as a computation run
    read it, returned), then edited to a 30-day window and activated again."""
    container = build(load_settings(None, data_dir=str(tmp_path), env={}))
    container.store.migrate()
    for n in range(3):
        send(container, f"before-{n}", plays=1)
    made = container.calculated.create(CalculatedDef(name="plays", workspace_id=1, draft=PLAYS))
    container.calculated.activate(made.id)
    stale = next(d for d in container.store.list_calculated() if d.id == made.id)
    within: dict[str, object] = {**PLAYS, "window": {"type": "within", "days": 30}}
    container.calculated.edit(made.id, {"draft": within})
    container.calculated.activate(made.id)
    return container, made.id, stale


def test_a_run_over_an_earlier_activation_does_not_finish_the_next_one(tmp_path: Path) -> None:
    """The definition is edited and activated again while a computation run over its first
    activation is under way: that run's progress is not taken for the new activation's."""
    container, plays, stale = edited_while_a_run_reads_the_first(tmp_path)
    container.calculated_backfill.advance(stale)  # the run that read the first activation
    computed(container, plays)
    send(container, "after", plays=1)
    assert plays_of(container) == 4
    container.store.close()


def test_activating_an_unchanged_active_definition_changes_nothing(tmp_path: Path) -> None:
    """Activating again what already computes neither starts a computation nor counts a
    batch twice."""
    container = build(load_settings(None, data_dir=str(tmp_path), env={}))
    container.store.migrate()
    send(container, "before", plays=1)
    made = container.calculated.create(CalculatedDef(name="plays", workspace_id=1, draft=PLAYS))
    active = container.calculated.activate(made.id)
    computed(container, made.id)
    send(container, "between", plays=2)
    assert container.calculated.activate(made.id).activated_ms == active.activated_ms
    assert container.calculated.progress(made.id).is_calculated
    computed(container, made.id)
    send(container, "after", plays=1)
    assert plays_of(container) == 4
    container.store.close()


def test_a_run_over_an_earlier_activation_writes_nothing_after_the_next_one(
    tmp_path: Path,
) -> None:
    """A run that read the first activation goes on after the edited definition was
    activated and computed: its pages change no profile (their states would be the first
    activation's, and a batch would then start them afresh, history lost)."""
    container, plays, stale = edited_while_a_run_reads_the_first(tmp_path)
    computed(container, plays)
    assert container.calculated_backfill.advance(stale) == 0
    send(container, "after", plays=1)
    assert plays_of(container) == 4
    container.store.close()
