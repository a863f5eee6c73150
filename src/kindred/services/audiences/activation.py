"""An activation's pass over the profiles that already exist (AUD-5, AUD-16): each page of
profiles, in MPID order, has the batches logged under its MPIDs up to the activation's
cut (`history_to`) folded into the audience's histories, and is then evaluated against
the audience with them, in one transaction; so each profile is read, decoded and written
once, and neighbouring profiles share the store's pages.

Every profile the pass has been through is marked (`event_folded`: its own logged batches
folded up to `history_to`). The mark makes a page done again after a crash count nothing
twice, and it is what lets ingest evaluate the audience for that profile while the pass
goes on elsewhere (CompiledAudience.cold_for): live batches after the cut are recorded by
the writer that applies them, so a marked profile's histories are complete. A batch logged
under a merged profile's MPID is folded into its survivor, and marks the merged profile's
stub, which keeps its own marks (domain.merge), so merges during the pass lose or double
nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import msgspec

from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import INT64_MIN, AudienceDef, MembershipChange
from kindred.audiences.history import Histories, histories_of
from kindred.audiences.membership import evaluate_memberships
from kindred.domain.expiry import TtlRules, without_expired
from kindred.domain.profile import Profile
from kindred.ports import (
    AudienceStore,
    BatchStatus,
    Clock,
    ConcurrentUpdate,
    DeferredSync,
    EventLogReader,
    LogEntry,
    UnitOfWork,
)
from kindred.services.audiences.log_reading import LogReading, fold_logged
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.merges import follow_merged

__all__ = ["ActivationPass", "evaluated", "next_scope"]


class _Store(AudienceStore, EventLogReader, Protocol):
    """The definitions, whose progress the pass keeps, and the event log it reads."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one run of the pass works with: the audience's histories and their reader, the
    audiences to evaluate (the target as if already warm, and those nesting it), the
    attribute expiry rules and the instant."""

    audience: AudienceDef
    scopes: frozenset[str]
    some: Histories
    reading: LogReading
    live: tuple[CompiledAudience, ...]
    affected: frozenset[int]
    ttls: dict[int, TtlRules]
    now_ms: int


class ActivationPass:
    """Runs the pass for an audience, a page of profiles per transaction, resuming where it
    stopped (the cursor is the definition's `backfill_scope`/`backfill_from`)."""

    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        page: int,
        durability: DeferredSync | None = None,
    ) -> None:
        """`durability`: the store's pages may be committed without waiting for the disk,
        all synced at once at the end of a run (see `advance`)."""
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._page = page
        self._durability = durability

    def advance(
        self, audience: AudienceDef, target: CompiledAudience, affected: frozenset[int], pages: int
    ) -> tuple[AudienceDef | None, int]:
        """Up to `pages` pages; the audience as saved once the pass is complete (None
        before, or when it changed meanwhile), and how many profiles were evaluated."""
        plan = self._plan(audience, target, affected)
        scopes = sorted(target.scopes)
        scope: str | None = audience.backfill_scope or ""
        start = INT64_MIN if audience.backfill_from is None else audience.backfill_from
        if scope not in scopes:
            scope, start = next_scope(scopes, scope), INT64_MIN
        evaluated = 0
        # The pages' commits wait for no disk sync of their own: one sync after them, before
        # the cursor moves past them. A power loss before it can lose pages (not their
        # order: the WAL keeps commits in sequence), which the next run does again; the
        # marks make a page done twice count nothing twice.
        with self._deferred():
            for _ in range(pages):
                if scope is None:
                    break
                page = self._page_once(plan, scope, start)
                if page is None:
                    break  # changed meanwhile, or batches kept colliding: resume from here
                count, last = page
                evaluated += count
                if count == self._page:
                    start = last + 1
                else:
                    scope, start = next_scope(scopes, scope), INT64_MIN
        if self._durability is not None:
            self._durability.sync()
        return self._save(audience, scope, start, evaluated), evaluated

    def _deferred(self) -> AbstractContextManager[None]:
        if self._durability is None:
            return nullcontext()
        return self._durability.deferred_sync(copy_meanwhile=True)

    def _plan(
        self, audience: AudienceDef, target: CompiledAudience, affected: frozenset[int]
    ) -> _Plan:
        some = histories_of(target.histories)
        active = self._registry.current().active
        # The target is evaluated as if warm: the pass gives each profile its histories
        # before evaluating it.
        live = tuple(
            dataclasses.replace(a, warming=False) if a.id == target.id else a for a in active
        )
        return _Plan(
            audience,
            target.scopes,
            some,
            LogReading(some, self._registry.tenancy.input_named),
            live,
            affected,
            self._registry.tenancy.attribute_ttls,
            self._clock.now_ms(),
        )

    def _page_once(self, plan: _Plan, scope: str, start: int) -> tuple[int, int] | None:
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    uow.definitions_version()  # PostgreSQL: a definition saved waits for us
                    if not self._unchanged(plan.audience):
                        return None
                    profiles = uow.profiles.page(scope, start, self._page)
                    if profiles:
                        logged = self._store.log_for_mpid_range(
                            profiles[0].mpid,
                            profiles[-1].mpid,
                            plan.audience.history_to,
                            stamped_bodies=not plan.reading.reads_stamps,
                        )
                        _Page(uow, plan, profiles).fold_and_evaluate(logged)
                return len(profiles), profiles[-1].mpid if profiles else start
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: do the page again
        return None

    def _unchanged(self, audience: AudienceDef) -> bool:
        current = self._current(audience)
        return (
            current is not None
            and current.status == "active"
            and current.updated_ms == audience.updated_ms
        )

    def _current(self, audience: AudienceDef) -> AudienceDef | None:
        return next((a for a in self._store.list_audiences() if a.id == audience.id), None)

    def _save(
        self, audience: AudienceDef, scope: str | None, start: int, done: int
    ) -> AudienceDef | None:
        """Keep the cursor; once the pass is complete, a new version of the audience (so
        that every process evaluates it for every profile) with its backfill done."""
        current = self._current(audience)
        if (
            current is None
            or current.updated_ms != audience.updated_ms
            or current.history_from != audience.history_from
            or current.backfill_scope != audience.backfill_scope
            or current.backfill_from != audience.backfill_from
        ):
            return None  # edited or advanced elsewhere meanwhile: that run carries on
        if scope is not None:
            self._store.save_audience(
                msgspec.structs.replace(
                    current,
                    backfill_scope=scope,
                    backfill_from=start,
                    backfill_done=current.backfill_done + done,
                ),
                progress=True,
            )
            return None
        return self._store.save_audience(
            msgspec.structs.replace(
                current,
                history_from=None,
                backfill_scope=None,
                backfill_from=None,
                backfill_done=current.backfill_done + done,
                backfill_finished_ms=self._clock.now_ms(),
            )
        )


