"""Shadow edits (BEY-4) on every store: for random batches (some arriving while the shadow
is computed) and two random definitions, promoting after the preview changes exactly the
previewed entering and leaving profiles, and leaves the audience with the members it would
have had with the new definition active from the start; discarding changes nothing. The
shadow itself is kept on the audience's definition and survives each store's round trip."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef, ShadowEdit, ShadowPreview
from kindred.domain.errors import Conflict
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, Tenancy, WorkspaceDef
from kindred.ports import Store
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.jobs import AudienceBackfill
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.audiences.shadows import REASON, ShadowEdits
from kindred.services.forwarding.transactions import Transactions
from kindred.services.write_path import write_path
from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe
from tests.contract.test_audience_history_contract import (
    NOW,
    World,
    _stores,
    audiences,
    batches,
)
from tests.fakes import FakeClock, NullMetrics, SequentialMpids

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
Script = list[tuple[str, str, int, list[tuple[str, int]]]]


class ShadowWorld(World):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.shadows = ShadowEdits(
            store,
            Transactions(store),
            self.registry,
            self.service,
            self.clock,
            sample=1_000,
            chunk=2,
            log_page=3,
            pages_per_run=2,
            refresh_after_ms=0,
        )

    def until_quiet(self) -> None:
        """Run the shadow job until it has nothing left to do (ready and fresh)."""
        for _ in range(10_000):
            if self.shadows.run() == 0:
                return
        raise AssertionError("the shadow job did not settle")

    def log_of(self, audience_id: int) -> list[tuple[int, bool, str]]:
        return [
            (c.mpid, c.entered, c.reason)
            for c in self.store.membership_log(
                audience_id=audience_id, mpid=None, until_ms=2**62, limit=100_000
            )
        ]


settings_ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("backend", BACKENDS)
@settings_
@given(
    st.tuples(
        st.lists(batches, min_size=0, max_size=6),
        st.lists(batches, min_size=0, max_size=4),
        st.integers(0, 3),
    ),
    audiences,
    audiences,
)
def test_promotion_changes_exactly_the_previewed_profiles(
    backend: str,
    request: pytest.FixtureRequest,
    scripts: tuple[Script, Script, int],
    old: dict[str, Any],
    new: dict[str, Any],
) -> None:
    """`scripts`: the batches before the shadow starts, those while it is computed, and
    how many steps of the shadow's job run after each of the latter."""
    before, during, steps_between = scripts
    with _stores(backend, request) as stores:
        world = ShadowWorld(stores())
        audience = world.audience(old)
        for batch in before:
            world.send(*batch)
        world.settle()
        current = world.service.get(audience)
        world.shadows.start(audience, msgspec.structs.replace(current, **new))
        # Live batches while the shadow folds and decides: the old definition keeps serving.
        for batch in during:
            world.send(*batch)
            for _ in range(steps_between):
                world.shadows.run()
        world.scheduler.run()
        world.until_quiet()
        serving = world.members(audience)
        view = world.shadows.show(audience)
        assert view.status == "ready"
        logged = len(world.log_of(audience))

        promotion = world.shadows.promote(audience)

        moved = world.log_of(audience)[logged:]
        assert all(reason == REASON for *_, reason in moved)
        entered = {str(m) for m, inside, _ in moved if inside}
        left = {str(m) for m, inside, _ in moved if not inside}
        assert entered == set(view.entering_sample), (
            before,
            during,
            old,
            new,
            steps_between,
            moved,
            view,
        )
        assert left == set(view.leaving_sample)
        assert (promotion.entered, promotion.left) == (view.entering, view.leaving)
        assert len(moved) == len(entered) + len(left)  # each once
        promoted = world.service.get(audience)
        assert promoted.criteria == new["criteria"]
        assert promoted.shadow is None
        after = world.members(audience)

        # The same batches with the new definition active from the start.
        oracle = ShadowWorld(stores())
        fresh = oracle.audience(new)
        for batch in [*before, *during]:
            oracle.send(*batch)
        oracle.settle()
        assert after == oracle.members(fresh), (before, during, old, new)
        # Until the promotion the old definition served, live batches included.
        served = ShadowWorld(stores())
        kept = served.audience(old)
        for batch in [*before, *during]:
            served.send(*batch)
        served.settle()
        assert serving == served.members(kept)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(batches, min_size=1, max_size=6), audiences, audiences)
def test_discard_changes_nothing(
    backend: str,
    request: pytest.FixtureRequest,
    script: Script,
    old: dict[str, Any],
    new: dict[str, Any],
) -> None:
    with _stores(backend, request) as stores:
        world = ShadowWorld(stores())
        audience = world.audience(old)
        for batch in script:
            world.send(*batch)
        world.settle()
        members, log = world.members(audience), world.log_of(audience)
        definition = world.service.get(audience)
        world.shadows.start(audience, msgspec.structs.replace(definition, **new))
        world.until_quiet()
        world.shadows.discard(audience)
        world.until_quiet()
        assert world.members(audience) == members
        assert world.log_of(audience) == log
        kept = world.service.get(audience)
        assert kept.shadow is None
        assert (kept.criteria, kept.updated_ms) == (definition.criteria, definition.updated_ms)


