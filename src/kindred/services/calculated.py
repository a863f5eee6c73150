"""Calculated attributes on ingest (CA-2): the registry of active definitions and the
per-profile work the ingest pipeline and the scheduler do with it.

The registry holds the active definitions, parsed once when saved (never per event), and
re-reads the store every few seconds, so a definition activated in another process is
picked up. On each applied batch, `refresh` folds the batch's events into every matching
definition's state and writes the values as user attributes, in the batch's transaction.
Windowed values decay with time alone: the profile's due time (the audience scheduler's,
shared) is brought forward to the instant a value next changes, and the scheduler calls
`recompute` then.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import msgspec

from kindred.attributes.definition import CalculatedDef, Compiled, compile_definition
from kindred.domain.calculated import CalcState, fold
from kindred.domain.calculated_entries import next_due, refreshed, with_values
from kindred.domain.changes import Change
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile, WorkspaceProfile
from kindred.ports import CalculatedStore, Clock

__all__ = ["CalculatedRegistry", "compiled_of", "fold_events", "scheduled"]

replace = msgspec.structs.replace


def compiled_of(definition: CalculatedDef) -> Compiled:
    """The active definition, parsed (it was checked when saved)."""
    return compile_definition(
        definition.id, definition.name, definition.workspace_id, definition.active
    )


def fold_events(
    states: dict[str, CalcState],
    definitions: Iterable[Compiled],
    events: Sequence[EventFact],
    now_ms: int,
) -> dict[str, CalcState]:
    """The states with every matching event folded in; a state of another version of a
    definition (edited since) starts afresh."""
    result = dict(states)
    for definition in definitions:
        state = result.get(definition.name)
        if state is None or state.digest != definition.digest:
            state = definition.empty_state()
        for event in events:
            if definition.matches(event):
                state = fold(state, event.timestamp_ms, definition.values(event), now_ms)
        result[definition.name] = state
    return result


def scheduled(profile: Profile, now_ms: int) -> Profile:
    """The profile due (for the scheduler) no later than its next calculated change."""
    due = next_due(profile, now_ms)
    current = profile.audience_due_ms
    if due is None or (current is not None and now_ms < current <= due):
        return profile
    return replace(profile, audience_due_ms=due)


class CalculatedRegistry:
    def __init__(self, store: CalculatedStore, clock: Clock, *, refresh_ms: int = 2000) -> None:
        self._store = store
        self._clock = clock
        self._refresh_ms = refresh_ms
        self._by_workspace: dict[int, list[Compiled]] = {}
        self._loaded_ms: int | None = None
        self._lock = threading.Lock()

    def active(self) -> dict[int, list[Compiled]]:
        """Active definitions by workspace."""
        now = self._clock.now_ms()
        if self._loaded_ms is None or not 0 <= now - self._loaded_ms < self._refresh_ms:
            with self._lock:
                self._load(now)
        return self._by_workspace

    def invalidate(self) -> None:
        self._loaded_ms = None

    def _load(self, now: int) -> None:
        found: dict[int, list[Compiled]] = {}
        for definition in self._store.list_calculated():
            if definition.status == "active" and definition.active is not None:
                found.setdefault(definition.workspace_id, []).append(compiled_of(definition))
        self._by_workspace = found
        self._loaded_ms = now

    def refresh(
        self, profile: Profile, workspace_id: int, events: Sequence[EventFact], now_ms: int
    ) -> tuple[Profile, list[Change]]:
        """The profile with the batch's events folded into its workspace's calculated
        attributes and their values written; the attribute changes that made."""
        active = self.active().get(workspace_id, [])
        workspace = profile.workspaces.get(workspace_id)
        if workspace is None or (not active and not workspace.calculated):
            return profile, []
        names = {d.name for d in active}
        kept = {n: s for n, s in workspace.calculated.items() if n in names}
        states = fold_events(kept, active, events, now_ms)
        after = with_values(replace(workspace, calculated=states), now_ms)
        if after == workspace:
            return profile, []
        changes = _attribute_changes(workspace, after, workspace_id)
        workspaces = {**profile.workspaces, workspace_id: after}
        return replace(profile, workspaces=workspaces), changes

    @staticmethod
    def recompute(profile: Profile, now_ms: int) -> Profile:
        """Every calculated value as of `now_ms` (time alone may have changed them)."""
        return refreshed(profile, now_ms)


def _attribute_changes(
    before: WorkspaceProfile, after: WorkspaceProfile, workspace_id: int
) -> list[Change]:
    changes = []
    for key in sorted(set(before.attributes) | set(after.attributes)):
        old, new = before.attributes.get(key), after.attributes.get(key)
        if old == new:
            continue
        kind = "attribute_deleted" if new is None else "attribute_set"
        changes.append(
            Change(
                kind=kind,
                key=key,
                workspace_id=workspace_id,
                old=None if old is None else old.value,
                new=None if new is None else new.value,
            )
        )
    return changes
