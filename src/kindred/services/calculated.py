"""Calculated attributes on ingest (CA-2): the registry of active definitions, for the
ingest pipeline and the scheduler. (What the definitions do to a profile, pure:
`attributes.active`.)

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
from collections.abc import Sequence

from kindred.attributes.active import ActiveSet, as_of, compiled_of, fold_batch, overdue
from kindred.attributes.definition import Compiled
from kindred.domain.changes import Change
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.ports import CalculatedStore, Clock

__all__ = ["CalculatedRegistry"]


class CalculatedRegistry:
    def __init__(self, store: CalculatedStore, clock: Clock, *, refresh_ms: int = 2000) -> None:
        self._store = store
        self._clock = clock
        self._refresh_ms = refresh_ms
        self._by_workspace: dict[int, ActiveSet] = {}
        # (workspace, name) of deleted definitions (a draft never active has no state; one
        # activated elsewhere a moment ago is a draft to a registry not reloaded since).
        self._retired: frozenset[tuple[int, str]] = frozenset()
        self._loaded_ms: int | None = None
        # The store's definitions version the loaded set is at least as new as (see sync).
        self._version: int | None = None
        self._lock = threading.Lock()

    def active(self) -> dict[int, ActiveSet]:
        """Active definitions by workspace."""
        now = self._clock.now_ms()
        if self._loaded_ms is None or not 0 <= now - self._loaded_ms < self._refresh_ms:
            with self._lock:
                self._load(now)
        return self._by_workspace

    def invalidate(self) -> None:
        self._loaded_ms = None

    def sync(self, version: int) -> None:
        """Bring the definitions up to the store's `version`, read inside the transaction of
        a group of batches: a definition activated by any process before that transaction
        counts every batch the group applies (the activation's computation counts the
        batches logged before it; see CalculatedStore.activate_calculated)."""
        if version != self._version:
            with self._lock:
                self._load(self._clock.now_ms())
                self._version = version

    def _load(self, now: int) -> None:
        found: dict[int, list[Compiled]] = {}
        retired: set[tuple[int, str]] = set()
        for definition in self._store.list_calculated():
            if definition.status == "active" and definition.active is not None:
                found.setdefault(definition.workspace_id, []).append(compiled_of(definition))
            elif definition.status == "deleted":
                retired.add((definition.workspace_id, definition.name))
        self._by_workspace = {w: ActiveSet(found[w]) for w in found}
        active = {(w, d.name) for w, defs in found.items() for d in defs}
        self._retired = frozenset(retired - active)  # a name deleted, then defined again
        self._loaded_ms = now

    def refresh(
        self, profile: Profile, workspace_id: int, events: Sequence[EventFact], now_ms: int
    ) -> tuple[Profile, list[Change]]:
        """The profile with the batch's events folded into its workspace's calculated
        attributes and their values written; the attribute changes that made (of this
        workspace: an overdue profile's other workspaces are brought up to date too)."""
        if overdue(profile, now_ms):
            profile = self.current(profile, now_ms)
        return fold_batch(profile, self.active().get(workspace_id), workspace_id, events, now_ms)

    def recompute(self, profile: Profile, now_ms: int) -> Profile:
        """Every calculated value as of `now_ms` (time alone may have changed them), and
        those of deleted definitions gone."""
        return self.current(profile, now_ms)

    def current(self, profile: Profile, now_ms: int) -> Profile:
        """The profile as a read sees it at `now_ms` (see attributes.active.as_of)."""
        return as_of(profile, self.active(), self._retired, now_ms)
