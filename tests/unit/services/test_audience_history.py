"""An audience's event history (AUD-5, AUD-16): its own lookback whatever other audiences
are active, exact frequencies at any count, only events from its inputs, and the stored
events counted when it is activated."""

from __future__ import annotations

from typing import Any

import msgspec

from kindred.audiences.definition import AudienceDef
from kindred.domain.stamps import stamped_events
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.jobs import AudienceBackfill, AudienceScheduler
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.write_path import write_path
from kindred.services.writes.commands import Accepted
from kindred.storage.memory import MemoryStore
from kindred.wire.observe import observe
from tests.fakes import FakeClock, NullMetrics, SequentialMpids

DAY = 86_400_000
NOW = 1_700_000_000_000
ACCOUNT = AccountPolicy(account_id=1)
WS1 = WorkspaceDef(workspace_id=1, name="one", account=ACCOUNT)
WS2 = WorkspaceDef(workspace_id=2, name="two", account=ACCOUNT)
INPUTS = {
    name: InputDef(
        name=name, workspace=ws, source_type=SourceType.SERVER, api_key=name, api_secret="x"
    )
    for name, ws in (("web", WS1), ("app", WS1), ("other", WS2))
}
TENANCY = Tenancy(
    org_id=1, workspaces={1: WS1, 2: WS2}, inputs_by_key=INPUTS, inputs_by_name=INPUTS
)


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.clock = FakeClock(NOW)
        self.registry = AudienceRegistry(self.store, TENANCY)
        transactions = Transactions(self.store)
        self.service = AudienceService(self.store, transactions, self.registry, self.clock)
        self.ingest = write_path(
            self.store, SequentialMpids(), NullMetrics(), INPUTS.__getitem__, self.registry
        )
        self.backfill = AudienceBackfill(self.store, transactions, self.registry, self.clock)
        self.scheduler = AudienceScheduler(self.store, transactions, self.registry, self.clock)

    def audience(self, criteria: dict[str, Any], **more: Any) -> int:
        made = self.service.create(AudienceDef(name="a", workspaces=[1], criteria=criteria, **more))
        self.service.set_status(made.id, "active")
        return made.id

    def plays(
        self, customer: str, ages_ms: list[int], source: str = "web", name: str = "Play"
    ) -> None:
        now = self.clock.now_ms()
        events = [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": name,
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": now - age,
                },
            }
            for age in ages_ms
        ]
        body = msgspec.json.encode({"user_identities": {"customer_id": customer}, "events": events})
        item = INPUTS[source]
        (outcome,) = self.ingest.run_all([Accepted(item, observe(body, item, now), body)])
        assert outcome.status == "applied"

    def settle(self) -> None:
        while any(
            a.status == "active" and (a.backfill_scope is not None or a.history_from is not None)
            for a in self.store.list_audiences()
        ):
            self.backfill.run()
        self.scheduler.run()

    def members(self, audience_id: int) -> list[int]:
        return self.service.members_at(audience_id, self.clock.now_ms())


PLAYED = {"event": "custom_event", "name": "Play"}


def test_an_event_older_than_an_audience_s_lookback_never_counts_for_it() -> None:
    """A 6-day-old play counts in a 90-day audience and not in a 5-day one, both active."""
    world = World()
    short = world.audience(PLAYED, lookback_days=5)
    long = world.audience(PLAYED, lookback_days=90)
    world.plays("u1", [6 * DAY])
    world.plays("u2", [4 * DAY])
    assert world.members(short) == [2]
    assert world.members(long) == [1, 2]
    world.clock.advance(DAY + 1)  # u2's play is now 5 days and a moment old
    world.scheduler.run()
    assert world.members(short) == []
    assert world.members(long) == [1, 2]


def test_frequencies_are_exact_beyond_two_hundred() -> None:
    world = World()
    at_least = world.audience({**PLAYED, "at_least": 201})
    exactly = world.audience({**PLAYED, "exactly": 250})
    at_most = world.audience({**PLAYED, "at_most": 249, "within_days": 7})
    world.plays("u1", [n * 60_000 for n in range(150)])
    assert world.members(at_least) == []
    world.plays("u1", [n * 60_000 + 1 for n in range(100)])
    assert world.members(at_least) == [1]
    assert world.members(exactly) == [1]
    assert world.members(at_most) == []
    world.plays("u1", [1])
    assert world.members(exactly) == []
    world.clock.advance(7 * DAY)  # the oldest of the 251 leave the 7-day window
    world.scheduler.run()
    assert world.members(at_most) == [1]
    profile = world.store.get_profile(1)
    assert profile is not None
    assert max(len(times) for times in profile.event_times.values()) <= 251


