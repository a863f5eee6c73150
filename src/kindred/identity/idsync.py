"""What the IDSync calls do under each identity strategy (IDS-1, IDS-3; reference §2.6).

Pure, like `resolve`: the caller looks the request's identities up in the identity index
and passes the matching profiles in as candidates.

| strategy | login with a login ID no profile holds | logout |
| --- | --- | --- |
| default, profile_conversion | adds it to the anonymous profile in use | a new anonymous profile |
| profile_link | a new profile | a new anonymous profile |
| profile_isolation | a new profile | back to the device's anonymous profile |
| best_match | not offered | not offered |

A login that finds the known profile while the user browsed anonymously folds that
anonymous profile into the known one (default and profile conversion, when the account
keeps `merge_anonymous_on_login`): a merge, written to the ledger by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kindred.domain.changes import Note
from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import USER_IDENTITY_TYPES, IdentityKey, is_junk
from kindred.domain.tenancy import IdentityPolicy
from kindred.identity.resolve import Candidate, best_match, eligible, linkable

__all__ = [
    "CallDecision",
    "CallKind",
    "ModifyDecision",
    "decide_call",
    "decide_modify",
    "is_logged_in",
]

CallKind = Literal["identify", "search", "login", "logout"]
_CONVERTING = frozenset({"default", "profile_conversion"})


@dataclass(frozen=True, slots=True)
class CallDecision:
    """attach: to the existing profile `mpid`; create: a new profile; not_found: search
    found nothing. `merge_from`: an anonymous profile to fold into the target."""

    action: Literal["attach", "create", "not_found"]
    mpid: int | None
    user_identities: dict[str, str]
    device_identities: dict[str, str]
    merge_from: int | None
    notes: tuple[Note, ...]


def decide_call(
    kind: CallKind,
    user: Mapping[str, str],
    device: Mapping[str, str],
    policy: IdentityPolicy,
    matches: Mapping[IdentityKey, Sequence[Candidate]],
    *,
    previous: Candidate | None = None,
) -> CallDecision:
    """`user` and `device` are the request's usable identities (junk already dropped);
    `previous` is the profile the client used until now (`previous_mpid`), if stored."""
    if kind in ("login", "logout") and policy.strategy == "best_match":
        raise InvalidBatch(f"{kind} is not offered by the best_match identity strategy", kind)
    if kind == "logout":
        target = _anonymous_match(device, policy, matches) if _isolating(policy) else None
    elif kind == "login" and policy.strategy in ("profile_link", "profile_isolation"):
        target = _login_match(user, policy, matches)
    else:
        target = best_match(user, device, policy, matches)
    if target is None and kind == "search":
        return CallDecision("not_found", None, {}, {}, None, ())
    merge_from = None
    if kind == "login" and target is not None and _merges(policy, previous, target):
        assert previous is not None
        merge_from = previous.mpid
    notes: list[Note] = []
    mpid = target.mpid if target else None
    linked_user = linkable(
        user, "known_identities", target=mpid, policy=policy, matches=matches, notes=notes
    )
    linked_device = linkable(
        device, "known_identities", target=mpid, policy=policy, matches=matches, notes=notes
    )
    action: Literal["attach", "create"] = "attach" if target else "create"
    return CallDecision(action, mpid, linked_user, linked_device, merge_from, tuple(notes))


def is_logged_in(held: Mapping[str, str], user: Mapping[str, str], policy: IdentityPolicy) -> bool:
    """The profile holds a login identity the request carries, with the same value."""
    return any(held.get(t) is not None and held.get(t) == user.get(t) for t in policy.login)


def _isolating(policy: IdentityPolicy) -> bool:
    return policy.strategy == "profile_isolation"


def _is_anonymous(candidate: Candidate, policy: IdentityPolicy) -> bool:
    return not any(t in candidate.user_identities for t in policy.login)


def _merges(policy: IdentityPolicy, previous: Candidate | None, target: Candidate) -> bool:
    return (
        policy.merge_anonymous_on_login
        and policy.strategy in _CONVERTING
        and previous is not None
        and previous.mpid != target.mpid
        and _is_anonymous(previous, policy)
        and not _is_anonymous(target, policy)
    )


def _anonymous_match(
    device: Mapping[str, str],
    policy: IdentityPolicy,
    matches: Mapping[IdentityKey, Sequence[Candidate]],
) -> Candidate | None:
    """The device's most recently stored profile without a login identity."""
    found = [
        c
        for id_type, value in device.items()
        for c in matches.get(IdentityKey(id_type, value), ())
        if _is_anonymous(c, policy)
    ]
    return max(found, key=lambda c: (c.last_stored_ms, c.mpid)) if found else None


def _login_match(
    user: Mapping[str, str],
    policy: IdentityPolicy,
    matches: Mapping[IdentityKey, Sequence[Candidate]],
) -> Candidate | None:
    """The known profile of the request's login identities, if any holds them."""
    logins = {t: v for t, v in user.items() if t in policy.login}
    keys = sorted((IdentityKey(t, v) for t, v in logins.items()), key=lambda k: policy.rank(k.type))
    for key in keys:
        found = [c for c in matches.get(key, ()) if eligible(c, user, policy)]
        if found:
            return max(found, key=lambda c: (c.last_stored_ms, c.mpid))
    return None


@dataclass(frozen=True, slots=True)
class ModifyDecision:
    """The profile's user identities after the changes, and the other profiles that lose a
    unique identity to it (moved, never shared)."""

    user_identities: dict[str, str]
    moved_from: dict[int, list[str]]


def decide_modify(
    held: Mapping[str, str],
    changes: Sequence[tuple[str, str | None, str | None]],
    policy: IdentityPolicy,
    owners: Mapping[IdentityKey, Sequence[int]],
    mpid: int,
) -> ModifyDecision:
    """`changes`: (canonical type, old value, new value); None old adds, None new removes.
    `owners`: which profiles hold each new value. Raises InvalidBatch naming the change."""
    after = dict(held)
    moved: dict[int, list[str]] = {}
    for n, (id_type, old, new) in enumerate(changes):
        path = f"identity_changes[{n}]"
        _check_change(after, (id_type, old, new), policy, path)
        if new is None:
            after.pop(id_type, None)
            continue
        after[id_type] = new
        if id_type in policy.unique:
            for other in owners.get(IdentityKey(id_type, new), ()):
                if other != mpid:
                    moved.setdefault(other, []).append(id_type)
    return ModifyDecision(after, moved)


def _check_change(
    held: Mapping[str, str],
    change: tuple[str, str | None, str | None],
    policy: IdentityPolicy,
    path: str,
) -> None:
    id_type, old, new = change
    if id_type not in USER_IDENTITY_TYPES:
        raise InvalidBatch(f"modify changes user identities, not {id_type!r}", path)
    current = held.get(id_type)
    if old is not None and current != old:
        raise InvalidBatch(f"old_value {old!r} is not the profile's {id_type}", path)
    if new is not None and is_junk(new, policy.blocklist):
        raise InvalidBatch(f"new_value {new!r} is a placeholder, not an identity", path)
    if id_type == policy.immutable and current is not None and new != current:
        raise InvalidBatch(f"{id_type} is immutable once set", path)
