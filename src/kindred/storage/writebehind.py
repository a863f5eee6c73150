"""A set-oriented unit of work shared by the SQL stores: reads in bulk, writes at commit.

Round trips, not rows, are what a group of batches costs: on this kind of machine one
PostgreSQL round trip is ~200 µs, more than applying a batch. So a group announces what it
will ask about (`prefetch`: its identities, MPIDs and request ids), which is locked and read
in a few statements; every later read is answered from that snapshot plus the
transaction's own changes, and every write is buffered and flushed at commit in one
`executemany` per table. The store-specific part is the small `SetOps` protocol (storage.set_ops).

Semantics are those of the ports (the contract suite runs against it): a save whose
version does not follow the one this transaction sees raises ConcurrentUpdate at once, and
a save that loses a race with another process raises it at commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kindred.audiences.definition import MembershipChange, Selection
from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.domain.receipts import ReceiptRecord
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
from kindred.storage.codec import ProfileRead, ProfileWrite
from kindred.storage.pending_writes import Link, PendingWrites, ScopedKey, StoredColumns
from kindred.storage.set_ops import SetOps

__all__ = ["WriteBehindUnitOfWork"]


class WriteBehindUnitOfWork:
    def __init__(self, ops: SetOps) -> None:
        self._ops = ops
        self._locked: set[ScopedKey] = set()
        self._links: dict[ScopedKey, set[int]] = {}
        # This transaction's view of each profile it read or saved: decoded once a batch
        # asks for it (see ProfileRead, ProfileWrite); None where there is none.
        self._profiles: dict[int, Profile | ProfileRead | ProfileWrite | None] = {}
        self._stored_version: dict[int, int] = {}
        # The memberships each profile had when read (the audience_members rows to update).
        self._stored_members: dict[int, dict[int, Membership]] = {}
        self._dirty: dict[int, ProfileWrite] = {}
        # Each saved profile's row columns as stored (for an update to leave those it keeps).
        self._stored_columns: dict[int, StoredColumns | None] = {}
        self._deleted: dict[int, int] = {}
        self._link_changes: dict[Link, bool] = {}
        self._requests: dict[tuple[str, str], bool] = {}  # known to exist (or now claimed)
        self._positions: dict[int, int] = {}  # batch log partition -> seq, as read or moved
        self._writes = PendingWrites()
        self._definitions_version: int | None = None

    # --- reads -------------------------------------------------------------------------

    def prefetch(
        self,
        identities: Sequence[ScopedKey],
        mpids: Sequence[int],
        requests: Sequence[tuple[str, str]],
    ) -> None:
        self._lock(identities)
        self._fetch_links(identities)
        linked = {m for key in identities for m in self._links.get(key, ())}
        self._fetch_profiles([*mpids, *sorted(linked)])
        self._fetch_requests(requests)

    def lock_identities(self, scope: str, keys: Sequence[IdentityKey]) -> None:
        self._lock([(scope, k) for k in keys])

    def find_identities(
        self, scope: str, keys: Sequence[IdentityKey]
    ) -> dict[IdentityKey, list[int]]:
        scoped = [(scope, k) for k in keys]
        self._fetch_links(scoped)
        return {k: sorted(self._links[(scope, k)]) for k in keys if self._links[(scope, k)]}

    def load_profiles(self, mpids: Iterable[int]) -> dict[int, Profile]:
        wanted = list(mpids)
        self._fetch_profiles(wanted)
        return {m: p for m in wanted if (p := self._view(m)) is not None}

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool:
        pair = (input_name, request_id)
        self._fetch_requests([pair])
        if self._requests[pair]:
            return False
        self._requests[pair] = True
        self._writes.requests.append((input_name, request_id, now_ms))
        return True

    def position(self, partition: int) -> int:
        if partition not in self._positions:
            self._positions[partition] = self._ops.log_position(partition)
        return self._positions[partition]

    def move_position(self, partition: int, seq: int) -> None:
        self.position(partition)  # locked before it is written
        self._positions[partition] = self._writes.positions[partition] = seq

    def expired_profiles(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        return self._remember(self._ops.claim_expired(scope, stored_before_ms, limit))

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        return self._ops.log_ids(mpid, from_ms, to_ms)

    def profiles_from(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None = None
    ) -> list[Profile]:
        return self._remember(self._ops.page_profiles(scope, from_mpid, limit, needles))

    def due_profiles(self, before_ms: int, limit: int) -> list[Profile]:
        return self._remember(self._ops.claim_due(before_ms, limit))

    def apply_selection(
        self, selection: Selection, held: Membership, from_mpid: int, limit: int, reason: str
    ) -> SelectionPage:
        if self._profiles:
            # Rows changed underneath profiles read here would be undone by their save.
            raise RuntimeError("apply_selection runs in a unit of work of its own")
        done = self._ops.apply_selection(selection, held, from_mpid, limit)
        if done is None:
            return SelectionPage(read=0, last_mpid=None, changes=[], stopped=True)
        read, last, entered, left = done
        at, audience_id = held.since_ms, held.audience_id
        changes = [
            MembershipChange(audience_id=audience_id, mpid=m, entered=e, at_ms=at, reason=reason)
            for e, mpids in ((True, entered), (False, left))
            for m in mpids
        ]
        self._writes.memberships.extend(changes)
        return SelectionPage(read=read, last_mpid=last, changes=changes)

    def audience_active(self, audience_id: int) -> bool:
        return self._ops.audience_active(audience_id)

    def definitions_version(self) -> int:
        # Read once: no definition changes until this transaction ends.
        if self._definitions_version is None:
            self._definitions_version = self._ops.definitions_version()
        return self._definitions_version

    def remove_members(self, audience_id: int, at_ms: int, reason: str) -> int:
        if self._profiles:
            raise RuntimeError("remove_members runs in a unit of work of its own")
        left = self._ops.remove_members(audience_id)
        self._writes.memberships.extend(
            MembershipChange(
                audience_id=audience_id, mpid=m, entered=False, at_ms=at_ms, reason=reason
            )
            for m in left
        )
        return len(left)

    def adopt_profiles(self, profiles: Iterable[Profile]) -> None:
        # Checked at commit: the update of each saved one names the version adopted.
        self._remember(list(profiles))

    def _remember(self, claimed: list[Profile]) -> list[Profile]:
        """Profiles read in bulk become this transaction's view of them (unless it has
        one already)."""
        for profile in claimed:
            if profile.mpid not in self._profiles:
                self._profiles[profile.mpid] = profile
                self._stored_version[profile.mpid] = profile.version
                self._stored_members[profile.mpid] = profile.memberships
        return claimed

    # --- erasure (at once: rows this transaction adds come at commit, after it) ---------

    def erase_log(self, mpids: Sequence[int], needles: Sequence[bytes]) -> list[Removed]:
        return self._ops.erasure().log(mpids, needles)

    def aged_log(
        self, workspace_ids: Sequence[int], received_before_ms: int, limit: int
    ) -> list[tuple[int, int | None]]:
        return self._ops.aged_log(workspace_ids, received_before_ms, limit)

    def delete_log(self, entry_ids: Sequence[int]) -> int:
        return self._ops.delete_log(entry_ids)

    def erase_rejects(self, needles: Sequence[bytes]) -> list[Removed]:
        return self._ops.erasure().rejects(needles)

    def erase_membership_log(self, mpids: Sequence[int]) -> list[Removed]:
        return self._ops.erasure().membership_log(mpids)

    def erase_merges(self, mpids: Sequence[int]) -> list[Removed]:
        return self._ops.erasure().merges(mpids)

    def erase_deliveries(self, mpids: Sequence[int]) -> tuple[list[Removed], list[Removed]]:
        return self._ops.erasure().deliveries(mpids)

    # --- writes ------------------------------------------------------------------------

    def record_merge(self, entry: MergeEntry) -> None:
        self._writes.merges.append(entry)

    def append_memberships(self, changes: Sequence[MembershipChange]) -> None:
        self._writes.memberships.extend(changes)

    def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        self._writes.deliveries.extend(deliveries)

    def save_receipt(self, record: ReceiptRecord) -> None:
        self._writes.receipts.append(record)

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        # At once: the caller acts on the answer (a request another process moved on
        # rolls the transaction back). Its callbacks go with the flush, after the rows
        # enqueued before them.
        if not self._ops.update_dsr(request):
            return False
        self._writes.deliveries.extend(callbacks)
        return True

    def recorded(self) -> Recorded:
        return Recorded(log=list(self._writes.log), memberships=list(self._writes.memberships))

    def mark_replayed(self, reject_id: int, now_ms: int) -> None:
        self._writes.replays.append((reject_id, now_ms))

    def mark_unmerged(self, merge_id: int, now_ms: int) -> None:
        self._writes.unmerges.append((merge_id, now_ms))

    def repoint_log(self, entry_ids: Sequence[int], mpid: int) -> None:
        self._writes.repoints.extend((entry_id, mpid) for entry_id in entry_ids)

    def save_profile(self, profile: Profile, document: str | None = None) -> None:
        """`document`: the profile's document as SetOps.document makes it, if made already."""
        if profile.version == 1 and profile.mpid not in self._profiles:
            # A new profile under an MPID never read here: assume it is free rather than
            # pay a round trip; if it is not, the insert at commit says so (ConcurrentUpdate).
            self._profiles[profile.mpid] = None
            self._stored_version[profile.mpid] = 0
        self._fetch_profiles([profile.mpid])
        current = self._profiles[profile.mpid]
        expected = 0 if current is None else current.version
        if profile.version != expected + 1:
            raise ConcurrentUpdate(f"profile {profile.mpid} is at version {expected}")
        stored = self._view(profile.mpid)  # its memberships as stored, for _member_writes
        if profile.mpid not in self._dirty:
            self._stored_columns[profile.mpid] = (
                None if stored is None else StoredColumns.of(stored)
            )
        if document is None:
            document = self._ops.document(profile)
        row = ProfileWrite.of(profile, document)
        self._profiles[profile.mpid] = self._dirty[profile.mpid] = row

    def save_prepared(self, prepared: PreparedSaves) -> None:
        if len(prepared.documents) != len(prepared.profiles):
            raise ValueError("prepared by a store that does not encode documents")
        for profile, document in zip(prepared.profiles, prepared.documents, strict=True):
            self.save_profile(profile, document)

    def delete_profile(self, profile: Profile) -> None:
        mpid = profile.mpid
        self._fetch_profiles([mpid])
        current = self._view(mpid)
        if current is None or current.version != profile.version:
            raise ConcurrentUpdate(f"profile {mpid} is not at version {profile.version}")
        if self._stored_version[mpid]:
            self._deleted[mpid] = self._stored_version[mpid]
        self._profiles[mpid] = None
        self._stored_version[mpid] = 0  # a later save in this transaction is an insert
        self._dirty.pop(mpid, None)
        for holders in self._links.values():
            holders.discard(mpid)
        for change in [c for c in self._link_changes if c[2] == mpid]:
            del self._link_changes[change]

    def link_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        self._change_links(scope, mpid, keys, linked=True)

    def unlink_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        self._change_links(scope, mpid, keys, linked=False)

    def append_log(self, entry: LogEntry) -> None:
        self._writes.log.append(entry)

    def set_log_status(self, entry_id: int, status: str, reason: str | None) -> None:
        self._writes.log_status.append((entry_id, status, reason))

    def record_reject(self, entry: RejectEntry) -> None:
        self._writes.rejects.append(entry)

    def commit(self) -> None:
        writes = self._writes
        writes.deletes.extend(self._deleted.items())
        for mpid, profile in self._dirty.items():
            stored = self._stored_version[mpid]
            if stored == 0:
                writes.inserts.append(profile)
            else:
                writes.updates.append((profile, stored, self._stored_columns.get(mpid)))
        for (scope, key, mpid), linked in self._link_changes.items():
            (writes.links if linked else writes.unlinks).append((scope, key, mpid))
        self._member_writes(writes)
        self._ops.flush(writes)

    def _member_writes(self, writes: PendingWrites) -> None:
        """The audience_members rows of the profiles saved or deleted, as differences from
        what they held when read."""
        for mpid in self._dirty.keys() | self._deleted.keys():
            before = self._stored_members.get(mpid, {})
            saved = self._dirty.get(mpid)
            after = saved.memberships if saved is not None else {}
            if before == after:
                continue
            writes.members_removed.extend((a, mpid) for a in before if a not in after)
            writes.members_written.extend((mpid, m) for a, m in after.items() if before.get(a) != m)

    # --- helpers -----------------------------------------------------------------------

    def _lock(self, keys: Sequence[ScopedKey]) -> None:
        # Unsorted: a store that takes locks orders them itself (PostgreSQL sorts its lock
        # ids; SQLite's write transaction holds the only lock).
        fresh = [key for key in dict.fromkeys(keys) if key not in self._locked]
        if fresh:
            self._ops.lock_identities(fresh)
            self._locked.update(fresh)

    def _fetch_links(self, keys: Sequence[ScopedKey]) -> None:
        missing = list(dict.fromkeys(k for k in keys if k not in self._links))
        if missing:
            found = self._ops.find_identities(missing)
            for key in missing:
                # Links of a profile deleted here are gone once this transaction commits.
                self._links[key] = set(found.get(key, ())) - self._deleted.keys()

    def _fetch_profiles(self, mpids: Sequence[int]) -> None:
        missing = list(dict.fromkeys(m for m in mpids if m not in self._profiles))
        if missing:
            found = self._ops.read_profiles(missing)
            for mpid in missing:
                row = found.get(mpid)
                self._profiles[mpid] = row
                self._stored_version[mpid] = 0 if row is None else row.version

    def _view(self, mpid: int) -> Profile | None:
        """The profile as this transaction sees it (fetched already), decoded now if not
        yet."""
        held = self._profiles[mpid]
        if held is None or isinstance(held, Profile):
            return held
        profile = held.profile()
        if isinstance(held, ProfileRead):
            self._stored_members[mpid] = profile.memberships
        self._profiles[mpid] = profile
        return profile

    def _fetch_requests(self, pairs: Sequence[tuple[str, str]]) -> None:
        missing = list(dict.fromkeys(p for p in pairs if p not in self._requests))
        if missing:
            known = self._ops.known_requests(missing)
            for pair in missing:
                self._requests[pair] = pair in known

    def _change_links(
        self, scope: str, mpid: int, keys: Iterable[IdentityKey], *, linked: bool
    ) -> None:
        scoped = [(scope, k) for k in keys]
        self._fetch_links(scoped)
        for scoped_key in scoped:
            holders = self._links[scoped_key]
            if (mpid in holders) == linked:
                continue
            if linked:
                holders.add(mpid)
            else:
                holders.discard(mpid)
            change = (scope, scoped_key[1], mpid)
            # Linking then unlinking the same identity within one transaction is no change.
            if self._link_changes.pop(change, None) is None:
                self._link_changes[change] = linked
