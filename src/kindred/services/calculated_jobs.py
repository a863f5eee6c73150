"""Computing an activated calculated attribute over the stored event history (CA-2), in
the background, a page of the event log at a time, resuming where it stopped (the cursor
is kept on the definition).

Each profile the page names is computed from scratch from its own logged batches, in one
transaction with the profile: batches applied before that transaction are in the log it
reads, later ones fold in live on top, so nothing is counted twice or lost. Doing a profile
again (it appears on several pages) gives the same state.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from kindred.attributes.definition import CalculatedDef, Compiled
from kindred.domain.calculated import CalcState
from kindred.domain.calculated_entries import with_values
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.tenancy import InputDef
from kindred.ports import (
    BatchStatus,
    Clock,
    ConcurrentUpdate,
    EventLogReader,
    LogEntry,
    Store,
    UnitOfWork,
)
from kindred.services.calculated import CalculatedRegistry, compiled_of, fold_events, scheduled
from kindred.services.ingest import observe

__all__ = ["CalculatedBackfill", "fold_history"]

replace = msgspec.structs.replace
_PROFILE_LOG_LIMIT = 100_000


class CalculatedBackfill:
    def __init__(
        self,
        store: Store,
        registry: CalculatedRegistry,
        inputs: Callable[[str], InputDef | None],
        clock: Clock,
        *,
        page: int = 1000,
        pages_per_run: int = 20,
    ) -> None:
        self._store = store
        self._registry = registry
        self._inputs = inputs
        self._clock = clock
        self._page = page
        self._pages_per_run = pages_per_run

    def run(self) -> int:
        """Advance every pending computation by up to `pages_per_run` pages; returns how
        many profiles it computed."""
        computed = 0
        for definition in self._store.list_calculated():
            if definition.status == "active" and definition.backfill_from is not None:
                computed += self._advance(definition)
        return computed

    def _advance(self, definition: CalculatedDef) -> int:
        compiled = compiled_of(definition)
        after = definition.backfill_from or 0
        read, done = 0, set[int]()
        finished = False
        for _ in range(self._pages_per_run):
            entries = self._store.read_log(after, self._page)
            wanted = [e for e in entries if _counts(e, definition.workspace_id)]
            for mpid in sorted({e.mpid for e in wanted if e.mpid is not None} - done):
                self._compute(compiled, mpid)
                done.add(mpid)
            read += len(entries)
            after = entries[-1].id or after if entries else after
            if len(entries) < self._page or after >= definition.backfill_total:
                finished = True
                break
        self._save(definition, after, read, finished)
        return len(done)

    def _compute(self, compiled: Compiled, mpid: int) -> None:
        for _ in range(5):
            try:
                with self._store.unit_of_work() as uow:
                    self._compute_in(uow, compiled, mpid)
                return
            except ConcurrentUpdate:
                continue  # a batch changed it meanwhile: compute it again

    def _compute_in(self, uow: UnitOfWork, compiled: Compiled, mpid: int) -> None:
        profile = _live(uow, mpid)
        workspace = None if profile is None else profile.workspaces.get(compiled.workspace_id)
        if profile is None or workspace is None:
            return
        now = self._clock.now_ms()
        state = fold_history(self._store, self._inputs, compiled, profile.mpid, now)
        states = {**workspace.calculated, compiled.name: state}
        workspace = with_values(replace(workspace, calculated=states), now)
        changed = replace(
            profile,
            workspaces={**profile.workspaces, compiled.workspace_id: workspace},
            version=profile.version + 1,
        )
        uow.save_profile(scheduled(changed, now))

    def _save(self, definition: CalculatedDef, after: int, read: int, finished: bool) -> None:
        current = next((d for d in self._store.list_calculated() if d.id == definition.id), None)
        if current is None or current.backfill_from != definition.backfill_from:
            return  # re-activated or deleted meanwhile: that run carries on
        self._store.save_calculated(
            replace(
                current,
                backfill_from=None if finished else after,
                backfill_done=current.backfill_done + read,
                backfill_finished_ms=self._clock.now_ms() if finished else None,
            )
        )


def _counts(entry: LogEntry, workspace_id: int) -> bool:
    return entry.status == BatchStatus.APPLIED and entry.workspace_id == workspace_id


def _live(uow: UnitOfWork, mpid: int) -> Profile | None:
    profile = uow.load_profiles([mpid]).get(mpid)
    while profile is not None and profile.merged_into is not None:
        profile = uow.load_profiles([profile.merged_into]).get(profile.merged_into)
    return profile


def fold_history(
    store: EventLogReader,
    inputs: Callable[[str], InputDef | None],
    compiled: Compiled,
    mpid: int,
    now_ms: int,
    *,
    state: CalcState | None = None,
) -> CalcState:
    """The state (empty, or seeded) with every batch logged for the profile folded in."""
    states = {compiled.name: state or compiled.empty_state()}
    for entry in reversed(store.log_for_profile(mpid, _PROFILE_LOG_LIMIT)):
        if _counts(entry, compiled.workspace_id):
            states = fold_events(states, [compiled], _events(entry, inputs), now_ms)
    return states[compiled.name]


def _events(entry: LogEntry, inputs: Callable[[str], InputDef | None]) -> tuple[EventFact, ...]:
    source = inputs(entry.input)
    if source is None:
        return ()
    try:
        obs = observe(
            entry.body, source, entry.received_ms, entry.client_ip, historical=entry.historical
        )
    except (InvalidBatch, msgspec.DecodeError, msgspec.ValidationError):
        return ()
    return obs.events
