"""The memory store's unit of work: the ports' writes on a copy of the state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from kindred.audiences.definition import MembershipChange, Selection
from kindred.audiences.evaluate import admits
from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.domain.receipts import ReceiptRecord, row_digest
from kindred.ports import (
    ConcurrentUpdate,
    Delivery,
    LogEntry,
    MergeEntry,
    Needles,
    PreparedSaves,
    Recorded,
    RejectEntry,
    Removed,
    SelectionPage,
)
from kindred.storage.memory_state import MemoryState, holds, replace_dsr

__all__ = ["MemoryUnitOfWork"]


class MemoryUnitOfWork:
    def __init__(self, state: MemoryState) -> None:
        self.state = state
        self._first_membership = state.next_ids["memberships"]
        self._first_log = state.next_ids["log"]

    def recorded(self) -> Recorded:
        return Recorded(
            log=[e for e in self.state.log if (e.id or 0) >= self._first_log],
            memberships=[
                c for c in self.state.memberships if (c.id or 0) >= self._first_membership
            ],
        )

    def definitions_version(self) -> int:
        return self.state.definitions_version

    def prefetch(
        self,
        identities: Sequence[tuple[str, IdentityKey]],
        mpids: Sequence[int],
        requests: Sequence[tuple[str, str]],
    ) -> None:
        """Everything is in memory already."""

    def lock_identities(self, scope: str, keys: Sequence[IdentityKey]) -> None:
        """One lock guards the whole store, so nothing more is needed."""

    def find_identities(
        self, scope: str, keys: Sequence[IdentityKey]
    ) -> dict[IdentityKey, list[int]]:
        found: dict[IdentityKey, list[int]] = {}
        for key in keys:
            mpids = self.state.identities.get((scope, key))
            if mpids:
                found[key] = sorted(mpids)
        return found

    def load_profiles(self, mpids: Iterable[int]) -> dict[int, Profile]:
        profiles = self.state.profiles
        return {m: profiles[m] for m in mpids if m in profiles}

    def save_profile(self, profile: Profile) -> None:
        stored = self.state.profiles.get(profile.mpid)
        expected = 0 if stored is None else stored.version
        if profile.version != expected + 1:
            raise ConcurrentUpdate(f"profile {profile.mpid} is at version {expected}")
        self.state.profiles[profile.mpid] = profile

    def adopt_profiles(self, profiles: Iterable[Profile]) -> None:
        # Transactions here run one at a time on the state as committed: a version that
        # moved on is known at once.
        stored = self.state.profiles
        for profile in profiles:
            current = stored.get(profile.mpid)
            if current is None or current.version != profile.version:
                raise ConcurrentUpdate(
                    f"profile {profile.mpid} is not at version {profile.version}"
                )

    def save_prepared(self, prepared: PreparedSaves) -> None:
        for profile in prepared.profiles:
            self.save_profile(profile)

    def link_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        for key in keys:
            self.state.identities.setdefault((scope, key), set()).add(mpid)

    def unlink_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        for key in keys:
            mpids = self.state.identities.get((scope, key))
            if mpids is not None:
                mpids.discard(mpid)
                if not mpids:
                    del self.state.identities[(scope, key)]

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool:
        if (input_name, request_id) in self.state.requests:
            return False
        self.state.requests[(input_name, request_id)] = now_ms
        return True

    def position(self, partition: int) -> int:
        return self.state.positions.get(partition, 0)

    def move_position(self, partition: int, seq: int) -> None:
        self.state.positions[partition] = seq

    def append_log(self, entry: LogEntry) -> None:
        entry_id = self.state.take_ids("log")
        self.state.log.append(msgspec.structs.replace(entry, id=entry_id))

    def set_log_status(self, entry_id: int, status: str, reason: str | None) -> None:
        for index, entry in enumerate(self.state.log):
            if entry.id == entry_id:
                self.state.log[index] = msgspec.structs.replace(entry, status=status, reason=reason)

    def record_reject(self, entry: RejectEntry) -> None:
        entry_id = self.state.take_ids("rejects")
        self.state.rejects.append(msgspec.structs.replace(entry, id=entry_id))

    def expired_profiles(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        expired = [
            p
            for p in self.state.profiles.values()
            if p.scope == scope and p.last_stored_ms < stored_before_ms
        ]
        expired.sort(key=lambda p: (p.last_stored_ms, p.mpid))
        return expired[:limit]

    def profiles_from(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None = None
    ) -> list[Profile]:
        del needles  # every profile of the page: allowed, and the semantics to compare with
        found = sorted(
            (p for p in self.state.profiles.values() if p.scope == scope and p.mpid >= from_mpid),
            key=lambda p: p.mpid,
        )
        return found[:limit]

    def due_profiles(self, before_ms: int, limit: int) -> list[Profile]:
        due = [
            p
            for p in self.state.profiles.values()
            if p.audience_due_ms is not None and p.audience_due_ms <= before_ms
        ]
        due.sort(key=lambda p: (p.audience_due_ms or 0, p.mpid))
        return due[:limit]

    def apply_selection(
        self, selection: Selection, held: Membership, from_mpid: int, limit: int, reason: str
    ) -> SelectionPage:
        if not self.audience_active(held.audience_id):
            return SelectionPage(read=0, last_mpid=None, changes=[], stopped=True)
        profiles = self.state.profiles
        page = sorted(
            m for m, p in profiles.items() if p.scope == selection.scope and m >= from_mpid
        )[:limit]
        changes = [
            self._hold(mpid, held.audience_id, held if admitted else None, held.since_ms, reason)
            for mpid in page
            if (admitted := admits(selection, profiles[mpid]))
            != (held.audience_id in profiles[mpid].memberships)
        ]
        self.append_memberships(changes)
        return SelectionPage(read=len(page), last_mpid=page[-1] if page else None, changes=changes)

    def audience_active(self, audience_id: int) -> bool:
        audience = self.state.audiences.get(audience_id)
        return audience is not None and audience.status == "active"

    def remove_members(self, audience_id: int, at_ms: int, reason: str) -> int:
        profiles = self.state.profiles
        changes = [
            self._hold(mpid, audience_id, None, at_ms, reason)
            for mpid in sorted(profiles)
            if audience_id in profiles[mpid].memberships
        ]
        self.append_memberships(changes)
        return len(changes)

    def _hold(
        self, mpid: int, audience_id: int, held: Membership | None, at_ms: int, reason: str
    ) -> MembershipChange:
        """The profile gains (`held`) or loses the membership, in a new version."""
        profile = self.state.profiles[mpid]
        memberships = {a: m for a, m in profile.memberships.items() if a != audience_id}
        if held is not None:
            memberships[audience_id] = held
        self.state.profiles[mpid] = msgspec.structs.replace(
            profile, memberships=memberships, version=profile.version + 1
        )
        return MembershipChange(
            audience_id=audience_id, mpid=mpid, entered=held is not None, at_ms=at_ms, reason=reason
        )

    def record_merge(self, entry: MergeEntry) -> None:
        self.state.merges.append(msgspec.structs.replace(entry, id=self.state.take_ids("merges")))

    def append_memberships(self, changes: Sequence[MembershipChange]) -> None:
        start = self.state.take_ids("memberships", len(changes))
        self.state.memberships.extend(
            msgspec.structs.replace(c, id=start + n) for n, c in enumerate(changes)
        )

    def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        self.state.deliveries.add(deliveries)

    def mark_replayed(self, reject_id: int, now_ms: int) -> None:
        self.state.rejects = [
            msgspec.structs.replace(r, replayed_ms=now_ms) if r.id == reject_id else r
            for r in self.state.rejects
        ]

    def mark_unmerged(self, merge_id: int, now_ms: int) -> None:
        self.state.merges = [
            msgspec.structs.replace(m, unmerged_ms=now_ms) if m.id == merge_id else m
            for m in self.state.merges
        ]

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        return [
            e.id
            for e in self.state.log
            if e.id is not None and e.mpid == mpid and from_ms <= e.received_ms <= to_ms
        ]

    def repoint_log(self, entry_ids: Sequence[int], mpid: int) -> None:
        wanted = set(entry_ids)
        self.state.log = [
            msgspec.structs.replace(e, mpid=mpid) if e.id in wanted else e for e in self.state.log
        ]

    def erase_log(self, mpids: Sequence[int], needles: Sequence[bytes]) -> list[Removed]:
        gone = set(mpids)

        def erased(e: LogEntry) -> bool:
            return (e.id or 0) < self._first_log and (
                e.mpid in gone or (e.mpid is None and holds(e.body, needles))
            )

        removed = [
            Removed(e.id or 0, row_digest("event_log", e.id, e.body))
            for e in self.state.log
            if erased(e)
        ]
        self.state.log = [e for e in self.state.log if not erased(e)]
        return removed

    def aged_log(
        self, workspace_ids: Sequence[int], received_before_ms: int, limit: int
    ) -> list[tuple[int, int | None]]:
        wanted = set(workspace_ids)
        found = [
            e
            for e in self.state.log
            if e.id is not None
            and e.id < self._first_log
            and e.workspace_id in wanted
            and e.received_ms < received_before_ms
        ]
        found.sort(key=lambda e: (e.received_ms, e.id or 0))
        return [(e.id or 0, e.mpid) for e in found[:limit]]

    def delete_log(self, entry_ids: Sequence[int]) -> int:
        gone = set(entry_ids)
        before = len(self.state.log)
        self.state.log = [e for e in self.state.log if e.id not in gone]
        return before - len(self.state.log)

    def erase_rejects(self, needles: Sequence[bytes]) -> list[Removed]:
        removed = [
            Removed(r.id or 0, row_digest("rejects", r.id, r.body))
            for r in self.state.rejects
            if holds(r.body, needles)
        ]
        self.state.rejects = [r for r in self.state.rejects if not holds(r.body, needles)]
        return removed

    def erase_membership_log(self, mpids: Sequence[int]) -> list[Removed]:
        gone = set(mpids)

        def erased(c: MembershipChange) -> bool:
            return c.mpid in gone and (c.id or 0) < self._first_membership

        removed = [
            Removed(
                c.id or 0,
                row_digest("membership_log", c.id, c.audience_id, c.mpid, c.entered, c.at_ms),
            )
            for c in self.state.memberships
            if erased(c)
        ]
        self.state.memberships = [c for c in self.state.memberships if not erased(c)]
        return removed

    def erase_merges(self, mpids: Sequence[int]) -> list[Removed]:
        gone = set(mpids)

        def erased(m: MergeEntry) -> bool:
            return m.survivor in gone or m.merged in gone

        removed = [
            Removed(
                m.id or 0,
                row_digest(
                    "merge_ledger", m.id, m.survivor, m.merged, m.survivor_before, m.merged_before
                ),
            )
            for m in self.state.merges
            if erased(m)
        ]
        self.state.merges = [m for m in self.state.merges if not erased(m)]
        return removed

    def erase_deliveries(self, mpids: Sequence[int]) -> tuple[list[Removed], list[Removed]]:
        gone = set(mpids)
        state = self.state.deliveries
        outbox = [
            Removed(d.id or 0, row_digest("outbox", d.id, d.connection, d.body))
            for d in state.outbox
            if d.mpid in gone
        ]
        dead = [
            Removed(
                d.id or 0,
                row_digest("dead_letters", d.id, d.delivery.connection, d.delivery.body),
            )
            for d in state.dead
            if d.delivery.mpid in gone
        ]
        state.outbox = [d for d in state.outbox if d.mpid not in gone]
        state.dead = [d for d in state.dead if d.delivery.mpid not in gone]
        return outbox, dead

    def save_receipt(self, record: ReceiptRecord) -> None:
        self.state.receipts[record.receipt_id] = record

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        return replace_dsr(self.state, request, callbacks)

    def delete_profile(self, profile: Profile) -> None:
        stored = self.state.profiles.get(profile.mpid)
        if stored is None or stored.version != profile.version:
            raise ConcurrentUpdate(f"profile {profile.mpid} is not at version {profile.version}")
        del self.state.profiles[profile.mpid]
        for key, mpids in list(self.state.identities.items()):
            mpids.discard(profile.mpid)
            if not mpids:
                del self.state.identities[key]
