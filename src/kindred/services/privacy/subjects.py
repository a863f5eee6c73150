"""Who a data subject is: the live profiles of one identity scope their identities (or
MPID) lead to, and the profiles merged into those (stubs, through the merge ledger)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from kindred.domain.identities import IdentityKey
from kindred.ports import MergeReader, ProfileReader
from kindred.services.merges import follow_merged

__all__ = ["SubjectFinder", "SubjectReader"]

_MERGES_PER_PROFILE = 10_000


class SubjectReader(ProfileReader, MergeReader, Protocol):
    """The committed profiles, identity index and merge ledger."""


class SubjectFinder:
    def __init__(self, store: SubjectReader) -> None:
        self._store = store

    def live(self, scope: str, identities: Mapping[str, str], mpid: int | None) -> list[int]:
        """The live profiles of the scope the subject is: the MPID's (or the survivor it
        was merged into), or every profile any of the identities is linked to."""
        get = self._store.get_profile
        if mpid is not None:
            candidates = [mpid]
        else:
            keys = [IdentityKey(t, v) for t, v in sorted(identities.items())]
            linked = self._store.find_linked(scope, keys) if keys else {}
            candidates = sorted({m for mpids in linked.values() for m in mpids})
        found: set[int] = set()
        for candidate in candidates:
            profile = follow_merged(get, get(candidate))
            if profile is not None and profile.scope == scope:
                found.add(profile.mpid)
        return sorted(found)

    def merged_into(self, mpids: list[int]) -> list[int]:
        """The profiles merged into these (and into those, and so on) and not un-merged
        since: the stubs whose MPIDs stand for them."""
        seen = set(mpids)
        frontier = list(mpids)
        found: list[int] = []
        while frontier:
            mpid = frontier.pop()
            for entry in self._store.list_merges(mpid, _MERGES_PER_PROFILE):
                if entry.survivor != mpid or entry.unmerged_ms is not None:
                    continue
                stub = self._store.get_profile(entry.merged)
                if stub is None or stub.merged_into != mpid:
                    continue  # not a stub of this profile (any more)
                if entry.merged not in seen:
                    seen.add(entry.merged)
                    found.append(entry.merged)
                    frontier.append(entry.merged)
        return sorted(found)
