"""Activation sees the past (AUD-5, AUD-16), on every store: for random batches of events
with random timestamps and a random audience, the memberships after the audience is
activated (or an active one edited) once the batches are stored equal those of the same
audience active from the start; and for plain event criteria, both equal counting the
events themselves: only events from the audience's inputs, inside its own lookback and
the criterion's window, counted exactly."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import TupleRow

from kindred.audiences.definition import AudienceDef
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.ports import Store
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.jobs import AudienceBackfill, AudienceScheduler
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.write_path import write_path
from kindred.services.writes.commands import Accepted
from kindred.storage.memory import MemoryStore
from kindred.storage.postgres import PostgresStore
from kindred.storage.sqlite import SqliteStore
from kindred.wire.observe import observe
from tests.contract.conftest import _EMPTY_TABLES
from tests.fakes import FakeClock, NullMetrics, SequentialMpids

DAY = 86_400_000
NOW = 1_700_000_000_000
ACCOUNT = AccountPolicy(account_id=1)
WS1 = WorkspaceDef(workspace_id=1, name="one", account=ACCOUNT)
WS2 = WorkspaceDef(workspace_id=2, name="two", account=ACCOUNT)


def _input(name: str, workspace: WorkspaceDef) -> InputDef:
    return InputDef(
        name=name, workspace=workspace, source_type=SourceType.SERVER, api_key=name, api_secret="x"
    )


INPUTS = {"s": _input("s", WS1), "s2": _input("s2", WS1), "t": _input("t", WS2)}
TENANCY = Tenancy(
    org_id=1, workspaces={1: WS1, 2: WS2}, inputs_by_key=INPUTS, inputs_by_name=INPUTS
)
# The inputs of workspace 1: what an audience with no inputs named reads.
WS1_INPUTS = frozenset({"s", "s2"})


def _event(kind: str, timestamp: int) -> dict[str, Any]:
    if kind.startswith("play-") or kind == "stop":
        name = "Stop" if kind == "stop" else "Play"
        data: dict[str, Any] = {"event_name": name, "custom_event_type": "other"}
        if kind.startswith("play-"):
            data["custom_attributes"] = {"genre": kind[5:]}
        event_type = "custom_event"
    elif kind == "screen":
        event_type, data = "screen_view", {"screen_name": "Home"}
    else:
        action, category = kind.split(":")
        products = [{"id": "p1", "category": category, "price": 10.0}]
        event_type, data = (
            "commerce_event",
            {"product_action": {"action": action, "products": products}},
        )
    return {"event_type": event_type, "data": {**data, "timestamp_unixtime_ms": timestamp}}


KINDS = ["play-jazz", "play-rock", "stop", "screen", "add_to_cart:shoes", "purchase:shoes"]
KINDS += ["add_to_cart:hats", "purchase:hats"]

# A batch: customer, input, milliseconds since the one before, events (kind, age at arrival;
# a negative age is an event stamped ahead of the clock).
batches = st.tuples(
    st.sampled_from(["u1", "u2", "u3"]),
    st.sampled_from(["s", "s2", "t"]),
    st.integers(0, 3 * DAY),
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(-3_600_000, 60 * DAY)), min_size=1, max_size=6
    ),
)

counts = st.sampled_from(["at_least", "at_most", "exactly"]).flatmap(
    lambda op: st.integers(0, 7).map(lambda n: {op: n})
)
windows: st.SearchStrategy[dict[str, int]] = st.one_of(
    st.just({}), st.integers(1, 60).map(lambda d: {"within_days": d})
)


@st.composite
def plain(draw: st.DrawFn) -> dict[str, Any]:
    """A plain event criterion (its oracle below counts the events)."""
    kind = draw(st.sampled_from(["play", "screen", "commerce"]))
    base: dict[str, Any] = (
        {"event": "custom_event", "name": "play"}
        if kind == "play"
        else {"event": "screen_view"}
        if kind == "screen"
        else {"event": "commerce_event"}
    )
    return {**base, **draw(counts), **draw(windows)}


@st.composite
def conditioned(draw: st.DrawFn) -> dict[str, Any]:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        where = [{"attribute": "genre", "op": "equals", "value": draw(st.sampled_from(["jazz"]))}]
        criterion = {"event": "custom_event", "name": "Play", "where": where}
    elif choice == 1:
        category = draw(st.sampled_from(["shoes", "hats"]))
        where = [{"product": "category", "op": "equals", "value": category}]
        criterion = {"event": "commerce_event", "action": "purchase", "where": where}
    else:
        criterion = {"event": "commerce_event", "action": "add_to_cart"}
    return {**criterion, **draw(counts), **draw(windows)}


cart = st.builds(
    lambda days, wait: {"cart_abandonment": {"within_days": days, "wait_minutes": wait}},
    st.integers(2, 30),
    st.sampled_from([1, 60, 24 * 60]),
)
criteria = st.one_of(
    plain(),
    conditioned(),
    cart,
    st.lists(st.one_of(plain(), conditioned(), cart), min_size=2, max_size=3).flatmap(
        lambda items: st.sampled_from(["and", "or"]).map(lambda op: {op: items})
    ),
    st.one_of(plain(), conditioned()).map(lambda c: {"exclude": c}),
)
audiences = st.fixed_dictionaries(
    {
        "criteria": criteria,
        "lookback_days": st.integers(1, 90),
        "inputs": st.sampled_from([[], ["s"], ["s2"], ["s", "s2"]]),
    }
)


class World:
    """One store with the write path, the audience service and the background jobs."""

    def __init__(self, store: Store, *, stepping: bool = False) -> None:
        """`stepping`: each backfill run goes one profile further (to interleave batches)."""
        self.store = store
        self.clock = FakeClock(NOW)
        self.registry = AudienceRegistry(store, TENANCY)
        transactions = Transactions(store)
        self.service = AudienceService(store, transactions, self.registry, self.clock)
        self.ingest = write_path(
            store, SequentialMpids(), NullMetrics(), INPUTS.__getitem__, self.registry
        )
        self.backfill = AudienceBackfill(store, transactions, self.registry, self.clock, chunk=2)
        if stepping:
            self.backfill = AudienceBackfill(
                store, transactions, self.registry, self.clock, chunks_per_run=1, chunk=1
            )
        self.scheduler = AudienceScheduler(store, transactions, self.registry, self.clock)

    def audience(self, spec: dict[str, Any]) -> int:
        made = self.service.create(AudienceDef(name="a", workspaces=[1], **spec))
        self.service.set_status(made.id, "active")
        return made.id

    def send(self, customer: str, source: str, step: int, events: list[tuple[str, int]]) -> None:
        self.clock.advance(step)
        now = self.clock.now_ms()
        batch = {
            "user_identities": {"customer_id": customer},
            "events": [_event(kind, now - age) for kind, age in events],
        }
        body = msgspec.json.encode(batch)
        source_input = INPUTS[source]
        (outcome,) = self.ingest.run_all(
            [Accepted(source_input, observe(body, source_input, now), body)]
        )
        assert outcome.status == "applied", outcome

    def settle(self) -> None:
        """Every backfill to its end, then the scheduler."""
        for _ in range(10_000):
            pending = [
                a
                for a in self.store.list_audiences()
                if a.status == "active"
                and (a.backfill_scope is not None or a.history_from is not None)
            ]
            if not pending:
                break
            self.backfill.run()
        else:
            raise AssertionError("the backfill did not finish")
        self.scheduler.run()

    def members(self, audience_id: int) -> set[str]:
        found = set()
        for mpid in self.service.members_at(audience_id, self.clock.now_ms()):
            profile = self.store.get_profile(mpid)
            assert profile is not None
            found.add(profile.user_identities["customer_id"].value)
        held = set()
        for mpid in range(1, 4):  # SequentialMpids: one profile per customer
            profile = self.store.get_profile(mpid)
            if profile is not None and audience_id in profile.memberships:
                held.add(profile.user_identities["customer_id"].value)
        assert held == found  # the membership log and the profiles agree
        return found


def _oracle(
    script: list[tuple[str, str, int, list[tuple[str, int]]]], spec: dict[str, Any]
) -> set[str] | None:
    """Who a plain event criterion admits, from the events themselves; None for others."""
    node = spec["criteria"]
    if "event" not in node or "where" in node or "action" in node:
        return None
    inputs = frozenset(spec["inputs"]) or WS1_INPUTS
    days = [d for d in (node.get("within_days"), spec["lookback_days"]) if d]
    clock, stamped = NOW, []
    for customer, source, step, events in script:
        clock += step
        stamped += [(customer, source, kind, clock - age) for kind, age in events]
    now, since = clock, clock - min(days) * DAY
    op, wanted = next((k, v) for k, v in node.items() if k in ("at_least", "at_most", "exactly"))
    kinds = {
        "custom_event": ("play-jazz", "play-rock"),
        "screen_view": ("screen",),
        "commerce_event": tuple(k for k in KINDS if ":" in k),
    }[node["event"]]
    admitted = set()
    # An audience counts only profiles seen in its workspaces (AUD-1): a customer whose
    # batches all came through workspace 2's input is in no workspace-1 audience.
    seen = {c for c, source, *_ in script if INPUTS[source].workspace is WS1}
    for customer in seen:
        count = sum(
            1
            for c, source, kind, t in stamped
            if c == customer and source in inputs and kind in kinds and since <= t <= now
        )
        if {"at_least": count >= wanted, "at_most": count <= wanted, "exactly": count == wanted}[
            op
        ]:
            admitted.add(customer)
    return admitted


def _active_from_the_start(
    store: Store, script: list[tuple[str, str, int, list[tuple[str, int]]]], spec: dict[str, Any]
) -> set[str]:
    """The members of the audience active before any of the batches arrives."""
    live = World(store)
    audience = live.audience(spec)
    for batch in script:
        live.send(*batch)
    live.settle()
    return live.members(audience)


@contextmanager
def _stores(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """A maker of empty stores of the backend (PostgreSQL: the session's, emptied)."""
    if backend == "postgres":
        pg: PostgresStore = request.getfixturevalue("pg_store")
        admin: psycopg.Connection[TupleRow] = request.getfixturevalue("pg_admin")

        def emptied() -> Store:
            admin.execute(_EMPTY_TABLES)
            return pg

        yield emptied
        return
    with tempfile.TemporaryDirectory() as tmp:
        made: list[Store] = []

        def fresh() -> Store:
            store: Store = (
                MemoryStore() if backend == "memory" else SqliteStore(Path(tmp) / f"{len(made)}.db")
            )
            store.migrate()
            made.append(store)
            return store

        try:
            yield fresh
        finally:
            for store in made:
                store.close()


@pytest.mark.parametrize(
    "backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(batches, min_size=1, max_size=8), audiences, st.booleans())
def test_activation_over_stored_events_equals_being_active_from_the_start(
    backend: str,
    request: pytest.FixtureRequest,
    script: list[tuple[str, str, int, list[tuple[str, int]]]],
    spec: dict[str, Any],
    edited: bool,
) -> None:
    with _stores(backend, request) as stores:
        from_start = _active_from_the_start(stores(), script, spec)

        later = World(stores())
        if edited:  # active all along with other criteria, edited once the batches are in
            audience = later.audience(
                {"criteria": {"event": "screen_view", "at_least": 2}, "lookback_days": 3}
            )
        for batch in script:
            later.send(*batch)
        if edited:
            current = later.service.get(audience)
            later.service.update(audience, msgspec.structs.replace(current, **spec))
        else:
            audience = later.audience(spec)
        later.settle()
        assert later.members(audience) == from_start, (script, spec, edited)
    expected = _oracle(script, spec)
    if expected is not None:
        assert from_start == expected


@pytest.mark.parametrize(
    "backend", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(batches, min_size=1, max_size=8), audiences, st.integers(0, 8))
def test_batches_arriving_while_the_activation_runs_count_as_if_it_had_been_active(
    backend: str,
    request: pytest.FixtureRequest,
    script: list[tuple[str, str, int, list[tuple[str, int]]]],
    spec: dict[str, Any],
    stored: int,
) -> None:
    """The first `stored` batches are in the log when the audience is activated; each of
    the others arrives after one more step of its activation's pass (a profile a step)."""
    with _stores(backend, request) as stores:
        from_start = _active_from_the_start(stores(), script, spec)

        later = World(stores(), stepping=True)
        for batch in script[:stored]:
            later.send(*batch)
        audience = later.audience(spec)
        for batch in script[stored:]:
            later.backfill.run()
            later.send(*batch)
        later.settle()
        assert later.members(audience) == from_start, (script, spec, stored)
