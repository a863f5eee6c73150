"""One batch into one profile, inside a unit of work: resolve the profile it belongs to,
apply it, bring what follows from it up to date (calculated attributes, audience
memberships, the due time), save, index and log.

Batches, IDSync calls (which are kept as batches without events) and the batches an
un-merge applies again all write profiles through here.
"""

from __future__ import annotations

import msgspec

from kindred.attributes.active import scheduled
from kindred.domain.apply import apply_observation
from kindred.domain.apply_context import ApplyResult
from kindred.domain.changes import Change
from kindred.domain.expiry import TtlRules, due_by_expiry, without_expired
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.identity.resolve import Candidate, IdentityDecision, candidate_of, resolve
from kindred.identity.resolve import usable_identities as _usable
from kindred.ports import BatchStatus, MpidSource, UnitOfWork
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.merges import follow, sync_index
from kindred.services.writes.commands import Accepted, BatchOutcome, apply_context, log_entry

__all__ = ["ProfileWriter", "batch_identities"]


def batch_identities(item: Accepted) -> list[IdentityKey]:
    """The identities of the batch its account's policy lets it use (user, then device)."""
    user, device, _ = _usable(item.observation, item.input.workspace.account.identity)
    return [IdentityKey(t, v) for t, v in (*user.items(), *device.items())]


class ProfileWriter:
    def __init__(
        self,
        mpids: MpidSource,
        audiences: AudienceRegistry | None = None,
        calculated: CalculatedRegistry | None = None,
    ) -> None:
        """`audiences`: live audience membership, kept on every applied batch;
        `calculated`: calculated attributes, folded on every applied batch."""
        self._mpids = mpids
        self._audiences = audiences
        self._calculated = calculated
        # Per-attribute expiry (RET-4), by workspace.
        self._ttls: dict[int, TtlRules] = audiences.tenancy.attribute_ttls if audiences else {}

    def resolve(
        self, uow: UnitOfWork, item: Accepted
    ) -> tuple[IdentityDecision, dict[int, Profile]]:
        """Which profile the batch belongs to (identities locked), and the profiles of its
        scope that were read to decide it."""
        obs, scope = item.observation, item.input.workspace.identity_scope
        policy = item.input.workspace.account.identity
        keys = sorted(batch_identities(item))
        uow.identities.lock(scope, keys)
        linked = uow.identities.find(scope, keys)
        wanted = {m for mpids in linked.values() for m in mpids}
        if obs.mpid is not None:
            wanted.add(obs.mpid)
        loaded = uow.profiles.load(sorted(wanted))
        foreign = obs.mpid is not None and obs.mpid in loaded and loaded[obs.mpid].scope != scope
        if foreign:
            # The MPID names a profile of another identity scope: never cross scopes. The
            # batch lands in the caller's own, as if it named no MPID (SEC-1).
            obs = msgspec.structs.replace(obs, mpid=None)
        if obs.mpid is not None and obs.mpid in loaded:
            # An MPID merged into another stands for its survivor (SDKs keep sending it).
            live = follow(uow.profiles, loaded[obs.mpid])
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
        if foreign and decision.action == "unresolved":
            # Nor identities to go by: a profile of its own, as an MPID new to the store
            # would have made (under an MPID drawn here: the one named is taken).
            decision = IdentityDecision("create", None, {}, {}, decision.notes)
        return decision, profiles

    def fresh_mpid(self) -> int:
        # A collision with a stored MPID (odds ~N/2^64) fails save_profile's version check
        # with ConcurrentUpdate, and the retried group draws again.
        return self._mpids.new_mpid()

    def apply(
        self,
        uow: UnitOfWork,
        item: Accepted,
        decision: IdentityDecision,
        before: Profile | None,
        mpid: int,
        *,
        logged: bool = True,
    ) -> BatchOutcome:
        """Apply the batch to profile `mpid` (`before` as stored, None for a new one).
        `logged`: append the batch to the event log (a replay re-points its entry)."""
        obs = item.observation
        ctx = apply_context(item, decision, mpid)
        # Values expired by now (RET-4) are gone before the batch applies: they neither
        # block its writes nor stay stored, and the audiences reading them are evaluated
        # again. A value the batch sets with a time already past its TTL is gone at once.
        expired: list[Change] = []
        if before is not None:
            before, expired = without_expired(before, self._ttls, obs.received_ms)
        result = apply_observation(before, obs, ctx)
        applied, born_expired = without_expired(result.profile, self._ttls, obs.received_ms)
        if expired or born_expired:
            changes = (*expired, *result.changes, *born_expired)
            result = ApplyResult(applied, changes, result.notes, result.events)
        profile, changes = self._derive(uow, result, item)
        uow.profiles.save(profile)
        sync_index(uow.identities, ctx.scope, mpid, before, profile)
        if logged:
            uow.log.append(log_entry(item, BatchStatus.APPLIED, mpid, None))
        notes = decision.notes + result.notes
        return BatchOutcome(BatchStatus.APPLIED, mpid, notes, tuple(changes))

    def _derive(
        self, uow: UnitOfWork, result: ApplyResult, item: Accepted
    ) -> tuple[Profile, tuple[Change, ...]]:
        """The profile with what follows from the batch's changes: calculated attributes,
        audience memberships (their changes appended to the membership log), due time;
        every change made."""
        profile, changes, events = result.profile, tuple(result.changes), result.events
        obs, workspace_id = item.observation, item.input.workspace.workspace_id
        if self._calculated is None and self._audiences is None:
            return profile, changes
        version = uow.definitions_version()
        if self._calculated is not None:
            profile, computed = self._calculated.refresh(
                profile, workspace_id, events, obs.received_ms, version=version
            )
            changes = (*changes, *computed)
        if self._audiences is not None:
            profile, moves = self._audiences.refresh(
                profile,
                changes,
                events,
                input_name=item.input.name,
                device_seen=bool(obs.device_info or obs.device_identities),
                now_ms=obs.received_ms,
                version=version,
            )
            if moves:
                uow.memberships.append(moves)
        if self._calculated is not None:
            profile = scheduled(profile, obs.received_ms)
        if self._audiences is not None:
            profile = due_by_expiry(profile, self._ttls, obs.received_ms)
        return profile, changes
