"""The store contract for calculated attribute definitions and states, on every store."""

from __future__ import annotations

import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.domain.calculated import Agg, CalcSpec, CalcState
from kindred.domain.profile import Profile, WorkspaceProfile
from kindred.ports import LogEntry, Store

__all__: list[str] = []


def definition(name: str = "ltv") -> CalculatedDef:
    return CalculatedDef(
        name=name,
        workspace_id=1,
        draft={"calculation_type": "count", "event": {"event": "custom_event", "name": "play"}},
        created_ms=5,
    )


def test_definitions_get_ids_and_are_replaced_by_id(store: Store) -> None:
    first = store.save_calculated(definition())
    second = store.save_calculated(definition("plays"))
    assert first.id > 0
    assert second.id > first.id
    assert store.list_calculated() == [first, second]
    active = msgspec.structs.replace(
        first, status="active", active=first.draft, backfill_from=0, backfill_total=9
    )
    store.save_calculated(active)
    assert store.list_calculated() == [active, second]


def test_a_profile_keeps_its_calculated_states(store: Store) -> None:
    state = CalcState(
        spec=CalcSpec(kind="most_frequent", within_days=7),
        digest="abc",
        buckets={19_700: Agg(n=2, counts={"a": 1, "b": 1}), 19_701: Agg(n=1, counts={"a": 1})},
        seed=Agg(n=3, counts={"c": 3}),
        cutoff_ms=1_700_000_000_000,
    )
    workspace = WorkspaceProfile(first_seen_ms=1, last_seen_ms=2, calculated={"fav": state})
    profile = Profile(
        mpid=42, scope="s", created_ms=1, last_stored_ms=2, workspaces={1: workspace}, version=1
    )
    with store.unit_of_work() as uow:
        uow.profiles.save(profile)
    stored = store.get_profile(42)
    assert stored is not None
    assert stored.workspaces[1].calculated == {"fav": state}


def _version(store: Store) -> int:
    with store.unit_of_work() as uow:
        return uow.definitions_version()


def test_activating_takes_the_newest_logged_batch_and_every_save_raises_the_version(
    store: Store,
) -> None:
    start = _version(store)
    saved = store.save_calculated(definition())
    assert _version(store) > start
    with store.unit_of_work() as uow:
        for n in range(3):
            uow.log.append(
                LogEntry(
                    input="server", workspace_id=1, received_ms=n, status="applied", body=b"{}"
                )
            )
    newest = store.latest_log(1)[0].id
    assert newest is not None
    before = _version(store)
    active = store.activate_calculated(
        msgspec.structs.replace(saved, status="active", active=saved.draft, backfill_from=0)
    )
    assert active.backfill_total == newest
    assert active in store.list_calculated()
    assert _version(store) > before


def test_saving_a_computation_s_progress_keeps_the_version(store: Store) -> None:
    saved = store.save_calculated(definition("progress"))
    before = _version(store)
    store.save_calculated(msgspec.structs.replace(saved, backfill_done=5), progress=True)
    assert _version(store) == before
    assert next(d for d in store.list_calculated() if d.id == saved.id).backfill_done == 5
