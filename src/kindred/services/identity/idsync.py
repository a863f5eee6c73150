"""IDSync calls (IDS-1 … IDS-4): identify, search, login, logout and modify.

A call that changes nothing (a search; an identify of a user whose identities are all
linked already) is answered from the readers, without the writer. Every other call goes
through the single writer like a batch, where the decision is taken again under the
identity locks, so two concurrent first identifies of one user make one profile.

A call that attaches identities or creates a profile is kept in the event log as a batch
with no events (its identities, the MPID it resolved to), so a rebuild makes the same
profiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from kindred.domain.apply import identity_keys
from kindred.domain.changes import Note
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import Observation
from kindred.domain.profile import IdentityEntry, Profile
from kindred.identity.idsync import CallDecision, decide_call, decide_modify, is_logged_in
from kindred.identity.resolve import Candidate, IdentityDecision, candidate_of, usable_identities
from kindred.ports import Metrics, ProfileReader, UnitOfWork
from kindred.services.ingest.profile_writer import ProfileWriter
from kindred.services.merges import follow_merged, merge_into, sync_index
from kindred.services.writes.commands import (
    Accepted,
    HandlerBase,
    IdentityAnswer,
    IdentityCall,
    IdentityOutcome,
    ModifyCall,
    ModifyOutcome,
)

__all__ = ["IdentityCallHandler", "IdentityCalls", "ModifyHandler"]

_ENCODER = msgspec.json.Encoder()
_REFUSALS: tuple[type[Exception], ...] = (InvalidBatch, NotFound)


class _View(Protocol):
    def find(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]: ...

    def load(self, mpids: Iterable[int]) -> dict[int, Profile]: ...


class _ReaderView:
    """Committed data, through the store's readers (no locks)."""

    def __init__(self, store: ProfileReader) -> None:
        self._store = store

    def find(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        return self._store.find_linked(scope, keys)

    def load(self, mpids: Iterable[int]) -> dict[int, Profile]:
        loaded = {m: self._store.get_profile(m) for m in mpids}
        return {m: p for m, p in loaded.items() if p is not None}


class _UowView:
    """This transaction's data, identities locked."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def find(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        self._uow.identities.lock(scope, keys)
        return self._uow.identities.find(scope, keys)

    def load(self, mpids: Iterable[int]) -> dict[int, Profile]:
        return self._uow.profiles.load(mpids)


@dataclass(frozen=True, slots=True)
class _Decided:
    decision: CallDecision
    profiles: dict[int, Profile]
    previous: Profile | None


class IdentityCalls:
    """The IDSync calls answered without the writer, from committed data."""

    def __init__(self, store: ProfileReader) -> None:
        self._readers = _ReaderView(store)

    def read_only(self, call: IdentityCall) -> IdentityAnswer | None:
        """The answer when the call would change nothing; None when it needs the writer.
        Raises NotFound (search of an unknown user) and InvalidBatch."""
        known = self._known_user(call)
        if known is not None:
            return known
        decided = _decide(self._readers, call)
        decision = decided.decision
        if decision.action == "not_found":
            raise NotFound("no profile matches the known identities")
        if call.kind == "search":
            return _answer(call, decided.profiles[decision.mpid or 0], decided.profiles)
        target = decided.profiles.get(decision.mpid) if decision.mpid is not None else None
        if target is None or decision.merge_from is not None:
            return None
        wanted = {IdentityKey(t, v) for t, v in decision.user_identities.items()}
        wanted |= {IdentityKey(t, v) for t, v in decision.device_identities.items()}
        if not wanted <= identity_keys(target):
            return None
        return _answer(call, target, decided.profiles)

    def check_modify(self, call: ModifyCall) -> None:
        """Refuse a modify that cannot apply (NotFound, InvalidBatch) before it queues."""
        profile = _live(self._readers, call.target_mpid, call.input.workspace.identity_scope)
        held = {t: e.value for t, e in profile.user_identities.items()}
        policy = call.input.workspace.account.identity
        decide_modify(held, call.changes, policy, {}, profile.mpid)

    def _known_user(self, call: IdentityCall) -> IdentityAnswer | None:
        """The common case without reading a profile: an identify or search whose every
        identity is linked to one and the same profile, including a login identity (so
        that profile is eligible whatever else it holds). None otherwise."""
        if call.kind not in ("identify", "search"):
            return None
        policy = call.input.workspace.account.identity
        user, device, _ = usable_identities(call.observation, policy)
        if not any(t in policy.login for t in user):
            return None
        keys = [IdentityKey(t, v) for t, v in (*user.items(), *device.items())]
        linked = self._readers.find(call.input.workspace.identity_scope, keys)
        owners = {m for mpids in linked.values() for m in mpids}
        if len(linked) != len(keys) or len(owners) != 1:
            return None
        matched = {call.spellings.get(k.type, k.type): k.value for k in keys}
        return IdentityAnswer(owners.pop(), matched, is_logged_in=True)


class IdentityCallHandler(HandlerBase[IdentityCall, IdentityOutcome]):
    """An identify, login or logout that links identities, creates a profile or folds
    the anonymous profile into the known one, under the identity locks."""

    refusals = _REFUSALS

    def __init__(self, profiles: ProfileWriter, metrics: Metrics) -> None:
        self._profiles = profiles
        self._metrics = metrics

    def run(self, uow: UnitOfWork, command: IdentityCall) -> IdentityOutcome:
        call = command
        decided = _decide(_UowView(uow), call)
        decision = decided.decision
        if decision.action == "not_found":
            raise NotFound("no profile matches the known identities")
        mpid = decision.mpid if decision.mpid is not None else self._profiles.fresh_mpid()
        obs = msgspec.structs.replace(call.observation, mpid=mpid)
        accepted = Accepted(call.input, obs, _batch_body(obs))
        as_batch = IdentityDecision(
            decision.action,
            mpid,
            decision.user_identities,
            decision.device_identities,
            decision.notes,
        )
        before = decided.profiles.get(mpid)
        outcome = self._profiles.apply(uow, accepted, as_batch, before, mpid)
        target = uow.profiles.load([mpid])[mpid]
        notes = outcome.notes
        if decision.merge_from is not None and decided.previous is not None:
            login = next((IdentityKey(t, v) for t, v in decision.user_identities.items()), None)
            target, notes = _merge_previous(
                uow, call=call, target=target, previous=decided.previous, login=login, notes=notes
            )
        answer = _answer(call, target, {mpid: before} if before else {})
        return IdentityOutcome(answer, notes, outcome.changes)

    def committed(self, command: IdentityCall, result: IdentityOutcome) -> None:
        if result.notes:
            self._metrics.notes(command.input.name, [n.reason for n in result.notes])


class ModifyHandler(HandlerBase[ModifyCall, ModifyOutcome]):
    """An IDSync modify: the profile's identities changed as asked; an identity another
    profile held moves here (IDS-4)."""

    refusals = _REFUSALS

    def run(self, uow: UnitOfWork, command: ModifyCall) -> ModifyOutcome:
        call, now_ms = command, command.received_ms
        view = _UowView(uow)
        scope, policy = call.input.workspace.identity_scope, call.input.workspace.account.identity
        profile = _live(view, call.target_mpid, scope)
        new_keys = [IdentityKey(t, n) for t, _, n in call.changes if n is not None]
        owners = view.find(scope, new_keys)
        held = {t: e.value for t, e in profile.user_identities.items()}
        decision = decide_modify(held, call.changes, policy, owners, profile.mpid)
        after = _with_identities(profile, decision.user_identities, now_ms)
        uow.profiles.save(after)
        sync_index(uow.identities, scope, profile.mpid, profile, after)
        for other_mpid, types in sorted(decision.moved_from.items()):
            other = uow.profiles.load([other_mpid]).get(other_mpid)
            if other is None:
                continue
            kept = {t: e.value for t, e in other.user_identities.items() if t not in types}
            changed = _with_identities(other, kept, now_ms)
            uow.profiles.save(changed)
            sync_index(uow.identities, scope, other_mpid, other, changed)
        moved = tuple((t, profile.mpid) for types in decision.moved_from.values() for t in types)
        return ModifyOutcome(profile.mpid, moved)


def _merge_previous(
    uow: UnitOfWork,
    *,
    call: IdentityCall,
    target: Profile,
    previous: Profile,
    login: IdentityKey | None,
    notes: tuple[Note, ...],
) -> tuple[Profile, tuple[Note, ...]]:
    """A login that found the known profile folds the anonymous one into it; over the
    merge cap the login stands and only the merge is refused, and noted."""
    cap = call.input.workspace.account.guardrails.max_profiles_merged
    try:
        merged = merge_into(
            uow,
            target,
            previous,
            rule="login",
            now_ms=call.observation.received_ms,
            max_merged=cap,
            identity=login,
        )
    except InvalidBatch as refusal:
        capped = Note(reason="merge_cap", path="previous_mpid", detail=refusal.reason)
        return target, (*notes, capped)
    return merged, notes


def _decide(view: _View, call: IdentityCall) -> _Decided:
    obs, source = call.observation, call.input
    policy = source.workspace.account.identity
    scope = source.workspace.identity_scope
    user, device, _ = usable_identities(obs, policy)
    keys = sorted(IdentityKey(t, v) for t, v in (*user.items(), *device.items()))
    linked = view.find(scope, keys)
    wanted = {m for mpids in linked.values() for m in mpids}
    if call.previous_mpid is not None:
        wanted.add(call.previous_mpid)
    loaded = view.load(sorted(wanted))
    profiles = {m: p for m, p in loaded.items() if p.scope == scope and p.merged_into is None}
    previous = None
    if call.previous_mpid is not None:
        previous = _follow_view(view, loaded.get(call.previous_mpid))
        if previous is not None and previous.scope == scope:
            profiles[previous.mpid] = previous
        else:
            previous = None
    matches: dict[IdentityKey, list[Candidate]] = {
        key: [candidate_of(profiles[m]) for m in mpids if m in profiles]
        for key, mpids in linked.items()
    }
    prior = candidate_of(previous) if previous is not None else None
    decision = decide_call(call.kind, user, device, policy, matches, previous=prior)
    return _Decided(decision, profiles, previous)


def _follow_view(view: _View, profile: Profile | None) -> Profile | None:
    return follow_merged(lambda mpid: view.load([mpid]).get(mpid), profile)


def _live(view: _View, mpid: int, scope: str) -> Profile:
    """The live profile behind `mpid` in the caller's identity scope; one of another scope
    is answered exactly as an unknown MPID, so an answer never tells that it exists."""
    profile = _follow_view(view, view.load([mpid]).get(mpid))
    if profile is None or profile.scope != scope:
        raise NotFound(f"no profile with MPID {mpid}")
    return profile


def _answer(call: IdentityCall, target: Profile, before: dict[int, Profile]) -> IdentityAnswer:
    """`matched_identities`: the request's identities the profile held before the call."""
    obs, policy = call.observation, call.input.workspace.account.identity
    held_before = identity_keys(before.get(target.mpid))
    asked = {**obs.user_identities, **obs.device_identities}
    matched = {
        call.spellings.get(t, t): v for t, v in asked.items() if IdentityKey(t, v) in held_before
    }
    held = {t: e.value for t, e in target.user_identities.items()}
    return IdentityAnswer(target.mpid, matched, is_logged_in(held, obs.user_identities, policy))


def _with_identities(profile: Profile, wanted: dict[str, str], now_ms: int) -> Profile:
    current = profile.user_identities
    entries = {
        t: current[t]
        if t in current and current[t].value == v
        else IdentityEntry(value=v, first_seen_ms=now_ms, last_seen_ms=now_ms)
        for t, v in wanted.items()
    }
    return msgspec.structs.replace(
        profile,
        user_identities=entries,
        version=profile.version + 1,
        last_stored_ms=max(profile.last_stored_ms, now_ms),
    )


def _batch_body(obs: Observation) -> bytes:
    """The call as an Events API batch with no events, for the event log."""
    device = dict(obs.device_identities)
    das = device.pop("device_application_stamp", None)
    batch: dict[str, object] = {
        "environment": obs.environment,
        "mpid": str(obs.mpid),
        "user_identities": obs.user_identities,
        "events": [],
    }
    if device:
        batch["device_info"] = device
    if das:
        batch["mp_deviceid"] = das
    return _ENCODER.encode(batch)
