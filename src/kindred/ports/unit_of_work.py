"""One write transaction, in parts: what the services change through a unit of work.

A service is typed with the parts it uses (`uow.profiles`, `uow.identities`, `uow.log`,
`uow.rejects`, `uow.memberships`, `uow.ledger`, `uow.outbox`, `uow.receipts`, `uow.dsr`);
each part's methods state their contract, which the store contract suite checks on every
store, part by part.
Writes may be buffered until commit; reads always see this transaction's own writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from kindred.audiences.definition import MembershipChange, Selection
from kindred.audiences.prefilter import Needles
from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.domain.receipts import ReceiptRecord
from kindred.ports.delivery import Delivery
from kindred.ports.records import (
    LogEntry,
    MergeEntry,
    PreparedSaves,
    Recorded,
    RejectEntry,
    Removed,
    SelectionPage,
)

__all__ = [
    "ConcurrentUpdate",
    "DsrWrites",
    "EventLogWrites",
    "IdentityIndex",
    "LedgerWrites",
    "MembershipWrites",
    "OutboxWrites",
    "ProfileWrites",
    "ReceiptWrites",
    "RejectWrites",
    "UnitOfWork",
]


class ConcurrentUpdate(Exception):
    """A profile changed under us (another process saved it first); retry the transaction."""


class ProfileWrites(Protocol):
    """The profiles, read and written by MPID under optimistic versions."""

    def load(self, mpids: Iterable[int]) -> dict[int, Profile]:
        """The stored profiles of these MPIDs (absent ones are left out)."""
        ...

    def save(self, profile: Profile) -> None:
        """Insert or replace; raises ConcurrentUpdate unless the stored version is
        `profile.version - 1` (or absent for version 1)."""
        ...

    def adopt(self, profiles: Iterable[Profile]) -> None:
        """Profiles read outside this transaction (ProfileReader.profiles_between) become
        its view of them, at their versions, before it reads or saves them itself: a later
        save of one follows that version, and raises ConcurrentUpdate (now or at commit)
        if the stored one has moved on meanwhile."""
        ...

    def save_prepared(self, prepared: PreparedSaves) -> None:
        """Save each profile made ready by ProfileReader.prepare_saves, as `save` does."""
        ...

    def delete(self, profile: Profile) -> None:
        """Remove the profile and every identity link to it. Raises ConcurrentUpdate (now or
        at commit) when the stored profile is no longer at `profile.version`."""
        ...

    def expired(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        """Up to `limit` profiles of the scope last stored before the instant, oldest first,
        claimed for this transaction: a concurrent caller in another process skips them."""
        ...

    def page(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None = None
    ) -> list[Profile]:
        """Up to `limit` profiles of the scope with MPID >= `from_mpid`, by MPID. With
        `needles`, a store may leave out profiles whose document cannot contain them (a
        store that cannot tell returns every profile)."""
        ...

    def due(self, before_ms: int, limit: int) -> list[Profile]:
        """Up to `limit` profiles whose `audience_due_ms` has come, earliest first, claimed
        for this transaction as `expired` claims them."""
        ...


class IdentityIndex(Protocol):
    """Which profiles each (scope, identity) is linked to."""

    def lock(self, scope: str, keys: Sequence[IdentityKey]) -> None:
        """Serialize resolution of these identities against other processes until commit."""
        ...

    def find(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        """The MPIDs each identity is linked to (keys with no link are absent)."""
        ...

    def link(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        """Link the identities to the profile (those linked already stay as they are)."""
        ...

    def unlink(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None:
        """Remove the identities' links to the profile (absent ones are no change)."""
        ...


class EventLogWrites(Protocol):
    """The event log: every accepted batch as received, with what became of it."""

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool:
        """True the first time an input sends this source_request_id (ING-4)."""
        ...

    def append(self, entry: LogEntry) -> None:
        """Add the batch's entry (its id is given at commit)."""
        ...

    def position(self, partition: int) -> int:
        """How far the batch log partition has been applied (0: not at all), as this
        transaction sees it. Its row stays locked until commit, so two workers reading
        one partition apply each record once, one after the other."""
        ...

    def move_position(self, partition: int, seq: int) -> None:
        """The partition applied through `seq`, with this transaction."""
        ...

    def set_status(self, entry_id: int, status: str, reason: str | None) -> None:
        """What became of a logged batch after all (a replay)."""
        ...

    def ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        """Ids of the entries of the MPID received within [from_ms, to_ms]."""
        ...

    def repoint(self, entry_ids: Sequence[int], mpid: int) -> None:
        """Attribute these entries to another profile."""
        ...

    def erase(self, mpids: Sequence[int], needles: Sequence[bytes]) -> list[Removed]:
        """Delete the entries of these MPIDs, and the entries of no MPID whose body holds
        one of the needles (a subject's erasure); those deleted, each digest
        `row_digest("event_log", id, body)`. Done at once in this transaction."""
        ...

    def aged(
        self, workspace_ids: Sequence[int], received_before_ms: int, limit: int
    ) -> list[tuple[int, int | None]]:
        """Up to `limit` entries of these workspaces received before the instant, oldest
        first, as (id, MPID), locked for this transaction (PostgreSQL skips entries
        another transaction holds)."""
        ...

    def delete(self, entry_ids: Sequence[int]) -> int:
        """Delete these entries (those still there) at once; how many."""
        ...


