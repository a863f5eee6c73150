"""The reference implementation of every port: plain dicts behind one lock.

It defines the semantics the SQL stores must match (the contract suite runs on all three);
a unit of work copies the state on entry and swaps it in on commit.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import ERASED_EXIT, AudienceDef, MembershipChange, Selection
from kindred.audiences.evaluate import admits
from kindred.audiences.sample import SAMPLE_MODULUS, sample_key
from kindred.audiences.versions import AudienceVersion, is_new_version
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.ports import (
    LogEntry,
    MembershipCounts,
    MergeEntry,
    PreparedSaves,
    ProfileSample,
    RejectEntry,
    UnitOfWork,
)
from kindred.storage.calculated_saves import CalculatedSaves
from kindred.storage.memory_access import MemoryAccess
from kindred.storage.memory_outbox import DeliveryState, MemoryDeliveries
from kindred.storage.memory_privacy import MemoryPrivacy
from kindred.storage.memory_state import MemoryState
from kindred.storage.memory_uow import MemoryUnitOfWork
from kindred.storage.parts import PartedUnitOfWork

__all__ = ["MemoryStore"]


class MemoryStore(CalculatedSaves, MemoryDeliveries, MemoryAccess, MemoryPrivacy):
    def __init__(self) -> None:
        super().__init__()
        self._state = MemoryState()
        self._lock = threading.RLock()

    def migrate(self) -> int:
        return 1

    def compact(self) -> tuple[int, int]:
        return 0, 0  # nothing on disk

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._lock:
            # Profiles are immutable values, so a copy of the containers is a full snapshot.
            draft = copy.copy(self._state)
            draft.profiles = dict(draft.profiles)
            draft.identities = {k: set(v) for k, v in draft.identities.items()}
            draft.requests = dict(draft.requests)
            draft.positions = dict(draft.positions)
            draft.log = list(draft.log)
            draft.rejects = list(draft.rejects)
            draft.merges = list(draft.merges)
            draft.memberships = list(draft.memberships)
            draft.next_ids = dict(draft.next_ids)
            draft.receipts = dict(draft.receipts)
            draft.dsr = dict(draft.dsr)
            was = draft.deliveries
            draft.deliveries = DeliveryState(
                list(was.outbox), was.next_id, list(was.dead), was.next_dead_id
            )
            yield PartedUnitOfWork(MemoryUnitOfWork(draft))
            self._state = draft

    @property
    def _deliveries(self) -> DeliveryState:  # type: ignore[override]
        return self._state.deliveries

    def _member_mpids(self, audience_id: int) -> list[int]:
        profiles = self._state.profiles
        return sorted(m for m, p in profiles.items() if audience_id in p.memberships)

    def get_profile(self, mpid: int) -> Profile | None:
        return self._state.profiles.get(mpid)

    def versioned_profile(self, mpid: int) -> tuple[int, Profile | None]:
        return self._state.definitions_version, self._state.profiles.get(mpid)

    def get_profiles(self, mpids: Sequence[int]) -> dict[int, Profile]:
        profiles = self._state.profiles
        return {m: profiles[m] for m in mpids if m in profiles}

    def profiles_between(
        self, scope: str, from_mpid: int, below_mpid: int | None, limit: int
    ) -> list[Profile]:
        found = sorted(
            (
                p
                for p in self._state.profiles.values()
                if p.scope == scope
                and p.mpid >= from_mpid
                and (below_mpid is None or p.mpid < below_mpid)
            ),
            key=lambda p: p.mpid,
        )
        return found[:limit]

    def page_starts(self, scope: str, from_mpid: int, page: int, pages: int) -> list[int]:
        mpids = sorted(
            p.mpid
            for p in self._state.profiles.values()
            if p.scope == scope and p.mpid >= from_mpid
        )
        return mpids[: page * pages + 1 : page]

    def prepare_saves(self, profiles: Sequence[Profile]) -> PreparedSaves:
        return PreparedSaves(profiles=list(profiles))

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]:
        return sorted(self._state.identities.get((scope, key), ()))

    def find_linked(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        found = {key: self.find_profiles(scope, key) for key in keys}
        return {key: mpids for key, mpids in found.items() if mpids}

    def count_profiles(self) -> int:
        return len(self._state.profiles)

    def sample_profiles(
        self,
        scope: str,
        size: int,
        previous: ProfileSample | None = None,  # noqa: ARG002 - kept as objects: no decoding to save
    ) -> ProfileSample:
        keyed = sorted(
            (sample_key(p.mpid), p.mpid) for p in self._state.profiles.values() if p.scope == scope
        )
        bound = keyed[size][0] if len(keyed) > size else SAMPLE_MODULUS
        profiles = self._state.profiles
        return ProfileSample(
            profiles=[profiles[mpid] for key, mpid in keyed[:size] if key < bound], bound=bound
        )

    def read_log(self, after_id: int, limit: int) -> list[LogEntry]:
        log = self._state.log
        start = bisect.bisect_right(log, after_id, key=lambda e: e.id or 0)
        return log[start : start + limit]

    def latest_log(self, limit: int) -> list[LogEntry]:
        return self._state.log[::-1][:limit]

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        mine = [e for e in self._state.log if e.mpid == mpid]
        return mine[::-1][:limit]

    def log_for_profiles(self, mpids: Sequence[int]) -> list[LogEntry]:
        wanted = set(mpids)
        return [e for e in self._state.log if e.mpid in wanted]

    def log_for_mpid_range(
        self, first: int, last: int, to_id: int, *, stamped_bodies: bool = True
    ) -> list[LogEntry]:
        found = [
            e if stamped_bodies or e.event_stamps is None else msgspec.structs.replace(e, body=b"")
            for e in self._state.log
            if e.mpid is not None and first <= e.mpid <= last and (e.id or 0) <= to_id
        ]
        return sorted(found, key=lambda e: (e.mpid or 0, e.id or 0))

    def save_audience(
        self, audience: AudienceDef, *, progress: bool = False, cut_log: bool = False
    ) -> AudienceDef:
        with self._lock:
            if cut_log:
                audience = msgspec.structs.replace(audience, history_to=len(self._state.log))
            audiences = self._state.audiences
            saved = (
                audience
                if audience.id
                else msgspec.structs.replace(audience, id=max(audiences, default=0) + 1)
            )
            audiences[saved.id] = saved
            if not progress:
                self._definitions_changed()
                versions = self._state.audience_versions.setdefault(saved.id, [])
                if is_new_version(versions[-1].audience if versions else None, saved):
                    versions.append(
                        AudienceVersion(
                            audience_id=saved.id, version=len(versions) + 1, audience=saved
                        )
                    )
            return saved

    def audience_versions(self, audience_id: int) -> list[AudienceVersion]:
        with self._lock:
            return list(self._state.audience_versions.get(audience_id, []))

    def definitions_version(self) -> int:
        return self._state.definitions_version

    def _definitions_changed(self) -> None:
        self._state.definitions_version += 1

    def list_audiences(self) -> list[AudienceDef]:
        return [self._state.audiences[k] for k in sorted(self._state.audiences)]

    def _save_calculated(
        self, definition: CalculatedDef, *, cut_log: bool, bump: bool
    ) -> CalculatedDef:
        with self._lock:
            self._state.definitions_version += 1 if bump else 0
            if cut_log:
                newest = max((e.id or 0 for e in self._state.log), default=0)
                definition = msgspec.structs.replace(definition, backfill_total=newest)
            saved = self._state.calculated
            if not definition.id:
                definition = msgspec.structs.replace(definition, id=max(saved, default=0) + 1)
            saved[definition.id] = msgspec.json.decode(
                msgspec.json.encode(definition), type=CalculatedDef
            )
            return definition

    def list_calculated(self) -> list[CalculatedDef]:
        with self._lock:
            return [
                msgspec.json.decode(msgspec.json.encode(d), type=CalculatedDef)
                for _, d in sorted(self._state.calculated.items())
            ]

    def membership_log(
        self, *, audience_id: int | None, mpid: int | None, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        found = [
            c
            for c in self._state.memberships
            if (audience_id is None or c.audience_id == audience_id)
            and (mpid is None or c.mpid == mpid)
            and c.at_ms <= until_ms
        ]
        return found[:limit]

    def membership_counts(self, audience_id: int, since_ms: int) -> MembershipCounts:
        mine = [c for c in self._state.memberships if c.audience_id == audience_id]
        return MembershipCounts(
            entered=sum(c.entered for c in mine),
            exited=sum(not c.entered and c.reason != ERASED_EXIT for c in mine),
            entered_since=sum(c.entered and c.at_ms >= since_ms for c in mine),
            exited_since=sum(not c.entered and c.at_ms >= since_ms for c in mine),
            last_change_ms=max((c.at_ms for c in mine), default=None),
        )

    def matching_profiles(self, selection: Selection, after_mpid: int, limit: int) -> list[int]:
        found = []
        for mpid in sorted(m for m in self._state.profiles if m > after_mpid):
            profile = self._state.profiles[mpid]
            if profile.scope == selection.scope and admits(selection, profile):
                found.append(mpid)
                if len(found) == limit:
                    break
        return found

    def list_merges(self, mpid: int | None, limit: int) -> list[MergeEntry]:
        found = [m for m in self._state.merges if mpid is None or mpid in (m.survivor, m.merged)]
        return found[::-1][:limit]

    def get_merge(self, merge_id: int) -> MergeEntry | None:
        return next((m for m in self._state.merges if m.id == merge_id), None)

    def list_rejects(self, kind: str | None, limit: int) -> list[RejectEntry]:
        rejects = [r for r in self._state.rejects if kind is None or r.kind == kind]
        return rejects[::-1][:limit]

    def close(self) -> None:
        """Nothing to release."""
