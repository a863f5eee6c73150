"""An activation's pass over the profiles that already exist (AUD-5, AUD-16): each page of
profiles, in MPID order, has the batches logged under its MPIDs up to the activation's
cut (`history_to`) folded into the audience's histories, and is then evaluated against
the audience with them, in one transaction; so each profile is read, decoded and written
once, and neighbouring profiles share the store's pages.

A page is read and computed outside any write transaction, its saves made ready there too
(the SQL stores encode the documents), then saved in a short one that checks the versions
read (UnitOfWork.profiles.adopt): a live batch that changed one of its
profiles meanwhile makes it read and computed again (the last try holds the writer from
the read on). So the writer is held only for the saves, and pages can be computed in
several processes at once (`SpanRunner`: a run's pages split into spans, one group of
spans a process), which is how a large activation uses more than one core.

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
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, TypeAlias

import msgspec

from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import INT64_MIN, AudienceDef
from kindred.audiences.history import histories_of
from kindred.domain.profile import Profile
from kindred.ports import (
    AudienceStore,
    Clock,
    ConcurrentUpdate,
    DeferredSync,
    EventLogReader,
    LogEntry,
    ProfileReader,
    UnitOfWork,
)
from kindred.services.audiences.activation_page import Page, Plan
from kindred.services.audiences.log_reading import LogReading
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions

__all__ = ["ActivationPass", "Span", "SpanRunner", "nesting_of", "next_scope"]

# A span of a scope's MPIDs: from the first (included) to the second (excluded; None: to
# the scope's end). A run's spans each hold about a page of profiles.
Span: TypeAlias = tuple[int, int | None]

_TRIES = 5  # a page computed again after a live batch changed one of its profiles


class _Store(AudienceStore, EventLogReader, ProfileReader, Protocol):
    """The definitions, whose progress the pass keeps, the event log it reads and the
    profiles it reads its pages from."""


class SpanRunner(Protocol):
    """Runs a pass's spans elsewhere (in other processes: bootstrap.activation_processes),
    each as `ActivationPass.run_spans` runs them, their pages synced to the disk before
    it returns."""

    def run_spans(
        self, audience: AudienceDef, now_ms: int, scope: str, spans: Sequence[Span]
    ) -> list[int | None]:
        """How many profiles each span evaluated; None for a span not done (the audience
        changed meanwhile, or its pages kept colliding with live batches)."""
        ...


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
        elsewhere: SpanRunner | None = None,
        elsewhere_from: int = 8,
    ) -> None:
        """`durability`: the store's pages may be committed without waiting for the disk,
        all synced at once at the end of a run (see `advance`). `elsewhere`: a run of at
        least `elsewhere_from` pages is computed there (other processes), not here."""
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._page = page
        self._durability = durability
        self._elsewhere = elsewhere
        self._elsewhere_from = elsewhere_from

    def advance(
        self, audience: AudienceDef, target: CompiledAudience, affected: frozenset[int], pages: int
    ) -> tuple[AudienceDef | None, int]:
        """Up to `pages` pages; the audience as saved once the pass is complete (None
        before, or when it changed meanwhile), and how many profiles were evaluated."""
        plan = self._plan(audience, target, affected, self._clock.now_ms())
        scopes = sorted(target.scopes)
        scope: str | None = audience.backfill_scope or ""
        start = INT64_MIN if audience.backfill_from is None else audience.backfill_from
        if scope not in scopes:
            scope, start = next_scope(scopes, scope), INT64_MIN
        evaluated = 0
        left = pages
        # The pages' commits wait for no disk sync of their own: one sync after them, before
        # the cursor moves past them. A power loss before it can lose pages (not their
        # order: the WAL keeps commits in sequence), which the next run does again; the
        # marks make a page done twice count nothing twice.
        with self._deferred():
            while left > 0 and scope is not None:
                starts = self._store.page_starts(scope, start, self._page, left)
                spans = _spans_of(starts, left)
                counts = self._run(plan, scope, spans)
                evaluated += sum(counts)
                if len(counts) < len(spans):
                    if counts:
                        start = spans[len(counts)][0]
                    break  # changed meanwhile, or batches kept colliding: resume from here
                left -= len(spans)
                if len(starts) > len(spans):
                    start = starts[len(spans)]  # the scope goes on: the next run's start
                else:
                    scope, start = next_scope(scopes, scope), INT64_MIN
        if self._durability is not None:
            self._durability.sync()
        return self._save(audience, scope, start, evaluated), evaluated

    def run_spans(
        self, audience_id: int, updated_ms: int, now_ms: int, scope: str, spans: Sequence[Span]
    ) -> list[int | None]:
        """The spans of a run made in another process (SpanRunner), with this process's
        view of the audience (which must be the version that run has), synced before
        returning: how many profiles each evaluated, None for those not done."""
        audience = next((a for a in self._store.list_audiences() if a.id == audience_id), None)
        active = self._registry.current().active
        target = next((a for a in active if a.id == audience_id), None)
        if audience is None or audience.updated_ms != updated_ms or target is None:
            return [None] * len(spans)
        plan = self._plan(audience, target, nesting_of(audience_id, active), now_ms)
        with self._deferred():
            counts: list[int | None] = list(self._here(plan, scope, spans))
        if self._durability is not None:
            self._durability.sync()
        return counts + [None] * (len(spans) - len(counts))

    def _run(self, plan: Plan, scope: str, spans: Sequence[Span]) -> list[int]:
        """How many profiles each span evaluated, up to the first not done."""
        if self._elsewhere is None or len(spans) < self._elsewhere_from:
            return self._here(plan, scope, spans)
        done = self._elsewhere.run_spans(plan.audience, plan.now_ms, scope, spans)
        first_missing = next((i for i, c in enumerate(done) if c is None), len(done))
        return [c for c in done[:first_missing] if c is not None]

    def _here(self, plan: Plan, scope: str, spans: Sequence[Span]) -> list[int]:
        counts: list[int] = []
        for span in spans:
            count = self._span(plan, scope, span)
            if count is None:
                break
            counts.append(count)
        return counts

    def _span(self, plan: Plan, scope: str, span: Span) -> int | None:
        """The span's pages (more than one when profiles were made in it since its bounds
        were read): how many profiles they evaluated, None if one was not done."""
        start, below = span
        count = 0
        while True:
            page = self._page_once(plan, scope, start, below)
            if page is None:
                return None
            read, last = page
            count += read
            if read < self._page:
                return count
            start = last + 1

    def _deferred(self) -> AbstractContextManager[None]:
        if self._durability is None:
            return nullcontext()
        return self._durability.deferred_sync(copy_meanwhile=True)

    def _plan(
        self, audience: AudienceDef, target: CompiledAudience, affected: frozenset[int], now: int
    ) -> Plan:
        some = histories_of(target.histories)
        active = self._registry.current().active
        # The target is evaluated as if warm: the pass gives each profile its histories
        # before evaluating it.
        live = tuple(
            dataclasses.replace(a, warming=False) if a.id == target.id else a for a in active
        )
        return Plan(
            audience,
            target.scopes,
            some,
            LogReading(some, self._registry.tenancy.input_named),
            live,
            affected,
            self._registry.tenancy.attribute_ttls,
            now,
        )

    def _page_once(
        self, plan: Plan, scope: str, start: int, below: int | None
    ) -> tuple[int, int] | None:
        """Up to a page of the span's profiles from `start`: how many were read and the
        last one's MPID; None when the audience changed or the page kept colliding."""
        for attempt in range(_TRIES):
            try:
                if attempt < _TRIES - 1:
                    return self._computed_then_saved(plan, scope, start, below)
                return self._in_one_transaction(plan, scope, start, below)
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: do the page again
        return None

    def _computed_then_saved(
        self, plan: Plan, scope: str, start: int, below: int | None
    ) -> tuple[int, int] | None:
        profiles = self._store.profiles_between(scope, start, below, self._page)
        if not profiles:
            return 0, start
        page = Page(plan, profiles, self._store.get_profiles)
        page.fold_and_evaluate(self._logged(plan, profiles))
        saves = page.saves(self._store.prepare_saves)
        with self._transactions.begin() as uow:
            if not self._still(uow, plan.audience):
                return None
            page.save(uow, saves)
        return len(profiles), profiles[-1].mpid

    def _in_one_transaction(
        self, plan: Plan, scope: str, start: int, below: int | None
    ) -> tuple[int, int] | None:
        with self._transactions.begin() as uow:
            if not self._still(uow, plan.audience):
                return None
            read = uow.profiles.page(scope, start, self._page)
            profiles = [p for p in read if below is None or p.mpid < below]
            if not profiles:
                return 0, start
            page = Page(plan, profiles, uow.profiles.load)
            page.fold_and_evaluate(self._logged(plan, profiles))
            page.save(uow, page.saves(self._store.prepare_saves))
        return len(profiles), profiles[-1].mpid

    def _logged(self, plan: Plan, profiles: Sequence[Profile]) -> list[LogEntry]:
        return self._store.log_for_mpid_range(
            profiles[0].mpid,
            profiles[-1].mpid,
            plan.audience.history_to,
            stamped_bodies=not plan.reading.reads_stamps,
        )

    def _still(self, uow: UnitOfWork, audience: AudienceDef) -> bool:
        uow.definitions_version()  # PostgreSQL: a definition saved waits for us
        return self._unchanged(audience)

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


def _spans_of(starts: Sequence[int], pages: int) -> list[Span]:
    """A run's spans from where its pages start (`ProfileReader.page_starts`): the first
    `pages`, the last open when the scope ends within them."""
    bounds: list[int | None] = [*starts[1 : pages + 1]]
    if len(starts) <= pages:
        bounds.append(None)
    return list(zip(starts[:pages], bounds, strict=False))


def next_scope(scopes: Sequence[str], after: str | None) -> str | None:
    """The first scope after `after` (the first of all for None)."""
    later = [s for s in scopes if after is None or s > after]
    return later[0] if later else None


def nesting_of(audience_id: int, active: Sequence[CompiledAudience]) -> frozenset[int]:
    """The audience and every active audience that nests it, directly or not."""
    found = {audience_id}
    changed = True
    while changed:
        changed = False
        for audience in active:
            if audience.id not in found and audience.nested & found:
                found.add(audience.id)
                changed = True
    return frozenset(found)
