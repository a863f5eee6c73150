"""Standard audiences (AUD-13) on every store: a calculation over the whole retained event
log admits exactly the profiles counting the events directly admits (no lookback cap),
batches never change it, a new calculation replaces its members (exits logged), and a
real-time audience nests it by its stored membership."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.services.audiences.standard import StandardAudiences
from kindred.services.forwarding.transactions import Transactions
from tests.contract.test_audience_history_contract import (
    DAY,
    INPUTS,
    KINDS,
    NOW,
    WS1,
    World,
    _stores,
    batches,
    counts,
    windows,
)

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class StandardWorld(World):
    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.standard = StandardAudiences(
            store, Transactions(store), self.registry, self.clock, log_page=3, chunk=2
        )

    def standard_audience(self, criteria: dict[str, Any], inputs: list[str]) -> int:
        made = self.service.create(
            AudienceDef(
                name="std", workspaces=[1], inputs=inputs, criteria=criteria, kind="standard"
            )
        )
        return made.id

    def calculate(self, audience_id: int) -> AudienceDef:
        self.service.calculate(audience_id)
        for _ in range(100):
            self.standard.run()
            if self.service.get(audience_id).calc_requested_ms is None:
                return self.service.get(audience_id)
        raise AssertionError("the calculation did not finish")


@st.composite
def plain(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["play", "screen", "commerce"]))
    base: dict[str, Any] = (
        {"event": "custom_event", "name": "play"}
        if kind == "play"
        else {"event": "screen_view"}
        if kind == "screen"
        else {"event": "commerce_event"}
    )
    return {**base, **draw(counts), **draw(windows)}


def _counted(
    script: list[tuple[str, str, int, list[tuple[str, int]]]],
    node: dict[str, Any],
    inputs: list[str],
) -> set[str]:
    """Who the criterion admits, counting every event ever sent (no lookback)."""
    sources = frozenset(inputs) or frozenset({"s", "s2"})
    clock, stamped = NOW, []
    for customer, source, step, events in script:
        clock += step
        stamped += [(customer, source, kind, clock - age) for kind, age in events]
    since = clock - node["within_days"] * DAY if "within_days" in node else None
    op, wanted = next((k, v) for k, v in node.items() if k in ("at_least", "at_most", "exactly"))
    kinds = {
        "custom_event": ("play-jazz", "play-rock"),
        "screen_view": ("screen",),
        "commerce_event": tuple(k for k in KINDS if ":" in k),
    }[node["event"]]
    seen = {c for c, source, *_ in script if INPUTS[source].workspace is WS1}
    admitted = set()
    for customer in seen:
        count = sum(
            1
            for c, source, kind, t in stamped
            if c == customer
            and source in sources
            and kind in kinds
            and t <= clock
            and (since is None or since <= t)
        )
        if {"at_least": count >= wanted, "at_most": count <= wanted, "exactly": count == wanted}[
            op
        ]:
            admitted.add(customer)
    return admitted


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(batches, min_size=1, max_size=8),
    plain(),
    st.sampled_from([[], ["s"], ["s2"], ["s", "s2"]]),
)
def test_calculation_equals_counting_the_events(
    backend: str,
    request: pytest.FixtureRequest,
    script: list[tuple[str, str, int, list[tuple[str, int]]]],
    criterion: dict[str, Any],
    inputs: list[str],
) -> None:
    with _stores(backend, request) as stores:
        world = StandardWorld(stores())
        for batch in script:
            world.send(*batch)
        audience = world.standard_audience(criterion, inputs)
        done = world.calculate(audience)
        assert world.members(audience) == _counted(script, criterion, inputs)
        assert done.computed_ms == world.clock.now_ms()
        assert done.expires_ms == done.computed_ms + 30 * DAY


@pytest.mark.parametrize("backend", BACKENDS)
def test_replaced_on_calculation_only_and_nested(
    backend: str, request: pytest.FixtureRequest
) -> None:
    with _stores(backend, request) as stores:
        world = StandardWorld(stores())
        world.send("u1", "s", 0, [("screen", 100 * DAY), ("screen", 200 * DAY)])
        world.send("u2", "s", 1, [("screen", DAY)])
        # Older than any lookback a real-time audience may have: still counted.
        std = world.standard_audience({"event": "screen_view", "at_least": 2}, [])
        outer = world.audience(
            {"criteria": {"and": [{"audience": std, "member": True}]}, "lookback_days": 30}
        )
        world.settle()
        assert world.members(outer) == set()
        world.calculate(std)
        assert world.members(std) == {"u1"}
        assert world.members(outer) == {"u1"}  # nested: re-evaluated with the calculation
        # Batches do not change a standard audience; its members stay through them.
        world.send("u2", "s", 1, [("screen", 0)])
        world.send("u1", "s", 1, [("play-jazz", 0)])
        world.settle()
        assert world.members(std) == {"u1"}
        assert world.members(outer) == {"u1"}
        # A new calculation replaces them.
        world.clock.advance(31 * DAY)
        assert world.service.metrics(std).expired  # expired: still counted, marked so
        assert world.members(std) == {"u1"}
        world.service.update(
            std,
            AudienceDef(
                name="std",
                workspaces=[1],
                criteria={"event": "screen_view", "at_least": 2, "within_days": 40},
                kind="standard",
            ),
        )
        world.calculate(std)
        assert world.members(std) == {"u2"}
        assert world.members(outer) == {"u2"}
        assert not world.service.metrics(std).expired
        log = world.service.membership_changes(std, world.clock.now_ms(), 100)
        assert [(c.entered, c.reason) for c in log] == [
            (True, "calculated"),
            (False, "calculated"),
            (True, "calculated"),
        ]


def test_only_a_standard_audience_is_calculated(request: pytest.FixtureRequest) -> None:
    with _stores("memory", request) as stores:
        world = StandardWorld(stores())
        real_time = world.audience({"criteria": {"event": "screen_view"}})
        with pytest.raises(Exception, match="standard"):
            world.service.calculate(real_time)
