"""What a write-behind transaction changes, and the plain inserts and updates that write it
at commit, for both SQL stores (see writebehind)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from kindred.audiences.definition import MembershipChange
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.domain.receipts import ReceiptRecord
from kindred.ports import Delivery, LogEntry, MergeEntry, RejectEntry
from kindred.storage.codec import (
    LOG_INSERT_COLUMNS,
    MERGE_COLUMNS,
    REJECT_INSERT_COLUMNS,
    ProfileWrite,
    log_row,
    membership_rows,
    merge_row,
    reject_row,
)
from kindred.storage.dsr_sql import SAVE_RECEIPT, receipt_row
from kindred.storage.membership_log import LogRuns, membership_log_writes
from kindred.storage.outbox_sql import DELIVERY_COLUMNS, delivery_row

__all__ = ["Link", "PendingWrites", "ScopedKey", "StoredColumns", "row_writes"]

ScopedKey = tuple[str, IdentityKey]
Link = tuple[str, IdentityKey, int]


class StoredColumns(NamedTuple):
    """A profiles row's columns beside its document, as stored when the transaction read
    it: `created_ms` (criteria read it in SQL), `last_stored_ms` and `audience_due_ms`
    (indexed, for the lifetime sweep and the scheduler)."""

    created_ms: int
    last_stored_ms: int
    audience_due_ms: int | None

    @classmethod
    def of(cls, profile: Profile) -> StoredColumns:
        # A row's columns are written from its profile with its document, always together.
        return cls(profile.created_ms, profile.last_stored_ms, profile.audience_due_ms)


_COLUMNS = StoredColumns._fields


@dataclass
class PendingWrites:
    """Everything a transaction changes, flushed at commit."""

    inserts: list[ProfileWrite] = field(default_factory=list)
    # (profile, the version the database must still hold for the update to apply, its
    # row's other columns as stored, if known)
    updates: list[tuple[ProfileWrite, int, StoredColumns | None]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    unlinks: list[Link] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)  # batch log partition -> seq
    log: list[LogEntry] = field(default_factory=list)
    log_status: list[tuple[int, str, str | None]] = field(default_factory=list)
    rejects: list[RejectEntry] = field(default_factory=list)
    # (mpid, the version the database must still hold for the delete to apply); applied
    # before everything else, with every identity link of the MPID.
    deletes: list[tuple[int, int]] = field(default_factory=list)
    merges: list[MergeEntry] = field(default_factory=list)
    unmerges: list[tuple[int, int]] = field(default_factory=list)  # (merge id, time)
    repoints: list[tuple[int, int]] = field(default_factory=list)  # (log entry id, mpid)
    replays: list[tuple[int, int]] = field(default_factory=list)  # (reject id, time)
    memberships: list[MembershipChange] = field(default_factory=list)
    # audience_members rows to remove (audience id, mpid) and to write (mpid, membership)
    members_removed: list[tuple[int, int]] = field(default_factory=list)
    members_written: list[tuple[int, Membership]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    receipts: list[ReceiptRecord] = field(default_factory=list)

    def profile_inserts(self) -> list[tuple[int, str, int, int, int, int | None, str]]:
        """Rows of the profiles inserted: (mpid, scope, version, created_ms,
        last_stored_ms, audience_due_ms, doc)."""
        return [
            (p.mpid, p.scope, p.version, p.created_ms, p.last_stored_ms, p.audience_due_ms, p.doc)
            for p in self.inserts
        ]

    def profile_updates(self) -> list[tuple[int, int, int, int | None, str, int, int]]:
        """Rows of the profiles updated: (version, created_ms, last_stored_ms,
        audience_due_ms, doc, mpid, the version the database must still hold)."""
        return [
            (p.version, p.created_ms, p.last_stored_ms, p.audience_due_ms, p.doc, p.mpid, held)
            for p, held, _ in self.updates
        ]

    def updates_by_changed_columns(self) -> dict[tuple[str, ...], list[tuple[object, ...]]]:
        """The profiles updated, by which of their row's other columns they change (all
        when the stored ones are not known): SQLite rewrites the index entry of every
        column an UPDATE sets, to the value it already holds too, which for the randomly
        ordered due times doubled what an activation's page writes. Rows: (version, the
        changed columns' values, doc, mpid, the version the database must still hold)."""
        found: dict[tuple[str, ...], list[tuple[object, ...]]] = {}
        for p, held, stored in self.updates:
            now = (p.created_ms, p.last_stored_ms, p.audience_due_ms)
            if stored == now:  # an activation's page: the document alone
                found.setdefault((), []).append((p.version, p.doc, p.mpid, held))
                continue
            changed = [i for i, value in enumerate(now) if stored is None or stored[i] != value]
            found.setdefault(tuple(_COLUMNS[i] for i in changed), []).append(
                (p.version, *(now[i] for i in changed), p.doc, p.mpid, held)
            )
        return found


