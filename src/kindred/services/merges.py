"""Merges with lineage (IDS-5, IDS-6, BEY-1): fold one profile into another inside a unit of
work, write the ledger entry, and undo it.

A merged profile is kept as a stub pointing at its survivor, so that its MPID (still held
by SDKs) keeps working. The ledger entry holds both profiles as they were, so an un-merge
restores them exactly; batches applied to the survivor since the merge are then applied
again, each to the profile it resolves to now (see services.identity.merge_calls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from kindred.domain.apply import identity_keys
from kindred.domain.errors import InvalidBatch, NotFound
from kindred.domain.identities import IdentityKey
from kindred.domain.merge import merge_profiles, merged_stub
from kindred.domain.profile import Profile
from kindred.ports import IdentityIndex, MergeEntry, ProfileWrites, UnitOfWork

__all__ = [
    "ALIAS_MAX_WINDOW_MS",
    "check_alias",
    "follow",
    "follow_merged",
    "ledger_row",
    "merge_into",
    "restore",
    "sync_index",
]

ALIAS_MAX_WINDOW_MS = 90 * 86_400_000
_MAX_HOPS = 8
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Profile)


def follow_merged(load: Callable[[int], Profile | None], profile: Profile | None) -> Profile | None:
    """The live profile an MPID stands for: itself, or the survivor it was merged into
    (None for a chain longer than any merge history makes: a cycle)."""
    for _ in range(_MAX_HOPS):
        if profile is None or profile.merged_into is None:
            return profile
        profile = load(profile.merged_into)
    return None


def follow(profiles: ProfileWrites, profile: Profile | None) -> Profile | None:
    """`follow_merged` within a unit of work."""
    return follow_merged(lambda mpid: profiles.load([mpid]).get(mpid), profile)


def sync_index(
    index: IdentityIndex, scope: str, mpid: int, before: Profile | None, after: Profile | None
) -> None:
    """Make the identity index link exactly the identities `after` holds."""
    old, new = identity_keys(before), identity_keys(after)
    if new - old:
        index.link(scope, mpid, new - old)
    if old - new:
        index.unlink(scope, mpid, old - new)


def merge_into(
    uow: UnitOfWork,
    survivor: Profile,
    merged: Profile,
    *,
    rule: str,
    now_ms: int,
    max_merged: int,
    identity: IdentityKey | None = None,
    moved_log_ids: Sequence[int] = (),
    detail: str | None = None,
) -> Profile:
    """Fold `merged` into `survivor` (both as stored in this unit of work); returns the
    saved survivor. InvalidBatch when the survivor would hold more than `max_merged`
    profiles (the guardrail against one profile swallowing many users)."""
    _check_cap(survivor, merged, max_merged)
    folded, _dropped = merge_profiles(survivor, merged)
    folded = msgspec.structs.replace(
        folded, version=survivor.version + 1, last_stored_ms=max(folded.last_stored_ms, now_ms)
    )
    stub = merged_stub(merged, survivor.mpid, now_ms)
    uow.profiles.save(folded)
    uow.profiles.save(stub)
    sync_index(uow.identities, merged.scope, merged.mpid, merged, None)
    sync_index(uow.identities, survivor.scope, survivor.mpid, survivor, folded)
    if moved_log_ids:
        uow.log.repoint(moved_log_ids, survivor.mpid)
    entry = _ledger_entry(survivor, merged, rule, now_ms, identity)
    uow.ledger.record(
        msgspec.structs.replace(entry, moved_log_ids=list(moved_log_ids), detail=detail)
    )
    return folded


def _check_cap(survivor: Profile, merged: Profile, max_merged: int) -> None:
    if survivor.absorbed + merged.absorbed + 1 > max_merged:
        raise InvalidBatch(
            f"merge_cap: profile {survivor.mpid} has absorbed {survivor.absorbed} profiles;"
            f" merging {merged.mpid} would pass the cap of {max_merged}",
            "destination_mpid",
        )


def _ledger_entry(
    survivor: Profile, merged: Profile, rule: str, now_ms: int, identity: IdentityKey | None
) -> MergeEntry:
    """The ledger entry, with both profiles as they were just before the merge."""
    return MergeEntry(
        scope=survivor.scope,
        survivor=survivor.mpid,
        merged=merged.mpid,
        rule=rule,
        merged_ms=now_ms,
        survivor_before=_ENCODER.encode(survivor),
        merged_before=_ENCODER.encode(merged),
        identity_type=identity.type if identity else None,
        identity_value=identity.value if identity else None,
    )


def restore(uow: UnitOfWork, entry: MergeEntry, now_ms: int) -> tuple[Profile, Profile]:
    """Put both profiles of a ledger entry back as they were before it; returns them."""
    if entry.unmerged_ms is not None:
        raise InvalidBatch(f"merge {entry.id} was already undone", "merge_id")
    loaded = uow.profiles.load([entry.survivor, entry.merged])
    survivor, stub = loaded.get(entry.survivor), loaded.get(entry.merged)
    if survivor is None or stub is None or stub.merged_into != entry.survivor:
        raise InvalidBatch(
            f"merge {entry.id}: the profiles changed shape since (a later merge or an expiry);"
            " undo later merges first",
            "merge_id",
        )
    before_survivor = _DECODER.decode(entry.survivor_before)
    before_merged = _DECODER.decode(entry.merged_before)
    restored_survivor = msgspec.structs.replace(before_survivor, version=survivor.version + 1)
    restored_merged = msgspec.structs.replace(before_merged, version=stub.version + 1)
    uow.profiles.save(restored_survivor)
    uow.profiles.save(restored_merged)
    sync_index(uow.identities, entry.scope, entry.survivor, survivor, restored_survivor)
    sync_index(uow.identities, entry.scope, entry.merged, None, restored_merged)
    if entry.moved_log_ids:
        uow.log.repoint(entry.moved_log_ids, entry.merged)
    assert entry.id is not None
    uow.ledger.mark_unmerged(entry.id, now_ms)
    return restored_survivor, restored_merged


def check_alias(
    source: Profile | None, destination: Profile | None, start_ms: int, end_ms: int
) -> tuple[Profile, Profile]:
    """The two live profiles of an alias request; InvalidBatch naming what is wrong."""
    if source is None:
        raise NotFound("alias: no source profile with that MPID")
    if destination is None:
        raise NotFound("alias: no destination profile with that MPID")
    if source.mpid == destination.mpid:
        raise InvalidBatch("source and destination are the same profile", "data.source_mpid")
    if source.scope != destination.scope:
        raise InvalidBatch("source and destination are in different identity scopes", "data")
    if end_ms < start_ms:
        raise InvalidBatch("end_unixtime_ms is before start_unixtime_ms", "data.end_unixtime_ms")
    if end_ms - start_ms > ALIAS_MAX_WINDOW_MS:
        raise InvalidBatch("the time range is over 90 days", "data.start_unixtime_ms")
    return source, destination


def ledger_row(e: MergeEntry) -> dict[str, object]:
    """A ledger entry as operators see it (CLI and admin API): MPIDs as strings."""
    return {
        "id": e.id,
        "survivor": str(e.survivor),
        "merged": str(e.merged),
        "rule": e.rule,
        "identity": f"{e.identity_type}={e.identity_value}" if e.identity_type else None,
        "merged_ms": e.merged_ms,
        "moved_log_entries": len(e.moved_log_ids),
        "detail": e.detail,
        "unmerged_ms": e.unmerged_ms,
    }
