"""The audience work that runs in the background, in chunks of their own transactions: the
time-trigger scheduler (AUD-5) and the backfill of activated or edited audiences: first
their event histories from the stored events (AUD-16), then their memberships."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from kindred.attributes.active import scheduled
from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import INT64_MIN, AudienceDef, Selection
from kindred.audiences.membership import evaluate_memberships
from kindred.audiences.prefilter import Held, needles
from kindred.domain.expiry import EXPIRED_CHANGE, due_by_expiry, without_expired
from kindred.ports import (
    AudienceStore,
    Clock,
    ConcurrentUpdate,
    DeferredSync,
    EventLogReader,
    Needles,
    ProfileReader,
)
from kindred.services.audiences.activation import (
    ActivationPass,
    SpanRunner,
    nesting_of,
    next_scope,
)
from kindred.services.audiences.activation_page import evaluated
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.transactions import Transactions

__all__ = ["BACKFILL_CHUNK", "AudienceBackfill", "AudienceScheduler", "nesting_of", "next_scope"]

BACKFILL_CHUNK = 500  # profiles a transaction


class _Store(AudienceStore, EventLogReader, ProfileReader, Protocol):
    """The definitions, whose progress the backfill keeps, the event log and the profiles
    it reads."""


class AudienceScheduler:
    """Re-evaluates the profiles whose due time has come (AUD-5): "last 7 days" windows
    closing, frequencies falling as events age out, without any new event. A chunk per
    transaction; safe in several processes (claimed rows are skipped elsewhere)."""

    def __init__(
        self,
        store: AudienceStore,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        chunk: int = 500,
        calculated: CalculatedRegistry | None = None,
    ):
        """`calculated`: recompute calculated values too (windows decay on the same due
        time)."""
        self._calculated = calculated
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._chunk = chunk

    def run(self) -> int:
        """Re-evaluate every due profile; returns how many membership changes it made."""
        now = self._clock.now_ms()
        changed = 0
        while True:
            try:
                done, moved = self._chunk_once(now)
            except ConcurrentUpdate:
                continue  # a batch updated a claimed profile: read the chunk again
            changed += moved
            if done < self._chunk:
                return changed

    def _chunk_once(self, now: int) -> tuple[int, int]:
        with self._transactions.begin() as uow:
            # The definitions as of this transaction: recomputing drops the states of
            # those it does not know (deleted), and must not drop a new one's.
            version = uow.definitions_version()
            active = self._registry.at(version).active
            due = uow.profiles.due(now, self._chunk)
            moved = 0
            ttls = self._registry.tenancy.attribute_ttls
            for profile in due:
                # Values whose time to live ran out (RET-4) are gone from here on: the
                # profile is stored without them.
                current, expired = without_expired(profile, ttls, now)
                if self._calculated is not None:
                    current = self._calculated.recompute(current, now, version=version)
                reason = EXPIRED_CHANGE if expired else "time"
                after, moves = evaluate_memberships(current, active, None, now, reason=reason)
                if after is current:
                    after = msgspec.structs.replace(current, audience_due_ms=None)
                if self._calculated is not None:
                    after = scheduled(after, now)
                after = due_by_expiry(after, ttls, now)
                uow.profiles.save(msgspec.structs.replace(after, version=profile.version + 1))
                if moves:
                    uow.memberships.append(moves)
                    moved += len(moves)
        return len(due), moved


class AudienceBackfill:
    """Computes an activated (or edited) audience over the profiles that already exist,
    in the background, resuming where it stopped (the cursors are kept on the definition).

    An audience with event criteria and batches stored before its activation (up to
    `history_to`) is computed by the activation's pass (services.audiences.activation):
    each page of profiles, in MPID order, gets its histories from the stored batches and is
    evaluated with them in one transaction. Meanwhile the audience is `warming`: ingest
    evaluates it only for the profiles the pass has been through (whose histories are
    complete) and those created since; once the pass is through every profile, a new
    version makes it an audience like any other.

    Any other is evaluated from the first scope's first profile, a chunk of profiles per
    transaction (in SQL, a page at a time, when time does not move it and no audience nests
    it). Live batches go on meanwhile: both evaluate the profile's current state in their
    own transaction, so nothing is lost or counted twice."""

    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        chunk: int = BACKFILL_CHUNK,
        chunks_per_run: int = 40,
        set_chunk: int = 20_000,
        durability: DeferredSync | None = None,
        elsewhere: SpanRunner | None = None,
    ) -> None:
        """`chunk`: profiles a transaction (each holds the store's writer meanwhile, so a
        live batch waits at most one chunk's time; an activation's page holds it only to
        save). `durability`: the activation's pages are synced to the disk once a run.
        `elsewhere`: where a large activation's pages are computed (other processes)."""
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._chunk = chunk
        self._chunks_per_run = chunks_per_run
        self._set_chunk = set_chunk
        self._pass = ActivationPass(
            store,
            transactions,
            registry,
            clock,
            page=chunk,
            durability=durability,
            elsewhere=elsewhere,
        )

    def run(self) -> int:
        """Advance every pending backfill by up to `chunks_per_run` chunks; returns how
        many profiles it evaluated."""
        evaluated = 0
        for audience in self._store.list_audiences():
            if audience.status == "active" and audience.backfill_scope is not None:
                evaluated += self._advance(audience)
        return evaluated

    def _advance(self, audience: AudienceDef) -> int:
        active = self._registry.current().active  # activated a moment ago, maybe elsewhere
        target = next((a for a in active if a.id == audience.id), None)
        if target is None or (target.warming and audience.history_from is None):
            return 0
        affected = nesting_of(target.id, active)
        if audience.history_from is not None:
            if target.warming:
                # Histories to compute from the stored events: the pass gives each profile
                # its histories and its memberships with them.
                _, evaluated = self._pass.advance(audience, target, affected, self._chunks_per_run)
                return evaluated
            finished = self._no_history(audience)
            if finished is None:
                return 0  # changed meanwhile: that change decides
            audience = finished
        return self._memberships(audience, target, active, affected)

    def _memberships(
        self,
        audience: AudienceDef,
        target: CompiledAudience,
        active: Sequence[CompiledAudience],
        affected: frozenset[int],
    ) -> int:
        """Advance the backfill of the audience's memberships by up to `chunks_per_run`
        chunks; how many profiles it evaluated."""
        wanted = _backfill_needles(target, affected)
        scopes = sorted(target.scopes)
        saved_scope = audience.backfill_scope or ""
        scope: str | None = saved_scope
        start = INT64_MIN if audience.backfill_from is None else audience.backfill_from
        if saved_scope not in scopes:
            scope, start = next_scope(scopes, saved_scope), INT64_MIN
        # An audience that time does not move and no other audience nests is computed by
        # the store in SQL, a page at a time; the others profile by profile.
        set_based = not target.timed and affected == {target.id}
        size = self._set_chunk if set_based else self._chunk
        evaluated = 0
        for _ in range(self._chunks_per_run):
            if scope is None:
                break
            if not self._unchanged(audience):
                return evaluated  # deactivated or edited meanwhile: that change decides
            if set_based:
                page = self._select_once(target, scope, start)
            else:
                page = self._chunk_once(target.id, scope, start, active, (affected, wanted))
            if page is None:
                break  # no way through (batches kept colliding, or stopped): resume here
            count, last = page
            evaluated += count
            if count == size:
                start = last + 1
            else:
                scope, start = next_scope(scopes, scope), INT64_MIN
        self._save(audience, scope, start, evaluated)
        return evaluated

    def _no_history(self, audience: AudienceDef) -> AudienceDef | None:
        """An audience with no stored events to fold (no event criteria, or an empty log
        at its activation): its histories are complete as they are; then its memberships."""
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        if (
            current is None
            or current.status != "active"
            or current.updated_ms != audience.updated_ms
            or current.history_from != audience.history_from
        ):
            return None  # edited, deactivated or advanced elsewhere: that run carries on
        return self._store.save_audience(
            msgspec.structs.replace(current, history_from=None), progress=True
        )

    def _unchanged(self, audience: AudienceDef) -> bool:
        """Still active and not edited since this run read it."""
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        return (
            current is not None
            and current.status == "active"
            and current.updated_ms == audience.updated_ms
        )

    def _chunk_once(
        self,
        target_id: int,
        scope: str,
        start: int,
        active: Sequence[CompiledAudience],
        which: tuple[frozenset[int], Needles | None],
    ) -> tuple[int, int] | None:
        affected, wanted = which
        now = self._clock.now_ms()
        ttls = self._registry.tenancy.attribute_ttls
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    if not uow.memberships.audience_active(target_id):
                        return None  # deactivated: its members are being removed
                    page = uow.profiles.page(scope, start, self._chunk, wanted)
                    for profile in page:
                        after, moves = evaluated(profile, active, affected, now=now, ttls=ttls)
                        if after is not profile:
                            uow.profiles.save(
                                msgspec.structs.replace(after, version=profile.version + 1)
                            )
                        if moves:
                            uow.memberships.append(moves)
                return len(page), page[-1].mpid if page else start
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: read the chunk again
        return None

    def _select_once(
        self, target: CompiledAudience, scope: str, start: int
    ) -> tuple[int, int] | None:
        now = self._clock.now_ms()
        selection = Selection(
            criteria=target.node, scope=scope, workspace_ids=target.workspaces, now_ms=now
        )
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    page = uow.memberships.apply_selection(
                        selection, target.membership(now), start, self._set_chunk, "backfill"
                    )
                if page.stopped:
                    return None
                return page.read, page.last_mpid if page.last_mpid is not None else start
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: select the page again
        return None

    def _save(self, audience: AudienceDef, scope: str | None, start: int, done: int) -> None:
        current = next((a for a in self._store.list_audiences() if a.id == audience.id), None)
        if (
            current is None
            or current.backfill_from != audience.backfill_from
            or current.updated_ms != audience.updated_ms
        ):
            return  # edited or advanced elsewhere meanwhile: that run carries on
        self._store.save_audience(
            msgspec.structs.replace(
                current,
                backfill_scope=scope,
                backfill_from=None if scope is None else start,
                backfill_done=current.backfill_done + done,
                backfill_finished_ms=self._clock.now_ms() if scope is None else None,
            ),
            progress=True,
        )


def _backfill_needles(target: CompiledAudience, affected: frozenset[int]) -> Needles | None:
    """What a profile's document must contain for the backfill to have anything to do:
    to match the criteria, or to hold the membership already (to leave). Only for an
    audience no other active audience nests (those would need their own)."""
    if affected != {target.id}:
        return None
    criteria = needles(target.node)
    if criteria is None:
        return None
    return ("or", [criteria, Held(target.id)])
