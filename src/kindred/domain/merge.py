"""Merging two profiles of one user into one (IDS-5, IDS-6), pure.

Everything but the user identities merges by content, so the result does not depend on
which profile survives nor on the order of several merges: each attribute keeps the write
of highest (priority, timestamp), consent the newest fact, each device its most recently
seen state, opt-out the newest; first seen is the earliest and last stored the latest.
Ties go to a fixed order of the values themselves. A user identity type both profiles
hold with different values keeps the survivor's value; the other is returned as dropped
(the ledger keeps the full pre-merge profiles, so an un-merge gets it back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from kindred.domain.calculated import merge_states
from kindred.domain.calculated_entries import refreshed
from kindred.domain.dedup import DIGEST_SIZE, MESSAGE_WINDOW
from kindred.domain.observation import ConsentFact, LocationFact
from kindred.domain.profile import (
    AttributeEntry,
    Device,
    IdentityEntry,
    Membership,
    Profile,
    WorkspaceProfile,
)

__all__ = ["merge_profiles", "merged_stub"]

replace = msgspec.structs.replace
_ORDER = msgspec.json.Encoder(order="sorted")
T = TypeVar("T")
K = TypeVar("K")


def merge_profiles(survivor: Profile, merged: Profile) -> tuple[Profile, dict[str, str]]:
    """The survivor with the merged profile's data folded in (not yet versioned), and the
    merged profile's user identities that conflicted with the survivor's."""
    identities, dropped = _merge_identities(survivor.user_identities, merged.user_identities)
    opt_out = max((p.opt_out_ts_ms, p.is_opted_out) for p in (survivor, merged))
    ip = max((p.last_stored_ms, p.ip is not None, p.ip or "") for p in (survivor, merged))
    lat = max(
        (p.last_stored_ms, p.limit_ad_tracking is not None, p.limit_ad_tracking is True)
        for p in (survivor, merged)
    )
    result = replace(
        survivor,
        created_ms=min(survivor.created_ms, merged.created_ms),
        last_stored_ms=max(survivor.last_stored_ms, merged.last_stored_ms),
        opt_out_ts_ms=opt_out[0],
        is_opted_out=opt_out[1],
        limit_ad_tracking=lat[2] if lat[1] else None,
        ip=ip[2] if ip[1] else None,
        user_identities=identities,
        account_attributes=_union(
            survivor.account_attributes, merged.account_attributes, _winning_attribute
        ),
        workspaces=_union(survivor.workspaces, merged.workspaces, _merge_workspace),
        memberships=_union(survivor.memberships, merged.memberships, _earlier_membership),
        recent_messages=_merge_windows(survivor.recent_messages, merged.recent_messages),
        event_times=_union(survivor.event_times, merged.event_times, _merge_times),
        # How far an activation has folded the profile's own logged batches: the merged
        # profile's are folded into the survivor by the MPID they were logged under, and
        # that MPID's stub keeps its own marks (merged_stub), so neither is counted twice.
        event_folded=survivor.event_folded,
        absorbed=survivor.absorbed + merged.absorbed + 1,
        audience_due_ms=_earliest(survivor.audience_due_ms, merged.audience_due_ms),
    )
    # Merged calculated states give new values (recomputed on schedule after: the merged
    # profile is due when either was).
    return refreshed(result, result.last_stored_ms), dropped


def _merge_times(a: list[int], b: list[int]) -> list[int]:
    """Both profiles' events of one history (each keeps what its criteria need, so the
    union does; the next batch trims it)."""
    return sorted((*a, *b))


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def merged_stub(merged: Profile, survivor_mpid: int, now_ms: int) -> Profile:
    """What is left of a merged profile: its MPID, pointing at the survivor, and how far
    activations have folded the batches logged under it (see merge_profiles)."""
    return Profile(
        mpid=merged.mpid,
        scope=merged.scope,
        created_ms=merged.created_ms,
        last_stored_ms=max(merged.last_stored_ms, now_ms),
        merged_into=survivor_mpid,
        event_folded=merged.event_folded,
        version=merged.version + 1,
    )


def _key(value: object) -> bytes:
    return _ORDER.encode(msgspec.to_builtins(value, str_keys=True))


def _later(a: T, b: T, rank: Callable[[T], tuple[Any, ...]]) -> T:
    """The one ranking higher; on a tie the one whose encoding sorts last (order-free)."""
    ra, rb = rank(a), rank(b)
    if ra != rb:
        return a if ra > rb else b
    return a if _key(a) >= _key(b) else b


def _union(a: Mapping[K, T], b: Mapping[K, T], both: Callable[[T, T], T]) -> dict[K, T]:
    result = dict(a)
    for key, value in b.items():
        result[key] = both(result[key], value) if key in result else value
    return result


def _merge_identities(
    survivor: Mapping[str, IdentityEntry], merged: Mapping[str, IdentityEntry]
) -> tuple[dict[str, IdentityEntry], dict[str, str]]:
    result = dict(survivor)
    dropped: dict[str, str] = {}
    for id_type, entry in merged.items():
        held = result.get(id_type)
        if held is None:
            result[id_type] = entry
        elif held.value == entry.value:
            result[id_type] = IdentityEntry(
                value=held.value,
                first_seen_ms=min(held.first_seen_ms, entry.first_seen_ms),
                last_seen_ms=max(held.last_seen_ms, entry.last_seen_ms),
            )
        else:
            dropped[id_type] = entry.value
    return result, dropped


def _merge_workspace(a: WorkspaceProfile, b: WorkspaceProfile) -> WorkspaceProfile:
    return WorkspaceProfile(
        first_seen_ms=min(a.first_seen_ms, b.first_seen_ms),
        last_seen_ms=max(a.last_seen_ms, b.last_seen_ms),
        attributes=_union(a.attributes, b.attributes, _winning_attribute),
        gdpr=_union(a.gdpr, b.gdpr, _newer_fact),
        ccpa=_optional(a.ccpa, b.ccpa, _newer_fact),
        devices=_union(a.devices, b.devices, _merge_device),
        location=_optional(a.location, b.location, _newer_location),
        calculated=_union(a.calculated, b.calculated, merge_states),
    )


def _newer_location(a: LocationFact, b: LocationFact) -> LocationFact:
    return _later(a, b, lambda loc: (loc.ts_ms,))


def _winning_attribute(a: AttributeEntry, b: AttributeEntry) -> AttributeEntry:
    return _later(a, b, lambda e: (e.priority, e.ts_ms))


def _newer_fact(a: ConsentFact, b: ConsentFact) -> ConsentFact:
    return _later(a, b, lambda f: (f.timestamp_ms,))


def _earlier_membership(a: Membership, b: Membership) -> Membership:
    return _later(a, b, lambda m: (-m.since_ms,))


def _optional(a: T | None, b: T | None, both: Callable[[T, T], T]) -> T | None:
    if a is None or b is None:
        return a if b is None else b
    return both(a, b)


def _merge_device(a: Device, b: Device) -> Device:
    """The most recently seen state of the device, seen since the earliest first sighting.
    (Taken whole rather than field by field, so that merging stays order-free.)"""
    recent = _later(a, b, lambda d: (d.last_seen_ms, _key(replace(d, first_seen_ms=0))))
    return replace(recent, first_seen_ms=min(a.first_seen_ms, b.first_seen_ms))


def _merge_windows(a: bytes, b: bytes) -> bytes:
    """Both dedup windows, each digest once, capped as the window is. Sorted, not in
    arrival order, so that the result is the same whichever profile survives."""
    seen: dict[bytes, None] = {}
    for window in (a, b):
        for at in range(0, len(window), DIGEST_SIZE):
            seen.setdefault(window[at : at + DIGEST_SIZE], None)
    merged = b"".join(sorted(seen))
    limit = MESSAGE_WINDOW * DIGEST_SIZE
    return merged[-limit:]
