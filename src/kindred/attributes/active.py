"""A workspace's active calculated attributes (CA-2) and what they do to a profile: the
definitions indexed by the events they count, a batch's events folded into their states,
the values written as user attributes, the values as time has left them, and the due time
their windows give the profile (the audience scheduler's, shared).

Pure: the registry (`services.calculated`) reads the definitions from the store and hands
the active sets to these functions with an instant.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import msgspec

from kindred.attributes.definition import CalculatedDef, Compiled, compile_definition
from kindred.audiences.ast import EventCriterion
from kindred.audiences.evaluate import event_key
from kindred.domain.calculated import CalcState, Folder, Item, folder
from kindred.domain.calculated_entries import next_due, refreshed, values_written, with_values
from kindred.domain.changes import Change
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile, WorkspaceProfile

__all__ = [
    "ActiveSet",
    "as_of",
    "compiled_of",
    "fold_batch",
    "fold_events",
    "overdue",
    "scheduled",
]

replace = msgspec.structs.replace


def compiled_of(definition: CalculatedDef) -> Compiled:
    """The active definition, parsed (it was checked when saved)."""
    return compile_definition(
        definition.id, definition.name, definition.workspace_id, definition.active
    )


def fold_events(
    states: dict[str, CalcState],
    definitions: Sequence[Compiled],
    events: Sequence[EventFact],
    now_ms: int,
) -> dict[str, CalcState]:
    """The states with every matching event folded in; a state of another version of a
    definition (edited since) starts afresh."""
    return ActiveSet(definitions).fold(states, events, now_ms)


class _Readers:
    """The definitions of one filter that read one attribute of the events passing it."""

    __slots__ = ("attribute", "definitions", "values")

    def __init__(self, first: Compiled) -> None:
        self.attribute = first.attribute
        self.values = first.values
        # Each definition's name, and its fold_values with its spec looked up once.
        self.definitions: list[tuple[str, Folder]] = []
        self.add(first)

    def add(self, definition: Compiled) -> None:
        self.definitions.append((definition.name, folder(definition.spec)))


class _Filter:
    """The definitions that count the same events (type, name, action and conditions), by
    the attribute they read: each event of a batch is tested once for all of them."""

    __slots__ = ("readers", "test")

    def __init__(self, first: Compiled) -> None:
        # None: without an action or conditions every event of the type and name passes.
        self.test = first.test
        self.readers: list[_Readers] = []

    def add(self, definition: Compiled) -> None:
        for readers in self.readers:
            if readers.attribute == definition.attribute:
                readers.add(definition)
                return
        self.readers.append(_Readers(definition))


class ActiveSet:
    """A workspace's active definitions, indexed by the events they count (so a batch
    meets only the definitions of its events' types and names)."""

    def __init__(self, definitions: Sequence[Compiled]) -> None:
        self.definitions = list(definitions)
        self.names = frozenset(d.name for d in definitions)
        self.digests = {d.name: d.digest for d in definitions}
        self._digest_items = list(self.digests.items())
        self._by_name = {d.name: d for d in definitions}
        filters: dict[EventCriterion, _Filter] = {}
        for definition in definitions:
            shared = filters.get(definition.event)
            if shared is None:
                shared = filters[definition.event] = _Filter(definition)
            shared.add(definition)
        self._by_key: dict[str, list[_Filter]] = {}
        for criterion, shared in filters.items():
            key = event_key(criterion.event_type, criterion.name)
            self._by_key.setdefault(key, []).append(shared)
        # The filters of each (event type, name) met so far.
        self._seen: dict[tuple[str, str | None], list[_Filter]] = {}

    def fold(
        self, states: dict[str, CalcState], events: Sequence[EventFact], now_ms: int
    ) -> dict[str, CalcState]:
        return self.fold_changes(states, events, now_ms)[0]

    def fold_changes(
        self, states: dict[str, CalcState], events: Sequence[EventFact], now_ms: int
    ) -> tuple[dict[str, CalcState], set[str]]:
        """The states with the events folded in, and the names of those that changed
        (started afresh or counted an event)."""
        result = dict(states)
        changed: set[str] = set()
        for name, digest in self._digest_items:
            state = result.get(name)
            if state is None or state.digest != digest:
                result[name] = self._by_name[name].empty_state()
                changed.add(name)
        # Each state now has its definition's digest, so the spec its fold was made for.
        for readers, items in self._matches(events).items():
            for name, fold_into in readers.definitions:
                state = result[name]
                folded = fold_into(state, items, now_ms)
                if folded is not state:
                    result[name] = folded
                    changed.add(name)
        return result, changed

    def _matches(self, events: Sequence[EventFact]) -> dict[_Readers, list[Item]]:
        """The (timestamp, values) of the events each group of readers counts."""
        found: dict[_Readers, list[Item]] = {}
        for event in events:
            # What the event carries for each attribute read, read once for every filter.
            read: dict[str | None, Item] = {}
            for shared in self._candidates(event):
                if shared.test is not None and not shared.test(event):
                    continue
                for readers in shared.readers:
                    item = read.get(readers.attribute)
                    if item is None:
                        item = read[readers.attribute] = (event.timestamp_ms, readers.values(event))
                    held = found.get(readers)
                    if held is None:
                        found[readers] = [item]
                    else:
                        held.append(item)
        return found

    def _candidates(self, event: EventFact) -> list[_Filter]:
        key = (event.event_type, event.name)
        found = self._seen.get(key)
        if found is None:
            found = self._by_key.get(event.event_type, [])
            if event.name is not None:
                found = found + self._by_key.get(event_key(event.event_type, event.name), [])
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()  # a feed of ever new event names: start over
            self._seen[key] = found
        return found


