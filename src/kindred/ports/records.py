"""What the stores keep and answer, as plain records: the event log's entries, the merge
ledger's, refused batches, and what an audience's selection did."""

from __future__ import annotations

import msgspec

from kindred.audiences.definition import MembershipChange
from kindred.domain.profile import Profile

__all__ = [
    "BatchStatus",
    "LogEntry",
    "MembershipCounts",
    "MergeEntry",
    "PreparedSaves",
    "ProfileSample",
    "Recorded",
    "RejectEntry",
    "SelectionPage",
]


class BatchStatus:
    """What became of an accepted batch, as kept in the event log."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DROPPED = "dropped"  # update-only input, unknown user (PRF-5)
    READ_ONLY = "read_only"  # read-only input: kept and forwarded, not applied
    UNRESOLVED = "unresolved"  # no MPID and no usable identity
    FAILED = "failed"  # applying raised; kept with the error, replayable


class LogEntry(msgspec.Struct, kw_only=True):
    """One accepted batch, exactly as received, with what became of it."""

    input: str
    workspace_id: int
    received_ms: int
    status: str
    body: bytes
    mpid: int | None = None
    reason: str | None = None
    source_request_id: str | None = None
    # What shaped the batch besides its body, so that a rebuild reads it the same way.
    client_ip: str | None = None
    historical: bool = False
    id: int | None = None
    # An applied batch's events as compact stamps (domain.stamps), which activations read
    # instead of the body where they can; None for other batches and those logged before.
    event_stamps: bytes | None = None


class ProfileSample(msgspec.Struct, frozen=True, kw_only=True):
    """A scope's estimator sample (AUD-7, `audiences.sample`): its profiles with the
    smallest sample keys, by key (merged profiles' stubs among them), and the bound: every
    profile of the scope whose key is below it is in the sample, and no other;
    SAMPLE_MODULUS when the sample holds every profile of the scope."""

    profiles: list[Profile]
    bound: int
    # What each profile was decoded from, by its stored document: its memberships as read
    # and the profile. A later read given this sample decodes only the rows that changed.
    # Empty for a store that keeps profiles as objects.
    decoded_from: dict[bytes | str, tuple[bytes | str | None, Profile]] = {}


class PreparedSaves(msgspec.Struct, frozen=True, kw_only=True):
    """Profiles to save, made ready outside any transaction by the store that will save
    them (ProfileReader.prepare_saves): the SQL stores encode their documents there, so
    that the transaction that saves them (UnitOfWork.profiles.save_prepared) holds the
    store's one writer for less. Each profile's version follows the one it was read at."""

    profiles: list[Profile]
    # Each profile's document in the store's own form, in order; empty for a store that
    # keeps profiles as objects.
    documents: list[str] = []


class RejectEntry(msgspec.Struct, kw_only=True):
    """A batch refused (400) or quarantined (web batches, 202): kept for inspection/replay."""

    input: str
    received_ms: int
    kind: str  # "rejected" | "quarantined"
    reason: str
    body: bytes
    id: int | None = None
    replayed_ms: int | None = None


class MergeEntry(msgspec.Struct, kw_only=True):
    """One merge in the ledger (IDS-6): `merged` was folded into `survivor` by `rule`
    ("login", "alias", "admin"), because of the identity named, with both profiles as they
    were just before (encoded documents) so that an un-merge can restore them."""

    scope: str
    survivor: int
    merged: int
    rule: str
    merged_ms: int
    survivor_before: bytes
    merged_before: bytes
    identity_type: str | None = None
    identity_value: str | None = None
    # Event-log entries moved from `merged` to `survivor` (an alias's time range).
    moved_log_ids: list[int] = msgspec.field(default_factory=list)
    detail: str | None = None
    unmerged_ms: int | None = None
    id: int | None = None


class Removed(msgspec.Struct, frozen=True):
    """A row an erasure deleted: its id and its digest (`domain.receipts.row_digest` over
    the part's fields, the same on every store)."""

    id: int
    digest: str


class SelectionPage(msgspec.Struct, frozen=True, kw_only=True):
    """What one page of `apply_selection` did: how many profiles it covered, the last MPID
    covered (None: the scope has no more), and the membership changes; `stopped` when the
    audience was no longer active (nothing done)."""

    read: int
    last_mpid: int | None
    changes: list[MembershipChange]
    stopped: bool = False


class MembershipCounts(msgspec.Struct, frozen=True, kw_only=True):
    entered: int = 0
    exited: int = 0
    entered_since: int = 0
    exited_since: int = 0
    last_change_ms: int | None = None


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """What a unit of work has changed so far that leaves the store: the batches it logged
    and the membership changes it appended, in order (what forwarding reads, BEY-5)."""

    log: list[LogEntry]
    memberships: list[MembershipChange]
