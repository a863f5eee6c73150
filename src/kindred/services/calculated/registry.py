"""Calculated attributes on ingest (CA-2): the registry of active definitions, for the
ingest pipeline and the scheduler. (What the definitions do to a profile, pure:
`attributes.active`.)

The registry holds the active definitions, parsed once per definitions version (never
per event; see `services.definitions`), so a definition activated in any process counts
from the next transaction on. On each applied batch, `refresh` folds the batch's events
into every matching definition's state and writes the values as user attributes, in the
batch's transaction.
Windowed values decay with time alone: the profile's due time (the audience scheduler's,
shared) is brought forward to the instant a value next changes, and the scheduler calls
`recompute` then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kindred.attributes.active import ActiveSet, as_of, compiled_of, fold_batch, overdue
from kindred.attributes.definition import Compiled
from kindred.domain.changes import Change
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.ports import CalculatedStore, DefinitionsVersion
from kindred.services.definitions import Versioned

__all__ = ["CalculatedRegistry", "CalculatedSet"]


class _Store(CalculatedStore, DefinitionsVersion, Protocol):
    """The saved definitions and their version."""


@dataclass(frozen=True, slots=True)
class CalculatedSet:
    """The calculated attribute definitions of one definitions version, parsed once."""

    by_workspace: dict[int, ActiveSet]  # the active ones
    # (workspace, name) of deleted definitions (a draft never active has no state).
    retired: frozenset[tuple[int, str]]


class CalculatedRegistry:
    def __init__(self, store: _Store) -> None:
        self._store = store
        self._sets = Versioned(store, self._load)

    def at(self, version: int) -> CalculatedSet:
        """The definitions at the version a transaction read: a definition activated by
        any process before that transaction counts every batch it applies (the
        activation's computation counts the batches logged before it; see
        CalculatedStore.activate_calculated)."""
        return self._sets.at(version)

    def _load(self) -> CalculatedSet:
        found: dict[int, list[Compiled]] = {}
        retired: set[tuple[int, str]] = set()
        for definition in self._store.list_calculated():
            if definition.status == "active" and definition.active is not None:
                found.setdefault(definition.workspace_id, []).append(compiled_of(definition))
            elif definition.status == "deleted":
                retired.add((definition.workspace_id, definition.name))
        active = {(w, d.name) for w, defs in found.items() for d in defs}
        return CalculatedSet(
            by_workspace={w: ActiveSet(found[w]) for w in found},
            retired=frozenset(retired - active),  # a name deleted, then defined again
        )

    def refresh(
        self,
        profile: Profile,
        workspace_id: int,
        events: Sequence[EventFact],
        now_ms: int,
        *,
        version: int,
    ) -> tuple[Profile, list[Change]]:
        """The profile with the batch's events folded into its workspace's calculated
        attributes and their values written; the attribute changes that made (of this
        workspace: an overdue profile's other workspaces are brought up to date too)."""
        defs = self.at(version)
        if overdue(profile, now_ms):
            profile = as_of(profile, defs.by_workspace, defs.retired, now_ms)
        return fold_batch(
            profile, defs.by_workspace.get(workspace_id), workspace_id, events, now_ms
        )

    def recompute(self, profile: Profile, now_ms: int, *, version: int) -> Profile:
        """Every calculated value as of `now_ms` (time alone may have changed them), and
        those of deleted definitions gone."""
        defs = self.at(version)
        return as_of(profile, defs.by_workspace, defs.retired, now_ms)

    def current(self, profile: Profile, now_ms: int, version: int | None = None) -> Profile:
        """The profile as a read outside any transaction sees it at `now_ms` (see
        attributes.active.as_of), under the definitions at `version` (the caller read it
        for the whole request) or else as last committed."""
        defs = self._sets.current() if version is None else self._sets.at(version)
        return as_of(profile, defs.by_workspace, defs.retired, now_ms)
