"""Ingest: accepted batch -> identity decision -> profile change, in one transaction per group.

Every accepted batch ends in the event log with its status, in the same transaction as the
profile change it caused; a group that fails is retried batch by batch so that one bad batch
costs only itself, and even that one is kept (status `failed`) for replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from kindred.attributes.active import scheduled
from kindred.domain.apply import apply_observation
from kindred.domain.applying import ApplyResult
from kindred.domain.changes import Change
from kindred.domain.errors import InvalidBatch, NotFound, StoreUnavailable
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import Observation
from kindred.domain.profile import Profile
from kindred.domain.tenancy import InputDef, Protection
from kindred.identity.resolve import Candidate, IdentityDecision, candidate_of, resolve
from kindred.identity.resolve import usable_identities as _usable
from kindred.ports import (
    BatchStatus,
    ConcurrentUpdate,
    LogEntry,
    Metrics,
    MpidSource,
    RejectEntry,
    Store,
    UnitOfWork,
)
from kindred.services.audiences import AudienceRegistry
from kindred.services.calculated import CalculatedRegistry
from kindred.services.identity import IdentityCalls
from kindred.services.items import (
    Accepted,
    IdentityCall,
    MergeCall,
    Outcome,
    Refused,
    WriterItem,
    apply_context,
    log_entry,
)
from kindred.services.merges import check_alias, follow, merge_into, restore, sync_index
from kindred.wire.observe import observe

__all__ = [
    "Accepted",
    "IdentityCall",
    "IngestService",
    "MergeCall",
    "Outcome",
    "Refused",
    "WriterItem",
]

log = logging.getLogger("kindred.ingest")

_MAX_CONFLICT_RETRIES = 5


class IngestService:
    def __init__(
        self,
        store: Store,
        mpids: MpidSource,
        metrics: Metrics,
        inputs: Callable[[str], InputDef | None] = lambda _: None,
        audiences: AudienceRegistry | None = None,
        *,
        calculated: CalculatedRegistry | None = None,
    ) -> None:
        """`inputs`: the input of a name, for batches applied again from the event log;
        `audiences`: live audience membership, kept on every applied batch;
        `calculated`: calculated attributes, folded on every applied batch."""
        self._inputs = inputs
        self._audiences = audiences
        self._calculated = calculated
        self._store = store
        self._mpids = mpids
        self._metrics = metrics
        self.identity = IdentityCalls(store, mpids)

    def ingest(self, items: Sequence[WriterItem]) -> list[Outcome]:
        """Apply a group of batches in one transaction (one commit, one fsync); raises
        StoreUnavailable when the store could not take them all."""
        outcomes: list[Outcome] = []
        for result in self.apply(items):
            if isinstance(result, StoreUnavailable):
                raise result
            outcomes.append(result)
        return outcomes

    def apply(self, items: Sequence[WriterItem]) -> list[Outcome | StoreUnavailable]:
        """What the group-commit writer runs: each item's outcome, or StoreUnavailable for
        those the store could not take (full, gone), which are not stored. When the group
        fails for another reason its batches are applied one by one, and those applied
        before the store filled keep their outcomes."""
        started = time.perf_counter()
        results: list[Outcome | StoreUnavailable]
        try:
            results = list(self._apply_group(items))
        except StoreUnavailable as exc:
            results = [exc] * len(items)  # each batch would fail alike
        except Exception:
            log.exception("group of %d failed; applying its batches one by one", len(items))
            results = [self._apply_alone(item) for item in items]
        self._metrics.group_committed(len(items), time.perf_counter() - started)
        for item, outcome in zip(items, results, strict=True):
            if not isinstance(outcome, StoreUnavailable):
                self._count(item, outcome)
        return results

    def _count(self, item: WriterItem, outcome: Outcome) -> None:
        if isinstance(item, IdentityCall) and outcome.notes:
            self._metrics.notes(item.input.name, [n.reason for n in outcome.notes])
        if not isinstance(item, Accepted):
            return
        name = item.input.name
        self._metrics.batch_done(name, outcome.status, len(item.observation.events))
        if outcome.notes:
            self._metrics.notes(name, [n.reason for n in outcome.notes])

    def _apply_group(self, items: Sequence[WriterItem]) -> list[Outcome]:
        """Another process (or a colliding new MPID) won a race: run the group again, a
        bounded number of times; the last attempt's ConcurrentUpdate propagates."""
        for _ in range(_MAX_CONFLICT_RETRIES - 1):
            try:
                return self._try_group(items)
            except ConcurrentUpdate:
                continue
        return self._try_group(items)

    def _try_group(self, items: Sequence[WriterItem]) -> list[Outcome]:
        with self._store.unit_of_work() as uow:
            if self._calculated is not None:
                self._calculated.sync(uow.calculated_version())
            _prefetch(uow, items)
            return [self._apply_one(uow, item) for item in items]

    def _apply_alone(self, item: WriterItem) -> Outcome | StoreUnavailable:
        try:
            return self._apply_group([item])[0]
        except StoreUnavailable as exc:
            return exc  # nothing of it stored: its sender is told to come back
        except Exception as exc:
            if not isinstance(item, Accepted):
                raise
            log.exception("batch from %s failed; kept for replay", item.input.name)
            reason = f"{type(exc).__name__}: {exc}"
            try:
                with self._store.unit_of_work() as uow:
                    uow.append_log(log_entry(item, BatchStatus.FAILED, None, reason))
            except StoreUnavailable as full:
                return full
            return Outcome(BatchStatus.FAILED)

    def _apply_one(self, uow: UnitOfWork, item: WriterItem) -> Outcome:
        if isinstance(item, Refused):
            entry = RejectEntry(
                input=item.input_name,
                received_ms=item.received_ms,
                kind=item.kind,
                reason=item.reason,
                body=item.body,
            )
            uow.record_reject(entry)
            return Outcome(item.kind)
        if isinstance(item, IdentityCall):
            now = item.observation.received_ms
            return self.identity.apply(uow, item, self._apply_to_profile, now)
        if isinstance(item, MergeCall):
            return self._merge_call(uow, item)
        return self._apply_batch(uow, item)

    def _apply_batch(self, uow: UnitOfWork, item: Accepted) -> Outcome:
        obs, source = item.observation, item.input
        if obs.source_request_id and not uow.claim_request(
            source.name, obs.source_request_id, obs.received_ms
        ):
            return Outcome(BatchStatus.DUPLICATE)
        if source.protection is Protection.READ_ONLY:
            return _logged(uow, item, BatchStatus.READ_ONLY, None, "read-only input")
        scope = source.workspace.identity_scope
        decision, profiles = self._decide(uow, item, scope)
        if decision.action == "unresolved":
            return _logged(uow, item, BatchStatus.UNRESOLVED, None, "no MPID and no identity")
        if decision.action == "create" and source.protection is Protection.UPDATE_ONLY:
            return _logged(uow, item, BatchStatus.DROPPED, None, "unknown user, update-only input")
        mpid = decision.mpid if decision.mpid is not None else self._fresh_mpid()
        return self._apply_to_profile(uow, item, decision, profiles.get(mpid), mpid)

    def _decide(
        self, uow: UnitOfWork, item: Accepted, scope: str
    ) -> tuple[IdentityDecision, dict[int, Profile]]:
        obs = item.observation
        policy = item.input.workspace.account.identity
        user, device, _ = _usable(obs, policy)
        keys = sorted(IdentityKey(t, v) for t, v in (*user.items(), *device.items()))
        uow.lock_identities(scope, keys)
        linked = uow.find_identities(scope, keys)
        wanted = {m for mpids in linked.values() for m in mpids}
        if obs.mpid is not None:
            wanted.add(obs.mpid)
        loaded = uow.load_profiles(sorted(wanted))
        if obs.mpid is not None and obs.mpid in loaded and loaded[obs.mpid].scope != scope:
            # The MPID names a profile of another identity scope: never cross scopes.
            return _unresolved(), {}
        if obs.mpid is not None and obs.mpid in loaded:
            # An MPID merged into another stands for its survivor (SDKs keep sending it).
            live = follow(uow, loaded[obs.mpid])
            if live is not None and live.mpid != obs.mpid:
                loaded[live.mpid] = live
                obs = msgspec.structs.replace(obs, mpid=live.mpid)
        profiles = {m: p for m, p in loaded.items() if p.scope == scope}
        matches: dict[IdentityKey, list[Candidate]] = {
            key: [candidate_of(profiles[m]) for m in mpids if m in profiles]
            for key, mpids in linked.items()
        }
        explicit = profiles.get(obs.mpid) if obs.mpid is not None else None
        decision = resolve(obs, policy, matches, candidate_of(explicit) if explicit else None)
        return decision, profiles

    def _fresh_mpid(self) -> int:
        # A collision with a stored MPID (odds ~N/2^64) fails save_profile's version check
        # with ConcurrentUpdate, and the retried group draws again.
        return self._mpids.new_mpid()

    def _apply_to_profile(
        self,
        uow: UnitOfWork,
        item: Accepted,
        decision: IdentityDecision,
        before: Profile | None,
        mpid: int,
        *,
        logged: bool = True,
    ) -> Outcome:
        """`logged`: append the batch to the event log (a replay re-points its entry)."""
        obs = item.observation
        ctx = apply_context(item, decision, mpid)
        result = apply_observation(before, obs, ctx)
        profile, changes = self._derive(uow, result, obs, ctx.workspace_id)
        uow.save_profile(profile)
        sync_index(uow, ctx.scope, mpid, before, profile)
        if logged:
            uow.append_log(log_entry(item, BatchStatus.APPLIED, mpid, None))
        notes = decision.notes + result.notes
        return Outcome(BatchStatus.APPLIED, mpid, notes, tuple(changes))

    def _derive(
        self, uow: UnitOfWork, result: ApplyResult, obs: Observation, workspace_id: int
    ) -> tuple[Profile, tuple[Change, ...]]:
        """The profile with what follows from the batch's changes: calculated attributes,
        audience memberships (their changes appended to the membership log), due time;
        every change made."""
        profile, changes, events = result.profile, tuple(result.changes), result.events
        if self._calculated is not None:
            profile, computed = self._calculated.refresh(
                profile, workspace_id, events, obs.received_ms
            )
            changes = (*changes, *computed)
        if self._audiences is not None:
            profile, moves = self._audiences.refresh(
                profile,
                changes,
                events,
                device_seen=bool(obs.device_info or obs.device_identities),
                now_ms=obs.received_ms,
            )
            if moves:
                uow.append_memberships(moves)
        if self._calculated is not None:
            profile = scheduled(profile, obs.received_ms)
        return profile, changes

    # --- aliases and un-merges ----------------------------------------------------------

    def _merge_call(self, uow: UnitOfWork, call: MergeCall) -> Outcome:
        try:
            if call.kind == "alias":
                return self._alias(uow, call)
            return self._unmerge(uow, call)
        except (InvalidBatch, NotFound) as refusal:
            return Outcome("refused", detail=refusal)

    def _alias(self, uow: UnitOfWork, call: MergeCall) -> Outcome:
        assert call.source is not None
        assert call.destination is not None
        loaded = uow.load_profiles([call.source, call.destination])
        source, destination = check_alias(
            follow(uow, loaded.get(call.source)),
            follow(uow, loaded.get(call.destination)),
            call.start_ms,
            call.end_ms,
        )
        if source.scope != call.scope:
            raise NotFound("alias: no such profiles in this workspace's identity scope")
        moved = uow.log_ids(source.mpid, call.start_ms, call.end_ms)
        survivor = merge_into(
            uow,
            destination,
            source,
            rule=call.rule,
            now_ms=call.received_ms,
            max_merged=call.max_merged,
            moved_log_ids=moved,
            detail=f"events {call.start_ms}..{call.end_ms}",
        )
        return Outcome(BatchStatus.APPLIED, survivor.mpid, detail=len(moved))

    def _unmerge(self, uow: UnitOfWork, call: MergeCall) -> Outcome:
        assert call.merge_id is not None
        entry = self._store.get_merge(call.merge_id)
        if entry is None or entry.scope != call.scope:
            raise NotFound(f"no merge {call.merge_id}")
        restore(uow, entry, call.received_ms)
        replayed = 0
        since = [
            e
            for e in reversed(self._store.log_for_profile(entry.survivor, 100_000))
            if e.received_ms >= entry.merged_ms and e.status == BatchStatus.APPLIED
        ]
        for logged in since:
            replayed += self._reapply(uow, logged)
        return Outcome(BatchStatus.APPLIED, entry.survivor, detail=replayed)

    def _reapply(self, uow: UnitOfWork, entry: LogEntry) -> int:
        """Apply a logged batch again, to the profile it resolves to now; re-point its log
        entry there. 1 when it applied."""
        source = self._inputs(entry.input)
        if source is None or entry.id is None:
            return 0
        obs = observe(entry.body, source, entry.received_ms, entry.client_ip)
        item = Accepted(source, obs, entry.body, entry.client_ip, entry.historical)
        decision, profiles = self._decide(uow, item, source.workspace.identity_scope)
        if decision.mpid is None or decision.action != "attach":
            return 0
        mpid = decision.mpid
        self._apply_to_profile(uow, item, decision, profiles.get(mpid), mpid, logged=False)
        uow.repoint_log([entry.id], mpid)
        return 1


def _prefetch(uow: UnitOfWork, items: Sequence[WriterItem]) -> None:
    """Tell the store everything this group will ask about, so it can read it in bulk."""
    identities: list[tuple[str, IdentityKey]] = []
    mpids: list[int] = []
    requests: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, Accepted) or item.input.protection is Protection.READ_ONLY:
            continue
        obs, workspace = item.observation, item.input.workspace
        user, device, _ = _usable(obs, workspace.account.identity)
        scope = workspace.identity_scope
        identities += [(scope, IdentityKey(t, v)) for t, v in (*user.items(), *device.items())]
        if obs.mpid is not None:
            mpids.append(obs.mpid)
        if obs.source_request_id:
            requests.append((item.input.name, obs.source_request_id))
    uow.prefetch(identities, mpids, requests)


def _unresolved() -> IdentityDecision:
    return IdentityDecision("unresolved", None, {}, {}, ())


def _logged(uow: UnitOfWork, item: Accepted, status: str, mpid: int | None, reason: str) -> Outcome:
    uow.append_log(log_entry(item, status, mpid, reason))
    return Outcome(status, mpid)
