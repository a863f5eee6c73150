"""Shadow edits of an active real-time audience (BEY-4): a new definition computed while the
current one keeps serving, previewed, then promoted or discarded.

1. Start (`start`): the proposed definition is kept on the audience (`AudienceDef.shadow`)
   in a save that raises the definitions version and notes the newest event log id, as an
   activation does. From that version on, every writer keeps the proposed definition's
   histories on the profiles it applies (the registry tracks them beside the live
   audiences'), under a tag of their own; the live definition, its memberships and its
   forwarding are untouched.
2. Fold (background, `run`): the batches logged up to that id are folded into those
   histories a page of the log per transaction, each profile marking how far it is folded
   (as the activation's backfill does). Then the proposed histories of every profile are
   exact and stay so, whatever arrives meanwhile.
3. Decide (background): every profile of the audience's scopes, a page at a time, is
   evaluated against the proposed definition and compared with its live membership: who
   would enter, who would leave (counts and the smallest MPIDs of each). The first complete
   pass makes the shadow ready; the pass is run again while it waits, when batches were
   logged since the last one, so the preview follows live changes.
4. Promote (`promote`, refused unless ready): one definitions save makes the proposed
   definition the audience's (a new version in its history; its histories are the
   shadow's, already complete), then one transaction decides every profile again at that
   instant and changes the memberships that differ, each an entry or exit in the
   membership log that forwarding sends once; the shadow is then cleared. Deciding again
   rather than applying the preview is what makes it exact: the preview is as of its
   pass, the switch is as of the promotion. Nothing changed between them, the two are
   equal. A promotion cut short (the process stopped) is finished by the background job.
5. Discard (`discard`): the shadow is dropped; nothing else changed, so nothing else moves.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import msgspec

from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import (
    INT64_MIN,
    AudienceDef,
    MembershipChange,
    ShadowEdit,
    ShadowPreview,
)
from kindred.audiences.history import Histories, histories_of
from kindred.audiences.membership import evaluate_memberships
from kindred.audiences.shadow import (
    SAMPLE,
    pending_shadow,
    promoted,
    proposed,
    shadow_tag,
    tally,
)
from kindred.domain.errors import Conflict, InvalidBatch, NotFound
from kindred.domain.profile import Profile
from kindred.ports import (
    AudienceStore,
    BatchStatus,
    Clock,
    ConcurrentUpdate,
    EventLogReader,
    LogEntry,
    UnitOfWork,
)
from kindred.services.audiences.activation import nesting_of, next_scope
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.log_reading import LogPage
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions

__all__ = ["REASON", "Promotion", "ShadowEdits", "ShadowView"]

# The reason of the entries and exits a promotion logs.
REASON = "shadow promoted"


class _Store(AudienceStore, EventLogReader, Protocol):
    """The definitions (the shadow kept on its audience) and the event log it folds."""


class ShadowView(msgspec.Struct, kw_only=True):
    """A shadow as the admin API and CLI show it."""

    audience_id: int
    status: str  # computing | ready | promoting
    phase: str  # folding | computing | ready | promoting
    started_ms: int
    started_by: str
    definition: AudienceDef
    # Progress: the event log folded so far and up to where, the profiles decided by the
    # pass under way (None when none runs).
    log_folded: int
    log_to: int
    profiles_evaluated: int | None
    # The last complete pass (None before the first): as of when, how many would enter and
    # leave, and the smallest MPIDs of each (strings, as MPIDs are 64-bit).
    as_of_ms: int | None = None
    evaluated: int | None = None
    entering: int | None = None
    leaving: int | None = None
    entering_sample: list[str] = msgspec.field(default_factory=list)
    leaving_sample: list[str] = msgspec.field(default_factory=list)


class Promotion(msgspec.Struct, kw_only=True):
    """What a promotion changed: the version it made, the profiles that entered and left."""

    audience_id: int
    promoted_ms: int
    entered: int
    left: int
    version: int | None = None


class ShadowEdits:
    """Shadow edits (see the module's text)."""

    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        registry: AudienceRegistry,
        audiences: AudienceService,
        clock: Clock,
        *,
        sample: int = SAMPLE,
        chunk: int = 500,
        log_page: int = 2_000,
        pages_per_run: int = 40,
        refresh_after_ms: int = 5_000,
        resume_after_ms: int = 120_000,
    ) -> None:
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._audiences = audiences
        self._clock = clock
        self._sample = sample
        self._chunk = chunk
        self._log_page = log_page
        self._pages_per_run = pages_per_run
        self._refresh_after_ms = refresh_after_ms
        self._resume_after_ms = resume_after_ms
        # Each read-then-save of a definition here holds it, so that the background job's
        # progress never overwrites an admin's start, promotion or discard made meanwhile
        # in this process (another process relies on the checks before each save).
        self._saving = threading.Lock()
        # When this process last looked whether a ready shadow's preview is stale.
        self._checked: dict[tuple[int, int], int] = {}

    # --- the admin's calls -------------------------------------------------------------

    def start(self, audience_id: int, definition: AudienceDef, started_by: str = "") -> ShadowView:
        """Keep `definition` as the audience's shadow edit (replacing one there was) and
        start computing it; the live definition keeps serving."""
        live = self._audiences.get(audience_id)
        if live.status != "active" or live.kind != "real_time":
            raise Conflict(
                f"audience {audience_id} is not an active real-time audience: edit it directly"
            )
        if live.history_from is not None or live.backfill_scope is not None:
            raise Conflict(
                f"audience {audience_id} is still being computed; start a shadow edit once"
                " its backfill is done"
            )
        if live.shadow is not None and live.shadow.phase == "promoting":
            raise Conflict(f"audience {audience_id}'s shadow edit is being promoted")
        now = self._clock.now_ms()
        if definition.kind != live.kind:
            raise InvalidBatch(f"a {live.kind} audience stays one", "kind")
        candidate = msgspec.structs.replace(
            definition,
            id=audience_id,
            status="active",
            created_ms=live.created_ms,
            created_by=live.created_by,
            updated_ms=now,
            updated_by=started_by,
            history_tag_ms=shadow_tag(live, now),
            history_to=0,
            history_from=0,
            backfill_scope=None,
            backfill_from=None,
            backfill_done=0,
            backfill_finished_ms=None,
            computed_ms=None,
            expires_ms=None,
            calc_requested_ms=None,
            calc_owner=None,
            calc_lease_ms=0,
            shadow=None,
        )
        self._audiences.check(candidate)
        shadow = ShadowEdit(
            definition=candidate,
            base_updated_ms=live.updated_ms,
            started_ms=now,
            started_by=started_by,
        )
        # A version raised (writers keep the proposed histories from now on) and the
        # newest log id noted in the same save: the batches up to it are the fold's.
        with self._saving:
            cut = self._store.save_audience(
                msgspec.structs.replace(live, shadow=shadow), cut_log=True
            ).history_to
            shadow.definition = msgspec.structs.replace(candidate, history_to=cut)
            saved = self._store.save_audience(
                msgspec.structs.replace(live, shadow=shadow), progress=True
            )
        return _view(saved, shadow)

    def show(self, audience_id: int) -> ShadowView:
        live = self._audiences.get(audience_id)
        shadow = self._shadow_of(live)
        return _view(live, shadow)

    def discard(self, audience_id: int) -> ShadowView:
        """Drop the shadow: nothing else changes."""
        with self._saving:
            live = self._audiences.get(audience_id)
            shadow = self._shadow_of(live)
            if shadow.phase == "promoting":
                raise Conflict(f"audience {audience_id}'s shadow edit is being promoted")
            # A version raised: writers stop keeping its histories.
            self._store.save_audience(msgspec.structs.replace(live, shadow=None))
        return _view(live, shadow)

    def promote(self, audience_id: int, promoted_by: str = "") -> Promotion:
        """Swap the definitions and switch the memberships that differ (see the module's
        text); refused unless the shadow is ready."""
        with self._saving:
            live = self._audiences.get(audience_id)
            shadow = self._shadow_of(live)
            if shadow.phase != "ready":
                raise Conflict(
                    f"audience {audience_id}'s shadow edit is not ready ({shadow.phase}); see"
                    " its progress and promote it once it is ready"
                )
            self._audiences.check(proposed(shadow))  # still valid (a nested one may be gone)
            now = self._clock.now_ms()
            before = self._scopes_of(live)  # its members there leave if the new one has none
            saved = self._store.save_audience(promoted(live, shadow, now, promoted_by))
        entered, left = self._switch(saved, now, before)
        self._finish(saved)
        versions = self._store.audience_versions(audience_id)
        return Promotion(
            audience_id=audience_id,
            promoted_ms=now,
            entered=entered,
            left=left,
            version=versions[-1].version if versions else None,
        )

    def _scopes_of(self, audience: AudienceDef) -> frozenset[str]:
        try:
            return self._registry.compile(audience).scopes
        except InvalidBatch:
            return frozenset()

    def _shadow_of(self, live: AudienceDef) -> ShadowEdit:
        shadow = live.shadow
        if shadow is None or (shadow.phase != "promoting" and pending_shadow(live) is None):
            raise NotFound(f"audience {live.id} has no shadow edit")
        return shadow

    # --- the background job ------------------------------------------------------------

    def run(self) -> int:
        """Advance every shadow by a bounded amount of work: its fold, its pass, a refresh
        of a ready one's preview, or a promotion cut short; returns the log pages and
        profile pages it went through."""
        done = 0
        for audience in self._store.list_audiences():
            shadow = audience.shadow
            if shadow is None:
                continue
            if shadow.phase == "promoting":
                done += self._resume_promotion(audience, shadow)
            elif pending_shadow(audience) is None:
                self._drop_void(audience)
            else:
                done += self._advance(audience, shadow)
        return done

    def _advance(self, live: AudienceDef, shadow: ShadowEdit) -> int:
        try:
            target = self._registry.compile(proposed(shadow))
        except InvalidBatch:
            return 0  # no longer compiles (a nested audience deleted): promotion refuses it
        if shadow.phase == "folding":
            return self._fold(live, shadow, target)
        if shadow.scan is None:
            if not self._stale(live, shadow, target):
                return 0
            began = self._begin_scan(live, shadow, target)
            if began is None:
                return 0
            shadow = began
        return self._scan(live, shadow, target)

    def _drop_void(self, audience: AudienceDef) -> None:
        """A shadow the audience's own change made void: cleared, nothing else moves."""
        with self._saving:
            current = _saved(self._store, audience.id)
            if current is None or current.updated_ms != audience.updated_ms:
                return
            self._store.save_audience(msgspec.structs.replace(current, shadow=None), progress=True)

    # --- 2. fold ----------------------------------------------------------------------

    def _fold(self, live: AudienceDef, shadow: ShadowEdit, target: CompiledAudience) -> int:
        cut = shadow.definition.history_to
        after = shadow.definition.history_from or 0
        some = histories_of(target.histories)
        pages = 0
        finished = not target.histories or after >= cut
        while not finished and pages < self._pages_per_run:
            entries = self._store.read_log(after, self._log_page)
            wanted = [
                e
                for e in entries
                if e.id is not None
                and e.id <= cut
                and e.status == BatchStatus.APPLIED
                and e.mpid is not None
            ]
            if wanted and not self._fold_page(target, some, wanted):
                return pages  # batches kept colliding: resume from here next run
            pages += 1
            after = (entries[-1].id or after) if entries else after
            finished = len(entries) < self._log_page or after >= cut
        definition = msgspec.structs.replace(shadow.definition, history_from=after)
        moved = msgspec.structs.replace(shadow, definition=definition)
        if finished:
            moved = msgspec.structs.replace(moved, phase="computing")
        saved = self._save_progress(live, shadow, moved)
        return pages + (1 if finished and saved else 0)  # a phase ended: work done

    def _fold_page(
        self, target: CompiledAudience, some: Histories, entries: list[LogEntry]
    ) -> bool:
        """A page of logged batches folded into their profiles' proposed histories, in one
        transaction (each profile marks how far it is folded: a page folded again is not
        counted twice)."""
        page = LogPage.of(entries, some, self._registry.tenancy.input_named)
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    page.fold(uow, target.scopes, some, self._clock.now_ms())
                return True
            except ConcurrentUpdate:
                continue  # a batch changed one of them meanwhile: fold the page again
        return False

    # --- 3. decide --------------------------------------------------------------------

    def _stale(self, live: AudienceDef, shadow: ShadowEdit, target: CompiledAudience) -> bool:
        """Whether a pass is due: none complete yet, or the preview is older than the
        refresh interval and something it read may have moved since: a batch logged, a
        membership of the audience or of one either definition nests changed (the
        scheduler's, a backfill's), or, for a definition time alone changes, the clock."""
        if shadow.preview is None:
            return True
        now = self._clock.now_ms()
        if now - shadow.preview.as_of_ms < self._refresh_after_ms:
            return False
        if target.timed and now > shadow.preview.as_of_ms:
            return True
        # What it read is looked at once a refresh interval, not on every run.
        checked = self._checked.get((live.id, shadow.started_ms))
        if checked is not None and now - checked < self._refresh_after_ms:
            return False
        self._checked[live.id, shadow.started_ms] = now
        return self._marks(live, target) != shadow.scan_marks

    def _marks(self, live: AudienceDef, target: CompiledAudience) -> list[int]:
        newest = self._store.latest_log(1)
        marks = [(newest[0].id or 0) if newest else 0]
        try:
            nested = self._registry.compile(live).nested
        except InvalidBatch:
            nested = frozenset()
        for audience_id in sorted({live.id} | target.nested | nested):
            counts = self._store.membership_counts(audience_id, 0)
            marks += [counts.entered, counts.exited]
        return marks

    def _begin_scan(
        self, live: AudienceDef, shadow: ShadowEdit, target: CompiledAudience
    ) -> ShadowEdit | None:
        began = msgspec.structs.replace(
            shadow,
            scan=ShadowPreview(as_of_ms=self._clock.now_ms()),
            scan_scope=None,
            scan_from=INT64_MIN,
            scan_marks=self._marks(live, target),
        )
        return began if self._save_progress(live, shadow, began) else None

    def _scan(self, live: AudienceDef, shadow: ShadowEdit, target: CompiledAudience) -> int:
        """Decide up to `pages_per_run` pages of profiles; the preview once every scope is
        done."""
        assert shadow.scan is not None
        scan = msgspec.structs.replace(
            shadow.scan,
            entering_sample=list(shadow.scan.entering_sample),
            leaving_sample=list(shadow.scan.leaving_sample),
        )
        scopes = sorted(target.scopes | self._scopes_of(live))
        scope = shadow.scan_scope if shadow.scan_scope in scopes else next_scope(scopes, None)
        start = shadow.scan_from
        pages = 0
        while scope is not None and pages < self._pages_per_run:
            with self._transactions.begin() as uow:
                page = uow.profiles.page(scope, start, self._chunk)
            self._decide(page, target, scan)
            pages += 1
            if len(page) == self._chunk:
                start = page[-1].mpid + 1
            else:
                scope, start = next_scope(scopes, scope), INT64_MIN
        if scope is None:
            done = msgspec.structs.replace(
                shadow, phase="ready", scan=None, scan_scope=None, preview=scan
            )
        else:
            done = msgspec.structs.replace(shadow, scan=scan, scan_scope=scope, scan_from=start)
        self._save_progress(live, shadow, done)
        return pages

    def _decide(
        self, page: Sequence[Profile], target: CompiledAudience, scan: ShadowPreview
    ) -> None:
        only = frozenset({target.id})
        for profile in page:
            if profile.merged_into is not None:
                continue
            scan.evaluated += 1
            if profile.scope not in target.scopes:  # a scope only the live definition reads
                if target.id in profile.memberships:
                    tally(scan, profile.mpid, False, self._sample)
                continue
            _, moves = evaluate_memberships(profile, [target], None, scan.as_of_ms, restrict=only)
            for move in moves:
                if move.audience_id == target.id:
                    tally(scan, move.mpid, move.entered, self._sample)

    def _save_progress(self, live: AudienceDef, read: ShadowEdit, moved: ShadowEdit) -> bool:
        """Save the shadow's progress unless the audience or its shadow changed since this
        run read them (an edit, a discard, another process advancing it)."""
        with self._saving:
            return self._save_unchanged(live, read, moved)

    def _save_unchanged(self, live: AudienceDef, read: ShadowEdit, moved: ShadowEdit) -> bool:
        current = _saved(self._store, live.id)
        if (
            current is None
            or current.updated_ms != live.updated_ms
            or current.shadow is None
            or current.shadow.started_ms != read.started_ms
            or current.shadow.phase != read.phase
            or current.shadow.definition.history_from != read.definition.history_from
            or current.shadow.scan_scope != read.scan_scope
            or current.shadow.scan_from != read.scan_from
        ):
            return False
        self._store.save_audience(msgspec.structs.replace(current, shadow=moved), progress=True)
        return True

    # --- 4. promote -------------------------------------------------------------------

    def _switch(self, audience: AudienceDef, now: int, before: frozenset[str]) -> tuple[int, int]:
        """Every profile of the audience's scopes (and of the scopes `before`, those of the
        definition it replaced) decided at `now` under the definitions the promotion
        saved, in one transaction; (entered, left)."""
        start = ("", INT64_MIN)
        for _ in range(5):
            try:
                with self._transactions.begin() as uow:
                    return self._switch_pages(uow, (audience, before), now, start, None)[0]
            except ConcurrentUpdate:
                continue  # a batch changed a profile meanwhile: decide them all again
        # Batches kept colliding with one long transaction: page by page instead. Writers
        # already evaluate the new definition, so a profile a batch moved in between is
        # found in place and moves once.
        entered = left = 0
        following: tuple[str, int] | None = start
        while following is not None:
            at = following
            for _ in range(5):
                try:
                    with self._transactions.begin() as uow:
                        moved, following = self._switch_pages(uow, (audience, before), now, at, 1)
                    entered, left = entered + moved[0], left + moved[1]
                    break
                except ConcurrentUpdate:
                    continue
            else:
                raise Conflict("batches kept changing the audience's profiles; promote again")
        return entered, left

    def _switch_pages(
        self,
        uow: UnitOfWork,
        which: tuple[AudienceDef, frozenset[str]],
        now: int,
        start: tuple[str, int],
        pages: int | None,
    ) -> tuple[tuple[int, int], tuple[str, int] | None]:
        """Up to `pages` pages of profiles (None: all) switched from `start` (a scope and
        an MPID); (entered, left) and where the next page starts (None: done)."""
        audience, before = which
        active = self._registry.at(uow.definitions_version()).active
        target = next((a for a in active if a.id == audience.id), None)
        if target is None:
            raise Conflict(f"audience {audience.id} is no longer active")
        affected = nesting_of(audience.id, active)
        scopes = sorted(target.scopes | before)
        scope = start[0] if start[0] in scopes else next_scope(scopes, None)
        mpid = start[1]
        entered = left = done = 0
        while scope is not None and (pages is None or done < pages):
            page = uow.profiles.page(scope, mpid, self._chunk)
            done += 1
            for profile in page:
                if profile.merged_into is not None:
                    continue
                after, moves = _switched(profile, target, active, affected, now)
                if after is profile:
                    continue
                uow.profiles.save(msgspec.structs.replace(after, version=profile.version + 1))
                if moves:
                    uow.memberships.append(moves)
                entered += _count(moves, audience.id, entered=True)
                left += _count(moves, audience.id, entered=False)
            if len(page) == self._chunk:
                mpid = page[-1].mpid + 1
            else:
                scope, mpid = next_scope(scopes, scope), INT64_MIN
        return (entered, left), None if scope is None else (scope, mpid)

    def _finish(self, audience: AudienceDef) -> None:
        """The promotion done: its shadow cleared (unless the audience changed since)."""
        with self._saving:
            current = _saved(self._store, audience.id)
            if current is None or current.updated_ms != audience.updated_ms:
                return
            self._store.save_audience(msgspec.structs.replace(current, shadow=None), progress=True)

    def _resume_promotion(self, audience: AudienceDef, shadow: ShadowEdit) -> int:
        """A promotion whose process stopped before it was done: finished here, once it
        has been under way longer than any promotion takes."""
        if audience.status != "active" or shadow.base_updated_ms != audience.updated_ms:
            self._drop_void(audience)
            return 0
        if self._clock.now_ms() - shadow.base_updated_ms < self._resume_after_ms:
            return 0
        everywhere = frozenset(w.identity_scope for w in self._registry.tenancy.workspaces.values())
        self._switch(audience, self._clock.now_ms(), everywhere)
        self._finish(audience)
        return 1