class _Page:
    """One page of profiles in a transaction: each profile's current state (a survivor
    outside the page is loaded when a merged profile's batches come to it), saved once."""

    def __init__(self, uow: UnitOfWork, plan: _Plan, profiles: Sequence[Profile]) -> None:
        self._uow = uow
        self._plan = plan
        self._profiles = profiles
        self._loaded = {p.mpid: p for p in profiles}
        self._state = dict(self._loaded)

    def fold_and_evaluate(self, logged: Iterable[LogEntry]) -> None:
        by_mpid: dict[int, list[LogEntry]] = {}
        for entry in logged:
            if entry.status == BatchStatus.APPLIED and entry.mpid is not None:
                by_mpid.setdefault(entry.mpid, []).append(entry)
        moves: list[MembershipChange] = []
        for stored in self._profiles:
            moves.extend(self._one(stored.mpid, by_mpid.get(stored.mpid, ())))
        for mpid, state in self._state.items():
            before = self._loaded[mpid]
            if state is not before:
                self._uow.profiles.save(msgspec.structs.replace(state, version=before.version + 1))
        if moves:
            self._uow.memberships.append(moves)

    def _one(self, mpid: int, own: Sequence[LogEntry]) -> list[MembershipChange]:
        plan = self._plan
        profile = self._state[mpid]
        done = _folded_to(profile, plan)
        fresh = [e for e in own if (e.id or 0) > done]
        if profile.merged_into is None:
            if done < plan.audience.history_to:
                self._state[mpid] = self._folded(_with_mark(profile, plan), fresh)
            return self._evaluate(mpid)
        if not fresh:
            return []
        # A merged profile's batches count for its survivor; its stub keeps the mark.
        self._state[mpid] = _with_mark(profile, plan)
        survivor = follow_merged(self._load, profile)
        if survivor is None or survivor.scope not in plan.scopes:
            return []
        self._state[survivor.mpid] = self._folded(survivor, fresh)
        return self._evaluate(survivor.mpid)

    def _folded(self, profile: Profile, logged: Sequence[LogEntry]) -> Profile:
        batches = [(e.input, self._plan.reading.events(e)) for e in logged]
        if not any(facts for _, facts in batches):
            return profile
        history = fold_logged(profile, self._plan.some, batches, self._plan.now_ms)
        return msgspec.structs.replace(profile, event_times=history)

    def _evaluate(self, mpid: int) -> list[MembershipChange]:
        plan = self._plan
        after, moves = evaluated(
            self._state[mpid], plan.live, plan.affected, now=plan.now_ms, ttls=plan.ttls
        )
        self._state[mpid] = after
        return moves

    def _load(self, mpid: int) -> Profile | None:
        if mpid not in self._state:
            found = self._uow.profiles.load([mpid]).get(mpid)
            if found is None:
                return None
            self._loaded[mpid] = self._state[mpid] = found
        return self._state[mpid]


def _folded_to(profile: Profile, plan: _Plan) -> int:
    """The log id up to which the batches logged under the profile's MPID are folded into
    the histories (an edit keeping the histories' keys folds only those after it)."""
    return min(profile.event_folded.get(key, 0) for key in plan.some.specs)


def _with_mark(profile: Profile, plan: _Plan) -> Profile:
    marks = dict.fromkeys(plan.some.specs, plan.audience.history_to)
    return msgspec.structs.replace(profile, event_folded={**profile.event_folded, **marks})


def evaluated(
    profile: Profile,
    active: Sequence[CompiledAudience],
    affected: frozenset[int],
    *,
    now: int,
    ttls: dict[int, TtlRules],
) -> tuple[Profile, list[MembershipChange]]:
    """The profile with its memberships of the `affected` audiences evaluated (a merged
    profile's stub as it is), and the changes to log. Evaluated without the values expired
    by now; the stored profile keeps them for the expiry sweep, which evaluates every
    audience reading them (this evaluates a few)."""
    if profile.merged_into is not None:
        return profile, []
    view, _ = without_expired(profile, ttls, now)
    after, moves = evaluate_memberships(view, active, None, now, "backfill", restrict=affected)
    if after is view:
        return profile, []
    kept = msgspec.structs.replace(
        profile, memberships=after.memberships, audience_due_ms=after.audience_due_ms
    )
    return kept, moves


def next_scope(scopes: Sequence[str], after: str | None) -> str | None:
    """The first scope after `after` (the first of all for None)."""
    later = [s for s in scopes if after is None or s > after]
    return later[0] if later else None
