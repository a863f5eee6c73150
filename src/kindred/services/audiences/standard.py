"""Standard audiences (AUD-13): computed on request over the whole retained event log, their
members replaced when the calculation is done.

A calculation asked for (`AudienceService.calculate`: the audience's `calc_requested_ms`,
and `history_to`, the newest batch of the event log when it was asked) is run by the
background job of any server process (or `kindred audiences calculate`):

1. Claim it: the process's id and a lease on the definition (renewed every page; another
   process takes over a calculation whose lease ran out, from the start).
2. Fold the event log up to `history_to` a page at a time into the audience's histories of
   each profile (followed through merges), kept in memory, counting every event of the
   audience's inputs whatever its age (no lookback cap).
3. Decide every profile of its scopes a page at a time, its histories those of step 2 and
   everything else as stored (user criteria, nested memberships): who enters, who leaves.
4. Only then change the members, a chunk of profiles per transaction, each enter and exit
   in the membership log with the reason `calculated` (so connections receive adds and
   removes through the outbox like any membership change), re-evaluating the active
   real-time audiences that nest it; then record `computed_ms` and `expires_ms`.

An expired result stays in force (nested criteria and connections keep reading it) and is
shown as expired until the next calculation. Batches never change a standard audience.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Protocol

import msgspec

from kindred.audiences.compiled import CompiledAudience
from kindred.audiences.definition import INT64_MIN, AudienceDef, MembershipChange
from kindred.audiences.evaluate import DAY_MS
from kindred.audiences.history import fold_events, histories_of
from kindred.audiences.membership import evaluate_memberships
from kindred.domain.expiry import without_expired
from kindred.ports import (
    AudienceStore,
    BatchStatus,
    Clock,
    ConcurrentUpdate,
    EventLogReader,
    ProfileReader,
)
from kindred.services.audiences.log_reading import LogReading
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.forwarding.transactions import Transactions
from kindred.services.merges import follow_merged

__all__ = ["REASON", "StandardAudiences", "is_expired"]

REASON = "calculated"


class _Store(AudienceStore, EventLogReader, ProfileReader, Protocol):
    """The definitions (claims and results kept on them), the event log and the profiles."""


def is_expired(audience: AudienceDef, now_ms: int) -> bool:
    """A standard audience whose last calculation is past its expiry."""
    return audience.expires_ms is not None and audience.expires_ms <= now_ms


class StandardAudiences:
    """Runs the calculations asked for (see the module's text)."""

    def __init__(
        self,
        store: _Store,
        transactions: Transactions,
        registry: AudienceRegistry,
        clock: Clock,
        *,
        expiry_days: int = 30,
        log_page: int = 2_000,
        chunk: int = 500,
        lease_ms: int = 120_000,
    ) -> None:
        self._store = store
        self._transactions = transactions
        self._registry = registry
        self._clock = clock
        self._expiry_days = expiry_days
        self._log_page = log_page
        self._chunk = chunk
        self._lease_ms = lease_ms
        self._owner = uuid.uuid4().hex

    def run(self) -> int:
        """Run every calculation asked for that no other process holds; returns how many
        profiles entered or left."""
        moved = 0
        for audience in self._store.list_audiences():
            if audience.kind == "standard" and _requested(audience):
                done = self._calculate(audience)
                moved += done or 0
        return moved

    def pending(self) -> bool:
        return any(a.kind == "standard" and _requested(a) for a in self._store.list_audiences())

    def _calculate(self, audience: AudienceDef) -> int | None:
        claimed = self._claim(audience)
        if claimed is None:
            return None
        target = self._registry.compile(claimed)
        histories = self._fold(claimed, target)
        if histories is None:
            return None
        now = self._clock.now_ms()
        decided = self._decide(claimed, target, histories, now)
        if decided is None or self._renew(claimed) is None:
            return None
        moved = self._apply(target, decided, now)
        self._finish(claimed, now)
        return moved

    # --- claim ------------------------------------------------------------------------

    def _claim(self, audience: AudienceDef) -> AudienceDef | None:
        now = self._clock.now_ms()
        if audience.calc_owner not in (None, self._owner) and audience.calc_lease_ms > now:
            return None  # another process runs it
        self._store.save_audience(
            msgspec.structs.replace(
                audience, calc_owner=self._owner, calc_lease_ms=now + self._lease_ms
            ),
            progress=True,
        )
        return self._current_claim(audience)

    def _current_claim(self, audience: AudienceDef) -> AudienceDef | None:
        """The audience as saved, while this process still holds its calculation and
        nothing else changed (an edit, another request, a deactivation: start over)."""
        current = _saved(self._store, audience.id)
        if (
            current is None
            or current.status != "active"
            or current.calc_owner != self._owner
            or current.updated_ms != audience.updated_ms
            or current.calc_requested_ms != audience.calc_requested_ms
        ):
            return None
        return current

    def _renew(self, audience: AudienceDef) -> AudienceDef | None:
        current = self._current_claim(audience)
        if current is None:
            return None
        return self._store.save_audience(
            msgspec.structs.replace(current, calc_lease_ms=self._clock.now_ms() + self._lease_ms),
            progress=True,
        )

    # --- 2. the event log ---------------------------------------------------------------

    def _fold(
        self, audience: AudienceDef, target: CompiledAudience
    ) -> dict[int, dict[str, list[int]]] | None:
        """Each profile's histories for the audience, from the log up to `history_to`."""
        found: dict[int, dict[str, list[int]]] = {}
        if not target.histories:
            return found
        some = histories_of(target.histories)
        reading = LogReading(some, self._registry.tenancy.input_named)
        survivors: dict[int, int | None] = {}
        after = 0
        while after < audience.history_to:
            entries = self._store.read_log(after, self._log_page)
            if not entries:
                break
            now = self._clock.now_ms()
            for entry in entries:
                if (
                    entry.id is None
                    or entry.id > audience.history_to
                    or entry.status != BatchStatus.APPLIED
                    or entry.mpid is None
                ):
                    continue
                events = reading.events(entry)
                if not events:
                    continue
                mpid = self._survivor(entry.mpid, target, survivors)
                if mpid is not None:
                    found[mpid] = fold_events(found.get(mpid, {}), events, entry.input, some, now)
            after = entries[-1].id or after
            if len(entries) < self._log_page:
                break
            if self._renew(audience) is None:
                return None
        return found

    def _survivor(
        self, mpid: int, target: CompiledAudience, known: dict[int, int | None]
    ) -> int | None:
        if mpid not in known:
            live = follow_merged(self._store.get_profile, self._store.get_profile(mpid))
            known[mpid] = live.mpid if live is not None and live.scope in target.scopes else None
        return known[mpid]

    # --- 3. who is in -------------------------------------------------------------------

    def _decide(
        self,
        audience: AudienceDef,
        target: CompiledAudience,
        histories: dict[int, dict[str, list[int]]],
        now: int,
    ) -> dict[int, bool] | None:
        """The profiles whose membership changes: True entering, False leaving."""
        evaluated = dataclasses.replace(target, standard=False)
        only = frozenset({target.id})
        decided: dict[int, bool] = {}
        ttls = self._registry.tenancy.attribute_ttls
        for scope in sorted(target.scopes):
            start = INT64_MIN
            while True:
                with self._transactions.begin() as uow:
                    page = uow.profiles.page(scope, start, self._chunk)
                for profile in page:
                    if profile.merged_into is not None:
                        continue
                    counted = msgspec.structs.replace(
                        profile, event_times=histories.get(profile.mpid, {}), audience_due_ms=None
                    )
                    # Values past their time to live (RET-4) no longer count.
                    counted, _ = without_expired(counted, ttls, now)
                    _, moves = evaluate_memberships(counted, [evaluated], None, now, restrict=only)
                    for move in moves:
                        decided[move.mpid] = move.entered
                if len(page) < self._chunk:
                    break
                start = page[-1].mpid + 1
                if self._renew(audience) is None:
                    return None
        return decided

    # --- 4. the members replaced --------------------------------------------------------

    def _apply(self, target: CompiledAudience, decided: dict[int, bool], now: int) -> int:
        mpids = sorted(decided)
        moved = 0
        for n in range(0, len(mpids), self._chunk):
            chunk = mpids[n : n + self._chunk]
            for _ in range(5):
                try:
                    moved += self._apply_chunk(target, chunk, decided, now)
                    break
                except ConcurrentUpdate:
                    continue  # a batch changed one of them meanwhile: do the chunk again
        return moved

    def _apply_chunk(
        self, target: CompiledAudience, mpids: Sequence[int], decided: dict[int, bool], now: int
    ) -> int:
        moved = 0
        with self._transactions.begin() as uow:
            active = self._registry.at(uow.definitions_version()).active
            nesting = _nesting(target.id, active)
            for profile in uow.profiles.load(mpids).values():
                if profile.merged_into is not None:
                    continue
                entered = decided[profile.mpid]
                if entered == (target.id in profile.memberships):
                    continue
                memberships = dict(profile.memberships)
                if entered:
                    memberships[target.id] = target.membership(now)
                else:
                    del memberships[target.id]
                moves = [
                    MembershipChange(
                        audience_id=target.id,
                        mpid=profile.mpid,
                        entered=entered,
                        at_ms=now,
                        reason=REASON,
                    )
                ]
                after = msgspec.structs.replace(profile, memberships=memberships)
                if nesting:
                    view, _ = without_expired(after, self._registry.tenancy.attribute_ttls, now)
                    nested, outer = evaluate_memberships(
                        view, active, None, now, REASON, restrict=nesting
                    )
                    after = msgspec.structs.replace(
                        after,
                        memberships=nested.memberships,
                        audience_due_ms=nested.audience_due_ms,
                    )
                    moves.extend(outer)
                uow.profiles.save(msgspec.structs.replace(after, version=profile.version + 1))
                uow.memberships.append(moves)
                moved += 1
        return moved

    def _finish(self, audience: AudienceDef, now: int) -> None:
        current = _saved(self._store, audience.id)
        if current is None or current.calc_owner != self._owner:
            return
        days = audience.expiry_days or self._expiry_days
        again = current.calc_requested_ms != audience.calc_requested_ms
        self._store.save_audience(
            msgspec.structs.replace(
                current,
                computed_ms=now,
                expires_ms=now + days * DAY_MS,
                calc_requested_ms=current.calc_requested_ms if again else None,
                calc_owner=None,
                calc_lease_ms=0,
            ),
            progress=True,
        )


def _requested(audience: AudienceDef) -> bool:
    return audience.status == "active" and audience.calc_requested_ms is not None


def _saved(store: AudienceStore, audience_id: int) -> AudienceDef | None:
    return next((a for a in store.list_audiences() if a.id == audience_id), None)


def _nesting(audience_id: int, active: Sequence[CompiledAudience]) -> frozenset[int]:
    """The active real-time audiences nesting the audience, directly or not."""
    found: set[int] = set()
    inner = {audience_id}
    changed = True
    while changed:
        changed = False
        for audience in active:
            if audience.id not in found and not audience.standard and audience.nested & inner:
                found.add(audience.id)
                inner.add(audience.id)
                changed = True
    return frozenset(found)
