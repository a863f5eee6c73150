"""The unit of work the services see, in parts, over a store's own transaction object.

Inside a store one object keeps a transaction's state (what it read, what it will write),
because the parts share it: deleting a profile drops its identity links, a save rewrites
its memberships. `Transaction` is that object's flat interface, the same for the memory
store and the SQL stores' write-behind unit of work; `PartedUnitOfWork` hands it out as
the ports' parts (`kindred.ports.unit_of_work`).
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
from kindred.ports import (
    Delivery,
    LogEntry,
    MergeEntry,
    PreparedSaves,
    Recorded,
    RejectEntry,
    Removed,
    SelectionPage,
)

__all__ = ["PartedUnitOfWork", "Transaction"]


class Transaction(Protocol):
    """A store's transaction object (the ports' parts state each method's contract)."""

    def prefetch(
        self,
        identities: Sequence[tuple[str, IdentityKey]],
        mpids: Sequence[int],
        requests: Sequence[tuple[str, str]],
    ) -> None: ...

    def definitions_version(self) -> int: ...

    def recorded(self) -> Recorded: ...

    def load_profiles(self, mpids: Iterable[int]) -> dict[int, Profile]: ...

    def save_profile(self, profile: Profile) -> None: ...

    def adopt_profiles(self, profiles: Iterable[Profile]) -> None: ...

    def save_prepared(self, prepared: PreparedSaves) -> None: ...

    def delete_profile(self, profile: Profile) -> None: ...

    def expired_profiles(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]: ...

    def profiles_from(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None = None
    ) -> list[Profile]: ...

    def due_profiles(self, before_ms: int, limit: int) -> list[Profile]: ...

    def lock_identities(self, scope: str, keys: Sequence[IdentityKey]) -> None: ...

    def find_identities(
        self, scope: str, keys: Sequence[IdentityKey]
    ) -> dict[IdentityKey, list[int]]: ...

    def link_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None: ...

    def unlink_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None: ...

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool: ...

    def append_log(self, entry: LogEntry) -> None: ...

    def position(self, partition: int) -> int: ...

    def move_position(self, partition: int, seq: int) -> None: ...

    def set_log_status(self, entry_id: int, status: str, reason: str | None) -> None: ...

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]: ...

    def repoint_log(self, entry_ids: Sequence[int], mpid: int) -> None: ...

    def record_reject(self, entry: RejectEntry) -> None: ...

    def mark_replayed(self, reject_id: int, now_ms: int) -> None: ...

    def append_memberships(self, changes: Sequence[MembershipChange]) -> None: ...

    def apply_selection(
        self, selection: Selection, held: Membership, from_mpid: int, limit: int, reason: str
    ) -> SelectionPage: ...

    def remove_members(self, audience_id: int, at_ms: int, reason: str) -> int: ...

    def audience_active(self, audience_id: int) -> bool: ...

    def record_merge(self, entry: MergeEntry) -> None: ...

    def mark_unmerged(self, merge_id: int, now_ms: int) -> None: ...

    def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None: ...

    def erase_log(self, mpids: Sequence[int], needles: Sequence[bytes]) -> list[Removed]: ...

    def aged_log(
        self, workspace_ids: Sequence[int], received_before_ms: int, limit: int
    ) -> list[tuple[int, int | None]]: ...

    def delete_log(self, entry_ids: Sequence[int]) -> int: ...

    def erase_rejects(self, needles: Sequence[bytes]) -> list[Removed]: ...

    def erase_membership_log(self, mpids: Sequence[int]) -> list[Removed]: ...

    def erase_merges(self, mpids: Sequence[int]) -> list[Removed]: ...

    def erase_deliveries(self, mpids: Sequence[int]) -> tuple[list[Removed], list[Removed]]: ...

    def save_receipt(self, record: ReceiptRecord) -> None: ...

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool: ...


class _Profiles:
    def __init__(self, tx: Transaction) -> None:
        self.load = tx.load_profiles
        self.save = tx.save_profile
        self.adopt = tx.adopt_profiles
        self.save_prepared = tx.save_prepared
        self.delete = tx.delete_profile
        self.expired = tx.expired_profiles
        self.page = tx.profiles_from
        self.due = tx.due_profiles


class _Identities:
    def __init__(self, tx: Transaction) -> None:
        self.lock = tx.lock_identities
        self.find = tx.find_identities
        self.link = tx.link_identities
        self.unlink = tx.unlink_identities


class _Log:
    def __init__(self, tx: Transaction) -> None:
        self.claim_request = tx.claim_request
        self.append = tx.append_log
        self.position = tx.position
        self.move_position = tx.move_position
        self.set_status = tx.set_log_status
        self.ids = tx.log_ids
        self.repoint = tx.repoint_log
        self.erase = tx.erase_log
        self.aged = tx.aged_log
        self.delete = tx.delete_log


class _Rejects:
    def __init__(self, tx: Transaction) -> None:
        self.record = tx.record_reject
        self.mark_replayed = tx.mark_replayed
        self.erase = tx.erase_rejects


class _Memberships:
    def __init__(self, tx: Transaction) -> None:
        self.append = tx.append_memberships
        self.apply_selection = tx.apply_selection
        self.remove_all = tx.remove_members
        self.audience_active = tx.audience_active
        self.erase_log = tx.erase_membership_log


class _Ledger:
    def __init__(self, tx: Transaction) -> None:
        self.record = tx.record_merge
        self.mark_unmerged = tx.mark_unmerged
        self.erase = tx.erase_merges


class _Outbox:
    def __init__(self, tx: Transaction) -> None:
        self.enqueue = tx.enqueue_deliveries
        self.erase = tx.erase_deliveries


class _Receipts:
    def __init__(self, tx: Transaction) -> None:
        self.save = tx.save_receipt


class _Dsr:
    def __init__(self, tx: Transaction) -> None:
        self.update = tx.update_dsr


class PartedUnitOfWork:
    """A `kindred.ports.UnitOfWork`: the transaction's methods, grouped by part (bound
    methods, so a call through a part costs what a direct one does)."""

    def __init__(self, tx: Transaction) -> None:
        self.profiles = _Profiles(tx)
        self.identities = _Identities(tx)
        self.log = _Log(tx)
        self.rejects = _Rejects(tx)
        self.memberships = _Memberships(tx)
        self.ledger = _Ledger(tx)
        self.outbox = _Outbox(tx)
        self.receipts = _Receipts(tx)
        self.dsr = _Dsr(tx)
        self.prefetch = tx.prefetch
        self.definitions_version = tx.definitions_version
        self.recorded = tx.recorded