def row_writes(
    writes: PendingWrites, mark: str, runs: LogRuns | None = None
) -> list[tuple[str, list[tuple[object, ...]]]]:
    """The plain inserts and updates of a flush, as (statement, rows), in the order they
    must run after profiles are saved; `mark` is the driver's placeholder ("?" or "%s");
    `runs`: how the store writes a run of membership changes at once, if it does.
    Only the non-empty ones."""
    plan: list[tuple[str, list[tuple[object, ...]]]] = [
        (
            "INSERT INTO identities (scope, id_type, id_value, mpid) VALUES (?, ?, ?, ?)",
            [(scope, key.type, key.value, mpid) for scope, key, mpid in writes.links],
        ),
        (
            "DELETE FROM identities WHERE scope = ? AND id_type = ? AND id_value = ? AND mpid = ?",
            [(scope, key.type, key.value, mpid) for scope, key, mpid in writes.unlinks],
        ),
        (
            "INSERT INTO request_ids (input, request_id, received_ms) VALUES (?, ?, ?)",
            list(writes.requests),
        ),
        (
            "INSERT INTO log_positions (partition_no, seq) VALUES (?, ?)"
            " ON CONFLICT (partition_no) DO UPDATE SET seq = excluded.seq",
            sorted(writes.positions.items()),
        ),
        (
            f"INSERT INTO event_log ({LOG_INSERT_COLUMNS}) VALUES ({_marks(11)})",
            [log_row(entry) for entry in writes.log],
        ),
        (
            "UPDATE event_log SET status = ?, reason = ? WHERE id = ?",
            [(status, reason, entry_id) for entry_id, status, reason in writes.log_status],
        ),
        (
            f"INSERT INTO rejects ({REJECT_INSERT_COLUMNS}) VALUES ({_marks(6)})",
            [reject_row(entry) for entry in writes.rejects],
        ),
        (
            f"INSERT INTO merges ({MERGE_COLUMNS}) VALUES ({_marks(12)})",
            [merge_row(m) for m in writes.merges],
        ),
        (
            "UPDATE merges SET unmerged_ms = ? WHERE id = ?",
            [(ms, merge_id) for merge_id, ms in writes.unmerges],
        ),
        (
            "UPDATE event_log SET mpid = ? WHERE id = ?",
            [(mpid, entry_id) for entry_id, mpid in writes.repoints],
        ),
        (
            "UPDATE rejects SET replayed_ms = ? WHERE id = ?",
            [(ms, reject_id) for reject_id, ms in writes.replays],
        ),
        (
            "DELETE FROM audience_members WHERE audience_id = ? AND mpid = ?",
            list(writes.members_removed),
        ),
        (
            "INSERT INTO audience_members (audience_id, mpid, name, since_ms, expires_ms)"
            f" VALUES ({_marks(5)}) ON CONFLICT (mpid, audience_id) DO UPDATE SET"
            " name = excluded.name, since_ms = excluded.since_ms, expires_ms = excluded.expires_ms",
            membership_rows(writes.members_written),
        ),
        *membership_log_writes(writes.memberships, runs),
        (
            f"INSERT INTO outbox ({DELIVERY_COLUMNS}) VALUES ({_marks(9)})",
            [delivery_row(d) for d in writes.deliveries],
        ),
        (SAVE_RECEIPT, [receipt_row(r) for r in writes.receipts]),
    ]
    return [(sql.replace("?", mark), rows) for sql, rows in plan if rows]


def _marks(count: int) -> str:
    return ", ".join(["?"] * count)
