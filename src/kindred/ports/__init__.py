"""Ports: what the services need from the outside world, as narrow typed Protocols (the
records they exchange are in `records`, the delivery ports in `delivery`).

Every store (memory, SQLite, PostgreSQL) implements these and passes one contract suite.
Nothing here names a backend; nothing assumes a single process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef, MembershipChange, Selection
from kindred.audiences.prefilter import Needles
from kindred.domain.credentials import ApiCredential
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.ports.delivery import (
    ConnectionState,
    DeadLetter,
    Delivery,
    DeliveryStore,
    Message,
    Sink,
)
from kindred.ports.records import (
    BatchStatus,
    LogEntry,
    MembershipCounts,
    MergeEntry,
    Recorded,
    RejectEntry,
    SelectionPage,
)

__all__ = [
    "AudienceStore",
    "BatchStatus",
    "Clock",
    "ConcurrentUpdate",
    "ConnectionState",
    "CredentialStore",
    "DeadLetter",
    "DefinitionsVersion",
    "Delivery",
    "DeliveryStore",
    "EventLogReader",
    "LogEntry",
    "MembershipCounts",
    "MergeEntry",
    "MergeReader",
    "Message",
    "Metrics",
    "MpidSource",
    "Needles",
    "ProfileReader",
    "Recorded",
    "RejectEntry",
    "RejectReader",
    "Secrets",
    "SelectionPage",
    "Sink",
    "Store",
    "UnitOfWork",
    "UnitsOfWork",
]


class ConcurrentUpdate(Exception):
    """A profile changed under us (another process saved it first); retry the transaction."""


class Metrics(Protocol):
    """What the services report; the adapter exposes it to Prometheus."""

    def batch_done(self, input_name: str, status: str, events: int) -> None: ...

    def notes(self, input_name: str, reasons: Sequence[str]) -> None: ...

    def batch_refused(self, input_name: str, reason: str) -> None: ...

    def group_committed(self, size: int, seconds: float) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...


class MpidSource(Protocol):
    def new_mpid(self) -> int:
        """A random non-zero signed 64-bit integer."""
        ...


class Secrets(Protocol):
    """Unpredictable bytes (salts, keys, credential secrets, token ids)."""

    def token_bytes(self, n: int) -> bytes: ...


class UnitOfWork(Protocol):
    """One write transaction: commits when its context exits cleanly, else rolls back.

    Writes may be buffered until commit; reads always see this transaction's own writes.
    """

    def prefetch(
        self,
        identities: Sequence[tuple[str, IdentityKey]],
        mpids: Sequence[int],
        requests: Sequence[tuple[str, str]],
    ) -> None:
        """A hint, not a requirement: the (scope, identity) pairs, MPIDs and (input,
        request id) pairs this transaction is about to ask about. Stores that pay per
        round trip lock and read them in bulk; the identities are locked as by
        `lock_identities`, and the profiles they link to are loaded too."""
        ...

    def lock_identities(self, scope: str, keys: Sequence[IdentityKey]) -> None:
        """Serialize resolution of these identities against other processes until commit."""
        ...

    def find_identities(
        self, scope: str, keys: Sequence[IdentityKey]
    ) -> dict[IdentityKey, list[int]]:
        """The MPIDs each identity is linked to (keys with no link are absent)."""
        ...

    def load_profiles(self, mpids: Iterable[int]) -> dict[int, Profile]: ...

    def save_profile(self, profile: Profile) -> None:
        """Insert or replace; raises ConcurrentUpdate unless the stored version is
        `profile.version - 1` (or absent for version 1)."""
        ...

    def link_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None: ...

    def unlink_identities(self, scope: str, mpid: int, keys: Iterable[IdentityKey]) -> None: ...

    def claim_request(self, input_name: str, request_id: str, now_ms: int) -> bool:
        """True the first time an input sends this source_request_id (ING-4)."""
        ...

    def append_log(self, entry: LogEntry) -> None: ...

    def set_log_status(self, entry_id: int, status: str, reason: str | None) -> None: ...

    def record_reject(self, entry: RejectEntry) -> None: ...

    def expired_profiles(self, scope: str, stored_before_ms: int, limit: int) -> list[Profile]:
        """Up to `limit` profiles of the scope last stored before the instant, oldest first,
        claimed for this transaction: a concurrent caller in another process skips them."""
        ...

    def delete_profile(self, profile: Profile) -> None:
        """Remove the profile and every identity link to it. Raises ConcurrentUpdate (now or
        at commit) when the stored profile is no longer at `profile.version`."""
        ...

    def profiles_from(
        self, scope: str, from_mpid: int, limit: int, needles: Needles | None = None
    ) -> list[Profile]:
        """Up to `limit` profiles of the scope with MPID >= `from_mpid`, by MPID. With
        `needles`, a store may leave out profiles whose document cannot contain them (a
        store that cannot tell returns every profile)."""
        ...

    def due_profiles(self, before_ms: int, limit: int) -> list[Profile]:
        """Up to `limit` profiles whose `audience_due_ms` has come, earliest first, claimed
        for this transaction as `expired_profiles` claims them."""
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
        before and stops the page, or waits for it and then removes what it entered)."""
        ...

    def audience_active(self, audience_id: int) -> bool:
        """Whether the audience is active, as this transaction sees it; it stays so until
        this transaction ends (a status change waits for it, on stores where several
        processes write)."""
        ...

    def definitions_version(self) -> int:
        """The version of the definitions (audiences, calculated attributes, credentials,
        outputs and connections: every save raises it), as this transaction sees it; no
        definition changes until this transaction ends (a change waits for it, on stores
        where several processes write)."""
        ...

    def remove_members(self, audience_id: int, at_ms: int, reason: str) -> int:
        """Every profile leaves the audience (deleted or deactivated), each exit logged;
        returns how many left."""
        ...

    def record_merge(self, entry: MergeEntry) -> None: ...

    def append_memberships(self, changes: Sequence[MembershipChange]) -> None:
        """Append to the membership log (AUD-12)."""
        ...

    def mark_replayed(self, reject_id: int, now_ms: int) -> None:
        """A quarantined or refused batch was sent through ingest again."""
        ...

    def mark_unmerged(self, merge_id: int, now_ms: int) -> None: ...

    def log_ids(self, mpid: int, from_ms: int, to_ms: int) -> list[int]:
        """Ids of the event-log entries of the MPID received within [from_ms, to_ms]."""
        ...

    def repoint_log(self, entry_ids: Sequence[int], mpid: int) -> None:
        """Attribute these event-log entries to another profile."""
        ...

    def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Add to the outbox (ENR-3), committed with everything else of the transaction."""
        ...

    def recorded(self) -> Recorded:
        """Every batch this transaction has logged and every membership change it has
        appended so far, by whichever call (so that each one can be forwarded, BEY-5)."""
        ...


class DefinitionsVersion(Protocol):
    def definitions_version(self) -> int:
        """The definitions' version as last committed (UnitOfWork.definitions_version
        reads it inside a transaction)."""
        ...


class UnitsOfWork(Protocol):
    """Where write transactions come from."""

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...


class ProfileReader(Protocol):
    def get_profile(self, mpid: int) -> Profile | None: ...

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]: ...

    def find_linked(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        """The MPIDs each identity is linked to, in one read (keys with no link are absent)."""
        ...

    def count_profiles(self) -> int: ...


class EventLogReader(Protocol):
    def read_log(self, after_id: int, limit: int) -> list[LogEntry]: ...

    def latest_log(self, limit: int) -> list[LogEntry]:
        """The newest batches of every profile, newest first (the UI's Live Stream)."""
        ...

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        """The profile's batches, newest first."""
        ...


class MergeReader(Protocol):
    def list_merges(self, mpid: int | None, limit: int) -> list[MergeEntry]:
        """Newest first; with an MPID, the merges it took part in (either side)."""
        ...

    def get_merge(self, merge_id: int) -> MergeEntry | None: ...


class RejectReader(Protocol):
    def list_rejects(self, kind: str | None, limit: int) -> list[RejectEntry]: ...


class CredentialStore(Protocol):
    """Profile API credentials created at run time, and the server's own secrets. Rare,
    small writes: each call is its own transaction."""

    def save_credential(self, credential: ApiCredential) -> None:
        """Insert or replace by client id, raising the definitions' version."""
        ...

    def list_credentials(self) -> list[ApiCredential]: ...

    def server_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret stored under `name`; the first caller's `candidate` becomes it, so
        every process sharing the store agrees on one value."""
        ...


class AudienceStore(Protocol):
    """Audience definitions (small, rarely written: each call is its own transaction) and
    the membership log."""

    def save_audience(self, audience: AudienceDef, *, progress: bool = False) -> AudienceDef:
        """Insert (id 0: the store gives one) or replace, raising the definitions'
        version; returns it with its id. `progress`: only the backfill's progress
        changed, the version stays (no process rebuilds its audiences)."""
        ...

    def list_audiences(self) -> list[AudienceDef]:
        """Every audience, deleted ones included, by id."""
        ...

    def membership_log(
        self, *, audience_id: int | None, mpid: int | None, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        """Log entries up to `until_ms`, oldest first, for an audience and/or a profile."""
        ...

    def membership_counts(self, audience_id: int, since_ms: int) -> MembershipCounts:
        """Enters and exits of an audience, in all and since an instant."""
        ...

    def matching_profiles(self, selection: Selection, after_mpid: int, limit: int) -> list[int]:
        """The MPIDs, ascending and above `after_mpid`, of the selection's profiles its
        criteria admit (memberships read as stored; merged profiles never match)."""
        ...


class CalculatedStore(Protocol):
    """Calculated attribute definitions (small, rarely written: each call is its own
    transaction)."""

    def save_calculated(
        self, definition: CalculatedDef, *, progress: bool = False
    ) -> CalculatedDef:
        """Insert (id 0: the store gives one) or replace, raising the definitions' version
        (UnitOfWork.definitions_version); returns it with its id. `progress`: only the
        computation's progress changed, the version stays (no process reloads)."""
        ...

    def activate_calculated(self, definition: CalculatedDef) -> CalculatedDef:
        """save_calculated with `backfill_total` set to the newest event log id, read in
        the same transaction: the batches logged up to it are the activation's to compute,
        and every later one is applied by a writer that sees the new version."""
        ...

    def list_calculated(self) -> list[CalculatedDef]:
        """Every definition, deleted ones included, by id."""
        ...


class Store(
    DeliveryStore,
    ProfileReader,
    EventLogReader,
    RejectReader,
    MergeReader,
    CredentialStore,
    AudienceStore,
    CalculatedStore,
    DefinitionsVersion,
    UnitsOfWork,
    Protocol,
):
    """A backend: reads from any thread, writes through units of work."""

    def migrate(self) -> int:
        """Bring the schema up to date; returns the schema version."""
        ...

    def compact(self) -> tuple[int, int]:
        """Give back free space and store rows in key order (so that a scan of a table
        from a cold cache reads it in sequence); the store's size in bytes before and
        after. Writes wait meanwhile: for a quiet moment."""
        ...

    def close(self) -> None: ...