# How many (event type, name) pairs an active set remembers the filters of.
_SEEN_MAX = 10_000


def scheduled(profile: Profile, now_ms: int) -> Profile:
    """The profile due (for the scheduler) no later than its next calculated change. The
    due time only comes forward here: one that has come stays (whoever moves it on must
    first have done what it was due for, every value and every audience)."""
    due = next_due(profile, now_ms)
    current = profile.audience_due_ms
    if due is None or (current is not None and current <= due):
        return profile
    return replace(profile, audience_due_ms=due)


def overdue(profile: Profile, now_ms: int) -> bool:
    """Whether the profile's due time has come (time may have changed any value)."""
    return profile.audience_due_ms is not None and profile.audience_due_ms <= now_ms


def fold_batch(
    profile: Profile,
    active: ActiveSet | None,
    workspace_id: int,
    events: Sequence[EventFact],
    now_ms: int,
) -> tuple[Profile, list[Change]]:
    """The profile with the batch's events folded into its workspace's calculated
    attributes (`active`: the workspace's active set) and their values written; the
    attribute changes that made."""
    workspace = profile.workspaces.get(workspace_id)
    if workspace is None or (active is None and not workspace.calculated):
        return profile, []
    names = frozenset() if active is None else active.names
    kept = workspace.calculated
    if not kept.keys() <= names:
        kept = {n: s for n, s in kept.items() if n in names}
    states, changed = (kept, set()) if active is None else active.fold_changes(kept, events, now_ms)
    recompute: set[str] | None = changed
    if overdue(profile, now_ms) or len(kept) != len(workspace.calculated):
        recompute = None  # time (or a deletion) may have changed any of them
    if recompute is not None and not recompute:
        return profile, []  # no event counted, no value can have changed
    after, written = values_written(replace(workspace, calculated=states), now_ms, recompute)
    changes = _attribute_changes(workspace, after, workspace_id, written)
    workspaces = {**profile.workspaces, workspace_id: after}
    return replace(profile, workspaces=workspaces), changes


def as_of(
    profile: Profile,
    active: Mapping[int, ActiveSet],
    retired: frozenset[tuple[int, str]],
    now_ms: int,
) -> Profile:
    """The profile as a read sees it at `now_ms`: the values of active definitions as
    time has left them; those of deleted ones (`retired`: workspace and name) gone already
    (the profile's next batch drops their states)."""
    dropped: dict[int, WorkspaceProfile] = {}
    for workspace_id, workspace in profile.workspaces.items():
        if not workspace.calculated:
            continue  # nothing to keep or drop (most workspaces: no copy of the profile)
        held = active.get(workspace_id)
        digests = {} if held is None else held.digests
        # A state of a definition not loaded yet (activated elsewhere a moment ago) stays.
        kept = {
            name: state
            for name, state in workspace.calculated.items()
            if digests.get(name, state.digest) == state.digest
            and (workspace_id, name) not in retired
        }
        if len(kept) != len(workspace.calculated):
            dropped[workspace_id] = with_values(replace(workspace, calculated=kept), now_ms)
    if dropped:
        profile = replace(profile, workspaces={**profile.workspaces, **dropped})
    return refreshed(profile, now_ms)


def _attribute_changes(
    before: WorkspaceProfile,
    after: WorkspaceProfile,
    workspace_id: int,
    names: Collection[str],
) -> list[Change]:
    """The attribute changes between the two among `names`."""
    changes = []
    for key in sorted(names):
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