@pytest.mark.parametrize("backend", BACKENDS)
def test_not_ready_is_refused_and_a_direct_edit_voids_the_shadow(
    backend: str, request: pytest.FixtureRequest
) -> None:
    with _stores(backend, request) as stores:
        world = ShadowWorld(stores())
        audience = world.audience({"criteria": {"event": "screen_view", "at_least": 1}})
        world.send("u1", "s", 0, [("screen", 0)])
        world.settle()
        current = world.service.get(audience)
        proposal = msgspec.structs.replace(
            current, criteria={"event": "screen_view", "at_least": 2}
        )
        assert world.shadows.start(audience, proposal).status == "computing"
        with pytest.raises(Conflict):
            world.shadows.promote(audience)
        world.until_quiet()
        assert world.shadows.show(audience).leaving == 1
        world.service.update(audience, current)  # a direct edit: the shadow is gone
        assert world.service.get(audience).shadow is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_shadow_survives_the_store(backend: str, request: pytest.FixtureRequest) -> None:
    with _stores(backend, request) as stores:
        store = stores()
        saved = store.save_audience(
            AudienceDef(name="a", workspaces=[1], criteria={"event": "screen_view"})
        )
        proposal = AudienceDef(
            id=saved.id,
            name="b",
            workspaces=[1],
            criteria={"event": "custom_event", "name": "play"},
            history_tag_ms=7,
            history_to=3,
            history_from=1,
        )
        shadow = ShadowEdit(
            definition=proposal,
            base_updated_ms=saved.updated_ms,
            started_ms=7,
            started_by="someone",
            phase="ready",
            preview=ShadowPreview(as_of_ms=9, entering=1, entering_sample=[2**62]),
        )
        store.save_audience(msgspec.structs.replace(saved, shadow=shadow), progress=True)
        (read,) = [a for a in store.list_audiences() if a.id == saved.id]
        assert read.shadow == shadow
        assert store.audience_versions(saved.id)[-1].audience.shadow is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_promotion_moves_the_audiences_nesting_it_too(
    backend: str, request: pytest.FixtureRequest
) -> None:
    with _stores(backend, request) as stores:
        world = ShadowWorld(stores())
        inner = world.audience({"criteria": {"event": "screen_view", "at_least": 1}})
        outer = world.audience({"criteria": {"audience": inner, "member": True}})
        world.send("u1", "s", 0, [("screen", 0)])
        world.send("u2", "s", 1, [("screen", 0), ("screen", 0)])
        world.settle()
        assert world.members(inner) == world.members(outer) == {"u1", "u2"}
        current = world.service.get(inner)
        stricter = {"event": "screen_view", "at_least": 2}
        world.shadows.start(inner, msgspec.structs.replace(current, criteria=stricter))
        world.until_quiet()
        assert world.members(outer) == {"u1", "u2"}  # nothing moves before the promotion
        outer_log = len(world.log_of(outer))
        promotion = world.shadows.promote(inner)
        assert (promotion.entered, promotion.left) == (0, 1)
        assert world.members(inner) == world.members(outer) == {"u2"}
        assert world.log_of(outer)[outer_log:] == [(1, False, REASON)]


# An account whose workspaces keep MPID spaces of their own: a definition moved to another
# workspace reads another identity scope.
_SPLIT = AccountPolicy(account_id=1, identity_scope="workspace")
_W1 = WorkspaceDef(workspace_id=1, name="one", account=_SPLIT)
_W2 = WorkspaceDef(workspace_id=2, name="two", account=_SPLIT)
_SPLIT_INPUTS = {
    name: InputDef(
        name=name, workspace=ws, source_type=SourceType.SERVER, api_key=name, api_secret="x"
    )
    for name, ws in (("s", _W1), ("t", _W2))
}
_SPLIT_TENANCY = Tenancy(
    org_id=1, workspaces={1: _W1, 2: _W2}, inputs_by_key=_SPLIT_INPUTS, inputs_by_name=_SPLIT_INPUTS
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_moved_to_another_scope_its_members_there_leave(
    backend: str, request: pytest.FixtureRequest
) -> None:
    with _stores(backend, request) as stores:
        store = stores()
        clock = FakeClock(NOW)
        registry = AudienceRegistry(store, _SPLIT_TENANCY)
        transactions = Transactions(store)
        service = AudienceService(store, transactions, registry, clock)
        ingest = write_path(
            store, SequentialMpids(), NullMetrics(), _SPLIT_INPUTS.__getitem__, registry
        )
        backfill = AudienceBackfill(store, transactions, registry, clock)
        shadows = ShadowEdits(store, transactions, registry, service, clock, refresh_after_ms=0)
        for source, customer in (("s", "one"), ("t", "two")):
            body = msgspec.json.encode(
                {
                    "user_identities": {"customer_id": customer},
                    "events": [{"event_type": "screen_view", "data": {"screen_name": "Home"}}],
                }
            )
            given_input = _SPLIT_INPUTS[source]
            ingest.run_all([Accepted(given_input, observe(body, given_input, NOW), body)])
        criteria = {"event": "screen_view", "at_least": 1}
        made = service.create(AudienceDef(name="a", workspaces=[1], criteria=criteria))
        service.set_status(made.id, "active")
        while backfill.run():
            pass
        (member,) = service.members_at(made.id, NOW)
        moved = msgspec.structs.replace(service.get(made.id), workspaces=[2])
        shadows.start(made.id, moved)
        while shadows.run():
            pass
        view = shadows.show(made.id)
        assert (view.entering, view.leaving) == (1, 1)
        assert view.leaving_sample == [str(member)]
        promotion = shadows.promote(made.id)
        assert (promotion.entered, promotion.left) == (1, 1)
        (now_member,) = service.members_at(made.id, NOW)
        assert now_member != member
        left = store.get_profile(member)
        assert left is not None
        assert made.id not in left.memberships