class RejectWrites(Protocol):
    """Batches refused at the edge or quarantined, kept with their reason (ING-3)."""

    def record(self, entry: RejectEntry) -> None: ...

    def mark_replayed(self, reject_id: int, now_ms: int) -> None:
        """A quarantined or refused batch was sent through ingest again."""
        ...

    def erase(self, needles: Sequence[bytes]) -> list[Removed]:
        """Delete the batches whose body holds one of the needles; those deleted, each
        digest `row_digest("rejects", id, body)`."""
        ...


class MembershipWrites(Protocol):
    """Audience memberships beyond a profile's own save: the membership log (AUD-12) and
    the set-based work of backfills and removals."""

    def append(self, changes: Sequence[MembershipChange]) -> None:
        """Append to the membership log."""
        ...

    def apply_selection(
        self, selection: Selection, held: Membership, from_mpid: int, limit: int, reason: str
    ) -> SelectionPage:
        """Over the next `limit` profiles of the selection's scope from `from_mpid` on (by
        MPID), make `held.audience_id`'s members exactly those the criteria admit: admitted
        ones gain `held`, the others lose it; each change is appended to the membership log
        at `held.since_ms` with the reason. Set-based, for audiences whose answer neither
        time nor other audiences' changes move (the caller's to know). Only while the
        audience is active, as this transaction sees it (a deactivation either comes
        before and stops the page, or waits for it and then removes what it entered).
        Runs in a unit of work of its own."""
        ...

    def remove_all(self, audience_id: int, at_ms: int, reason: str) -> int:
        """Every profile leaves the audience (deleted or deactivated), each exit logged;
        returns how many left. Runs in a unit of work of its own."""
        ...

    def audience_active(self, audience_id: int) -> bool:
        """Whether the audience is active, as this transaction sees it; it stays so until
        this transaction ends (a status change waits for it, on stores where several
        processes write)."""
        ...

    def erase_log(self, mpids: Sequence[int]) -> list[Removed]:
        """Delete the membership log's entries of these MPIDs (already there before this
        transaction: changes appended in it stay); those deleted, each digest
        `row_digest("membership_log", id, audience_id, mpid, entered, at_ms)`."""
        ...


class LedgerWrites(Protocol):
    """The merge ledger (IDS-5, IDS-6, BEY-1)."""

    def record(self, entry: MergeEntry) -> None:
        """Add a merge, with both profiles as they were before it."""
        ...

    def mark_unmerged(self, merge_id: int, now_ms: int) -> None: ...

    def erase(self, mpids: Sequence[int]) -> list[Removed]:
        """Delete the merges any of these MPIDs took part in (either side), with their
        snapshots; those deleted, each digest `row_digest("merge_ledger", id, survivor,
        merged, survivor_before, merged_before)`."""
        ...


class OutboxWrites(Protocol):
    """Rows for the outputs (ENR-3)."""

    def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        """Add to the outbox, committed with everything else of the transaction."""
        ...

    def erase(self, mpids: Sequence[int]) -> tuple[list[Removed], list[Removed]]:
        """Delete the outbox rows and dead letters of these MPIDs (already there before this
        transaction: rows enqueued in it stay); those deleted of each, each digest
        `row_digest("outbox" or "dead_letters", id, connection, body)`."""
        ...


class ReceiptWrites(Protocol):
    """Erasure receipts (BEY-6), kept with the erasure they describe."""

    def save(self, record: ReceiptRecord) -> None:
        """Keep an erasure's signed receipt (insert or replace, by `receipt_id`), committed
        with everything else of the transaction: rolled back with it, it is not kept."""
        ...


class DsrWrites(Protocol):
    """Data subject requests (RET-3), a completed erasure's stored with the erasure."""

    def update(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        """As `DsrStore.update_dsr`, in this transaction: replace the stored request only
        if it is still at `request.version - 1` (checked now; where the store locks rows,
        the row stays locked until commit), and only then write its callbacks' outbox rows,
        in order. Both are committed with everything else of the transaction: rolled back
        with it, the stored request is as it was."""
        ...


class UnitOfWork(Protocol):
    """One write transaction: commits when its context exits cleanly, else rolls back."""

    @property
    def profiles(self) -> ProfileWrites: ...

    @property
    def identities(self) -> IdentityIndex: ...

    @property
    def log(self) -> EventLogWrites: ...

    @property
    def rejects(self) -> RejectWrites: ...

    @property
    def memberships(self) -> MembershipWrites: ...

    @property
    def ledger(self) -> LedgerWrites: ...

    @property
    def outbox(self) -> OutboxWrites: ...

    @property
    def receipts(self) -> ReceiptWrites: ...

    @property
    def dsr(self) -> DsrWrites: ...

    def prefetch(
        self,
        identities: Sequence[tuple[str, IdentityKey]],
        mpids: Sequence[int],
        requests: Sequence[tuple[str, str]],
    ) -> None:
        """A hint, not a requirement: the (scope, identity) pairs, MPIDs and (input,
        request id) pairs this transaction is about to ask about. Stores that pay per
        round trip lock and read them in bulk; the identities are locked as by
        `identities.lock`, and the profiles they link to are loaded too."""
        ...

    def definitions_version(self) -> int:
        """The version of the definitions (audiences, calculated attributes, credentials,
        outputs and connections: every save raises it), as this transaction sees it; no
        definition changes until this transaction ends (a change waits for it, on stores
        where several processes write)."""
        ...

    def recorded(self) -> Recorded:
        """Every batch this transaction has logged and every membership change it has
        appended so far, by whichever part (so that each one can be forwarded, BEY-5)."""
        ...