def test_event_criteria_read_only_the_audience_s_inputs() -> None:
    world = World()
    from_web = world.audience(PLAYED, inputs=["web"])
    from_workspace = world.audience(PLAYED)  # no inputs named: workspace 1's
    world.plays("u1", [0], source="app")
    world.plays("u2", [0], source="web")
    world.plays("u3", [0], source="other")  # workspace 2's input
    assert world.members(from_web) == [2]
    assert world.members(from_workspace) == [1, 2]


def test_activation_counts_the_stored_events_inside_its_lookback() -> None:
    world = World()
    world.plays("u1", [n * DAY for n in range(10)])  # ten plays, one a day
    world.plays("u2", [20 * DAY, 21 * DAY])
    world.plays("u1", [0], source="other")
    often = world.audience({**PLAYED, "at_least": 8}, lookback_days=9)
    assert world.store.list_audiences()[0].history_to == 3  # the batches logged before it
    lately = world.audience({**PLAYED, "within_days": 30, "exactly": 2})
    world.plays("u3", [0])  # live, while they are computed: a new profile, evaluated at once
    assert world.members(often) == []
    world.settle()
    assert world.members(often) == [1]  # nine plays inside 9 days
    assert world.members(lately) == [2]
    world.service.update(
        often,
        msgspec.structs.replace(world.service.get(often), lookback_days=5),
    )
    world.settle()
    assert world.members(often) == []  # edited: five inside 5 days
    log = world.store.membership_log(audience_id=often, mpid=None, until_ms=2**62, limit=10)
    assert [(c.mpid, c.entered) for c in log] == [(1, True), (1, False)]


def test_activation_reads_names_however_the_stored_json_spells_them() -> None:
    """A stored batch is read only when its text may hold the criteria's names, and of it
    only the events whose own text may: a name JSON spells with escapes still counts."""
    world = World()
    world.plays("u1", [DAY, 2 * DAY], name="Play/Pause")
    event = (
        b'{"event_type": "custom_event", "data": {"event_name": "%s",'
        b' "custom_event_type": "other", "timestamp_unixtime_ms": %d}}'
    )
    for customer, name in ((b"u2", b"Play\\/Pause"), (b"u3", b"\\u0050lay")):
        events = b",".join(event % (n, NOW - DAY) for n in (b"Skip", name))
        body = b'{"user_identities": {"customer_id": "%s"}, "events": [%s]}' % (customer, events)
        source = INPUTS["web"]
        (outcome,) = world.ingest.run_all([Accepted(source, observe(body, source, NOW), body)])
        assert outcome.status == "applied"
    slashed = world.audience({**PLAYED, "name": "play/pause", "at_least": 1})
    escaped = world.audience({**PLAYED, "at_least": 1})
    skipped = world.audience({**PLAYED, "name": "Skip", "at_least": 1})
    world.settle()
    assert world.members(slashed) == [1, 2]
    assert world.members(escaped) == [3]
    assert world.members(skipped) == [2, 3]


def test_an_applied_batch_is_logged_with_its_event_stamps_and_an_unresolved_one_without() -> None:
    """What the activation reads instead of the body is written by ingest itself."""
    world = World()
    world.plays("u1", [3 * DAY, DAY])
    now = world.clock.now_ms()
    install = [{"event_type": "first_run", "data": {"timestamp_unixtime_ms": now - 5}}]
    item = INPUTS["web"]
    for identities, expected in (({"customer_id": "u1"}, "applied"), ({}, "unresolved")):
        body = msgspec.json.encode({"user_identities": identities, "events": install})
        (outcome,) = world.ingest.run_all([Accepted(item, observe(body, item, now), body)])
        assert outcome.status == expected
    plays, installed, unresolved = world.store.read_log(0, 10)
    assert plays.event_stamps is not None
    assert stamped_events(plays.event_stamps, now) == [
        ("custom_event", "Play", now - 3 * DAY),
        ("custom_event", "Play", now - DAY),
    ]
    assert installed.event_stamps is not None
    assert stamped_events(installed.event_stamps, now) == [("install", None, now - 5)]
    assert unresolved.status == "unresolved"
    assert unresolved.event_stamps is None
