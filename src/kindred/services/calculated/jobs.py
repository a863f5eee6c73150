"""Computing an activated calculated attribute over the stored event history (CA-2), in
the background, a page of the event log at a time, resuming where it stopped (the cursor
is kept on the definition).

Activation notes the newest log id; batches up to it are folded here, later ones live by
ingest. Each page's batches are folded into their profiles (followed through merges) in
one transaction, and every state records the log id it has folded up to (`history_to`),
so a page done again after an interruption is not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from kindred.attributes.active import compiled_of, fold_events, scheduled
from kindred.attributes.definition import CalculatedDef, Compiled
from kindred.domain.calculated import CalcState, fold_values
from kindred.domain.calculated_entries import with_values
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact
from kindred.domain.profile import Profile
from kindred.domain.tenancy import InputDef
from kindred.ports import (
    BatchStatus,
    CalculatedStore,
    Clock,
    ConcurrentUpdate,
    EventLogReader,
    LogEntry,
    UnitOfWork,
)
from kindred.services.forwarding.transactions import Transactions
from kindred.services.merges import follow
from kindred.wire.observe import observe

__all__ = ["CalculatedBackfill", "fold_history", "logged_events"]

replace = msgspec.structs.replace
_PROFILE_LOG_LIMIT = 100_000


class _Store(CalculatedStore, EventLogReader, Protocol):
    """The definitions, whose progress the computation keeps, and the event log it folds."""


class CalculatedBackfill:
    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        inputs: Callable[[str], InputDef | None],
        clock: Clock,
        *,
        page: int = 1000,
        pages_per_run: int = 20,
    ) -> None:
        self._store = store
        self._transactions = transactions
        self._inputs = inputs
        self._clock = clock
        self._page = page
        self._pages_per_run = pages_per_run

    def run(self) -> int:
        """Advance every pending computation by up to `pages_per_run` pages; returns how
        many profile writes it made."""
        computed = 0
        for definition in self._store.list_calculated():
            if definition.status == "active" and definition.backfill_from is not None:
                computed += self.advance(definition)
        return computed

    def advance(self, definition: CalculatedDef) -> int:
        """Advance one computation (as `run` read it) by up to `pages_per_run` pages."""
        compiled = compiled_of(definition)
        after = definition.backfill_from or 0
        read = computed = 0
        finished = False
        for _ in range(self._pages_per_run):
            entries = self._store.read_log(after, self._page)
            wanted = [
                e
                for e in entries
                if _counts(e, definition.workspace_id)
                and e.id is not None
                and e.id <= definition.backfill_total
            ]
            computed += self._fold_page(definition, compiled, wanted) if wanted else 0
            # Only batches logged before activation are the computation's to count.
            read += sum(
                1 for e in entries if e.id is not None and e.id <= definition.backfill_total
            )
            after = entries[-1].id or after if entries else after
            if len(entries) < self._page or after >= definition.backfill_total:
                finished = True
                break
        self._save(definition, after, read, finished)
        return computed

    def _fold_page(
        self, definition: CalculatedDef, compiled: Compiled, entries: list[LogEntry]
    ) -> int:
        """Fold a page of logged batches into their profiles, in one transaction; how
        many profiles it changed (none when the definition was activated again, edited or
        deleted since the run read it: its states are no longer this activation's)."""
        by_mpid: dict[int, list[LogEntry]] = {}
        for entry in entries:
            assert entry.mpid is not None  # applied batches name their profile
            by_mpid.setdefault(entry.mpid, []).append(entry)
        events = {e.id: self._events(e) for e in entries}
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    uow.definitions_version()  # PostgreSQL: a definition saved waits for us
                    if self._same_activation(definition) is None:
                        return 0
                    return self._fold_into(uow, compiled, by_mpid, events)
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: fold the page again
        return 0

    def _fold_into(
        self,
        uow: UnitOfWork,
        compiled: Compiled,
        by_mpid: dict[int, list[LogEntry]],
        events: dict[int | None, tuple[EventFact, ...]],
    ) -> int:
        now = self._clock.now_ms()
        changed: dict[int, Profile] = {}
        loaded = uow.profiles.load(sorted(by_mpid))
        # Batches logged under several MPIDs (a profile and those merged into it) fold into
        # their survivor together, in log order: `history_to` marks how far it has folded.
        survivors: dict[int, tuple[Profile, list[LogEntry]]] = {}
        for mpid, logged in by_mpid.items():
            profile = follow(uow.profiles, loaded.get(mpid))
            if profile is None or compiled.workspace_id not in profile.workspaces:
                continue
            survivors.setdefault(profile.mpid, (profile, []))[1].extend(logged)
        for profile, logged in survivors.values():
            logged.sort(key=lambda entry: entry.id or 0)
            after = _folded(profile, compiled, logged, events, now)
            if after is not profile:
                changed[profile.mpid] = after
        for profile in changed.values():
            version = replace(profile, version=profile.version + 1)
            uow.profiles.save(scheduled(version, now))
        return len(changed)

    def _same_activation(self, definition: CalculatedDef) -> CalculatedDef | None:
        """The definition as saved now, if the run's activation is still its own (not
        activated again, edited or deleted since: a deleted one has no active document)."""
        current = next((d for d in self._store.list_calculated() if d.id == definition.id), None)
        if (
            current is None
            or current.activated_ms != definition.activated_ms
            or current.active != definition.active
        ):
            return None
        return current

    def _events(self, entry: LogEntry) -> tuple[EventFact, ...]:
        return logged_events(entry, self._inputs)

    def _save(self, definition: CalculatedDef, after: int, read: int, finished: bool) -> None:
        current = self._same_activation(definition)
        if current is None or current.backfill_from != definition.backfill_from:
            return  # re-activated, edited, deleted or advanced meanwhile: another run carries on
        self._store.save_calculated(
            replace(
                current,
                backfill_from=None if finished else after,
                backfill_done=current.backfill_done + read,
                backfill_finished_ms=self._clock.now_ms() if finished else None,
            ),
            progress=True,
        )


def _counts(entry: LogEntry, workspace_id: int) -> bool:
    return entry.status == BatchStatus.APPLIED and entry.workspace_id == workspace_id


def _folded(
    profile: Profile,
    compiled: Compiled,
    logged: list[LogEntry],
    events: dict[int | None, tuple[EventFact, ...]],
    now_ms: int,
) -> Profile:
    """The profile with the logged batches it has not folded yet for the definition
    (`history_to` says up to which log id it has) folded in."""
    workspace = profile.workspaces[compiled.workspace_id]
    state = workspace.calculated.get(compiled.name)
    if state is None or state.digest != compiled.digest:
        state = compiled.empty_state()
    fresh = [e for e in logged if e.id is not None and e.id > state.history_to]
    if not fresh:
        return profile
    items = [
        (event.timestamp_ms, compiled.values(event))
        for entry in fresh
        for event in events[entry.id]
        if compiled.matches(event)
    ]
    last = max(e.id or 0 for e in fresh)
    state = replace(fold_values(state, items, now_ms), history_to=last)
    states = {**workspace.calculated, compiled.name: state}
    workspace = with_values(replace(workspace, calculated=states), now_ms, {compiled.name})
    return replace(profile, workspaces={**profile.workspaces, compiled.workspace_id: workspace})


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
    last = 0
    for entry in reversed(store.log_for_profile(mpid, _PROFILE_LOG_LIMIT)):
        if _counts(entry, compiled.workspace_id):
            states = fold_events(states, [compiled], logged_events(entry, inputs), now_ms)
            last = max(last, entry.id or 0)
    # A computation at activation still running must not fold these batches again.
    return replace(states[compiled.name], history_to=last)


def logged_events(
    entry: LogEntry, inputs: Callable[[str], InputDef | None]
) -> tuple[EventFact, ...]:
    """The events of a logged batch, read as ingest read them (none when its input is
    gone or the body no longer reads)."""
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
