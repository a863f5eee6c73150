"""Identity resolution for the default strategy (IDS-2, IDS-3, IDS-4).

`resolve` is pure. The caller looks the batch's identities up in the identity index and
passes the matching profiles in as candidates; the answer says which profile to attach to
(or to create) and which of the batch's identities may be linked to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kindred.domain.changes import Note
from kindred.domain.identities import IdentityKey, is_junk
from kindred.domain.observation import Observation
from kindred.domain.profile import Profile
from kindred.domain.tenancy import IdentityPolicy

__all__ = [
    "Candidate",
    "IdentityDecision",
    "best_match",
    "candidate_of",
    "eligible",
    "linkable",
    "resolve",
    "usable_identities",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """What resolution needs to know of a profile the index matched."""

    mpid: int
    user_identities: Mapping[str, str]
    last_stored_ms: int


@dataclass(frozen=True, slots=True)
class IdentityDecision:
    """attach: to an existing profile; create: a new one (with `mpid` when the batch named
    it); unresolved: nothing identifies the user, so no profile is touched."""

    action: Literal["attach", "create", "unresolved"]
    mpid: int | None
    user_identities: dict[str, str]
    device_identities: dict[str, str]
    notes: tuple[Note, ...]


def candidate_of(profile: Profile) -> Candidate:
    return Candidate(
        mpid=profile.mpid,
        user_identities={t: e.value for t, e in profile.user_identities.items()},
        last_stored_ms=profile.last_stored_ms,
    )


def usable_identities(
    obs: Observation, policy: IdentityPolicy
) -> tuple[dict[str, str], dict[str, str], list[Note]]:
    """The batch's identities minus junk values, which never link anyone."""
    notes: list[Note] = []
    user = _drop_junk(obs.user_identities, policy, "user_identities", notes)
    device = _drop_junk(obs.device_identities, policy, "device_identities", notes)
    return user, device, notes


def _drop_junk(
    identities: Mapping[str, str], policy: IdentityPolicy, path: str, notes: list[Note]
) -> dict[str, str]:
    kept: dict[str, str] = {}
    for id_type, value in identities.items():
        if is_junk(value, policy.blocklist):
            notes.append(Note(reason="junk_identity", path=f"{path}.{id_type}", detail=value))
        else:
            kept[id_type] = value
    return kept


def resolve(
    obs: Observation,
    policy: IdentityPolicy,
    matches: Mapping[IdentityKey, Sequence[Candidate]],
    explicit: Candidate | None = None,
) -> IdentityDecision:
    """Decide the profile for `obs`.

    `matches` maps each usable identity to the profiles the index links it to; `explicit`
    is the stored profile whose MPID the batch named, if it exists.
    """
    user, device, notes = usable_identities(obs, policy)
    action: Literal["attach", "create", "unresolved"]
    if obs.mpid is not None:
        target: int | None = obs.mpid
        action = "attach" if explicit is not None else "create"
    else:
        chosen = best_match(user, device, policy, matches)
        target = chosen.mpid if chosen else None
        action = "attach" if chosen else ("create" if user or device else "unresolved")
    linked_user = linkable(
        user, "user_identities", target=target, policy=policy, matches=matches, notes=notes
    )
    linked_device = linkable(
        device, "device_identities", target=target, policy=policy, matches=matches, notes=notes
    )
    return IdentityDecision(action, target, linked_user, linked_device, tuple(notes))


def best_match(
    user: Mapping[str, str],
    device: Mapping[str, str],
    policy: IdentityPolicy,
    matches: Mapping[IdentityKey, Sequence[Candidate]],
) -> Candidate | None:
    """The most recently stored eligible profile of the highest-priority matching identity."""
    keys = [IdentityKey(t, v) for t, v in (*user.items(), *device.items())]
    keys.sort(key=lambda k: (policy.rank(k.type), k.type))
    for key in keys:
        found = [c for c in matches.get(key, ()) if eligible(c, user, policy)]
        if found:
            return max(found, key=lambda c: (c.last_stored_ms, c.mpid))
    return None


def eligible(candidate: Candidate, user: Mapping[str, str], policy: IdentityPolicy) -> bool:
    """Whether the candidate may be this batch's user.

    A profile holding login (or immutable) identities is only this user's when the batch
    carries at least one of them with the same value, and none with another value. When
    the batch agrees with it on such an identity, that settles it; otherwise a unique
    identity the batch holds with another value rules it out.
    """
    logins = policy.login | ({policy.immutable} if policy.immutable else set())
    agreed = held_any = False
    for id_type in logins:
        held = candidate.user_identities.get(id_type)
        if held is None:
            continue
        held_any = True
        given = user.get(id_type)
        if given is not None and given != held:
            return False
        agreed = agreed or given == held
    if held_any:
        return agreed
    for id_type in policy.unique:
        held = candidate.user_identities.get(id_type)
        given = user.get(id_type)
        if held is not None and given is not None and given != held:
            return False
    return True


def linkable(
    identities: Mapping[str, str],
    path: str,
    *,
    target: int | None,
    policy: IdentityPolicy,
    matches: Mapping[IdentityKey, Sequence[Candidate]],
    notes: list[Note],
) -> dict[str, str]:
    """Identities the target may hold: unique ones owned elsewhere and values already shared
    by their per-type cap of profiles stay where they are."""
    linked: dict[str, str] = {}
    for id_type, value in identities.items():
        owners = [c.mpid for c in matches.get(IdentityKey(id_type, value), ()) if c.mpid != target]
        limit = policy.max_profiles_per_identity.get(id_type)
        if owners and id_type in policy.unique:
            notes.append(Note(reason="unique_conflict", path=f"{path}.{id_type}", detail=value))
        elif limit is not None and len(owners) >= limit:
            notes.append(Note(reason="identity_limit", path=f"{path}.{id_type}", detail=value))
        else:
            linked[id_type] = value
    return linked