def _switched(
    profile: Profile,
    target: CompiledAudience,
    active: Sequence[CompiledAudience],
    affected: frozenset[int],
    now: int,
) -> tuple[Profile, list[MembershipChange]]:
    """The profile under the promoted definitions and the changes to log. A member in a
    scope the new definition does not read leaves (evaluating skips such a profile)."""
    if profile.scope in target.scopes or target.id not in profile.memberships:
        return evaluate_memberships(profile, active, None, now, REASON, restrict=affected)
    memberships = {k: v for k, v in profile.memberships.items() if k != target.id}
    gone = MembershipChange(
        audience_id=target.id, mpid=profile.mpid, entered=False, at_ms=now, reason=REASON
    )
    left = msgspec.structs.replace(profile, memberships=memberships)
    after, moves = evaluate_memberships(left, active, None, now, REASON, restrict=affected)
    return after, [gone, *moves]


def _view(live: AudienceDef, shadow: ShadowEdit) -> ShadowView:
    preview, definition = shadow.preview, shadow.definition
    folding = shadow.phase == "folding"
    return ShadowView(
        audience_id=live.id,
        status="computing" if shadow.phase in ("folding", "computing") else shadow.phase,
        phase=shadow.phase,
        started_ms=shadow.started_ms,
        started_by=shadow.started_by,
        definition=definition,
        log_folded=(definition.history_from or 0) if folding else definition.history_to,
        log_to=definition.history_to,
        profiles_evaluated=shadow.scan.evaluated if shadow.scan is not None else None,
        as_of_ms=preview.as_of_ms if preview else None,
        evaluated=preview.evaluated if preview else None,
        entering=preview.entering if preview else None,
        leaving=preview.leaving if preview else None,
        entering_sample=[str(m) for m in preview.entering_sample] if preview else [],
        leaving_sample=[str(m) for m in preview.leaving_sample] if preview else [],
    )


def _count(moves: Sequence[MembershipChange], audience_id: int, *, entered: bool) -> int:
    return sum(1 for m in moves if m.audience_id == audience_id and m.entered == entered)


def _saved(store: AudienceStore, audience_id: int) -> AudienceDef | None:
    return next((a for a in store.list_audiences() if a.id == audience_id), None)
