"""Ports: what the services need from the outside world, as narrow typed Protocols (the
records they exchange are in `records`, the delivery ports in `delivery`).

Every store (memory, SQLite, PostgreSQL) implements these and passes one contract suite.
Nothing here names a backend; nothing assumes a single process.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef, MembershipChange, Selection
from kindred.audiences.prefilter import Needles
from kindred.audiences.versions import AudienceVersion
from kindred.domain.credentials import ApiCredential
from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.receipts import ReceiptRecord
from kindred.domain.sessions import UiSession
from kindred.domain.users import UserKeyRecord, UserRecord
from kindred.ports.delivery import (
    ConnectionState,
    DeadLetter,
    Delivery,
    DeliveryStore,
    Message,
    OutputDefinitions,
    Sink,
    SyncState,
    SyncStore,
)
from kindred.ports.records import (
    BatchStatus,
    LogEntry,
    MembershipCounts,
    MergeEntry,
    PreparedSaves,
    ProfileSample,
    Recorded,
    RejectEntry,
    Removed,
    SelectionPage,
)
from kindred.ports.unit_of_work import (
    ConcurrentUpdate,
    DsrWrites,
    EventLogWrites,
    IdentityIndex,
    LedgerWrites,
    MembershipWrites,
    OutboxWrites,
    ProfileWrites,
    ReceiptWrites,
    RejectWrites,
    UnitOfWork,
)

__all__ = [
    "AudienceStore",
    "BatchStatus",
    "Clock",
    "ConcurrentUpdate",
    "ConnectionState",
    "CredentialStore",
    "DeadLetter",
    "DeferredSync",
    "DefinitionsVersion",
    "Delivery",
    "DeliveryStore",
    "DsrStore",
    "DsrWrites",
    "EventLogReader",
    "EventLogWrites",
    "IdentityIndex",
    "LedgerWrites",
    "LogEntry",
    "MembershipCounts",
    "MembershipWrites",
    "MergeEntry",
    "MergeReader",
    "Message",
    "Metrics",
    "MpidSource",
    "Needles",
    "OutboxWrites",
    "OutputDefinitions",
    "PreparedSaves",
    "ProfileReader",
    "ProfileSample",
    "ProfileWrites",
    "ReceiptWrites",
    "Recorded",
    "RejectEntry",
    "RejectReader",
    "RejectWrites",
    "Removed",
    "SecretBox",
    "Secrets",
    "SelectionPage",
    "SessionStore",
    "Sink",
    "Store",
    "SyncState",
    "SyncStore",
    "UnitOfWork",
    "UnitsOfWork",
    "UserStore",
]


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


class SecretBox(Protocol):
    """Encryption of the secrets kept in the store (output secrets), with a key that is not
    in the store."""

    def seal(self, plaintext: str) -> str:
        """The secret encrypted, as text starting with `enc:`."""
        ...

    def open(self, sealed: str) -> str:
        """The secret a `seal` made; ConfigError when no key in use can decrypt it."""
        ...


class DefinitionsVersion(Protocol):
    def definitions_version(self) -> int:
        """The definitions' version as last committed (UnitOfWork.definitions_version
        reads it inside a transaction)."""
        ...


class UnitsOfWork(Protocol):
    """Where write transactions come from."""

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]: ...


@runtime_checkable
class DeferredSync(Protocol):
    """A store whose commits can reach the disk after the fact, several at once: commits a
    thread makes inside `deferred_sync()` are durable once a later `sync()` returns (and
    are kept through a process crash before that)."""

    def deferred_sync(self, *, copy_meanwhile: bool = False) -> AbstractContextManager[None]:
        """`copy_meanwhile`: a long run of such commits (an activation's pages), whose
        copy into the database may go on in the background while it runs."""
        ...

    def sync(self) -> None:
        """Every commit made so far durable; raises StoreUnavailable if the disk fails."""
        ...


class ProfileReader(Protocol):
    def get_profile(self, mpid: int) -> Profile | None: ...

    def versioned_profile(self, mpid: int) -> tuple[int, Profile | None]:
        """The definitions' version as last committed and the profile, as one read sees
        them (one statement on the SQL stores: the Profile API's point read)."""
        ...

    def get_profiles(self, mpids: Sequence[int]) -> dict[int, Profile]:
        """The profiles of `mpids` as last committed, in one read (those not stored are
        absent); a page at a time, as the audience download reads its members."""
        ...

    def profiles_between(
        self, scope: str, from_mpid: int, below_mpid: int | None, limit: int
    ) -> list[Profile]:
        """Up to `limit` profiles of the scope with `from_mpid` <= MPID (< `below_mpid`),
        by MPID, as last committed, read outside any transaction: an activation computes
        a page from them and saves it in a short transaction that checks their versions
        (UnitOfWork.profiles.adopt)."""
        ...

    def page_starts(self, scope: str, from_mpid: int, page: int, pages: int) -> list[int]:
        """The MPID at which each of the next `pages` pages of `page` profiles of the scope
        (from `from_mpid`, by MPID) starts, then the one at which the page after them
        would: up to `pages + 1` MPIDs, fewer once the scope ends (read from an index)."""
        ...

    def prepare_saves(self, profiles: Sequence[Profile]) -> PreparedSaves:
        """The profiles made ready for UnitOfWork.profiles.save_prepared, outside any
        transaction (no store state is read: only the profiles are)."""
        ...

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]: ...

    def find_linked(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        """The MPIDs each identity is linked to, in one read (keys with no link are absent)."""
        ...

    def count_profiles(self) -> int: ...

    def sample_profiles(
        self, scope: str, size: int, previous: ProfileSample | None = None
    ) -> ProfileSample:
        """The scope's `size` profiles of smallest sample key (`audiences.sample.sample_key`)
        as last committed, read as one index range (the estimator's sample, AUD-7); those
        whose key equals the next one's are left out, so the bound is exact. `previous`: an
        earlier read of the scope's sample, whose profiles stored as they were then are
        taken from it rather than decoded again."""
        ...


class EventLogReader(Protocol):
    def read_log(self, after_id: int, limit: int) -> list[LogEntry]: ...

    def latest_log(self, limit: int) -> list[LogEntry]:
        """The newest batches of every profile, newest first (the UI's Live Stream)."""
        ...

    def log_for_profile(self, mpid: int, limit: int) -> list[LogEntry]:
        """The profile's batches, newest first."""
        ...

    def log_for_profiles(self, mpids: Sequence[int]) -> list[LogEntry]:
        """Every batch logged for these profiles (through the log's MPID index), oldest
        first: the estimator folds its sample's events as an activation folds the log."""
        ...

    def log_for_mpid_range(
        self, first: int, last: int, to_id: int, *, stamped_bodies: bool = True
    ) -> list[LogEntry]:
        """Every batch logged for an MPID from `first` to `last` (both included) with an id
        up to `to_id`, by MPID then id (through the log's MPID index): an activation reads
        the batches of a page of profiles it folds in MPID order. Without
        `stamped_bodies`, a batch with its event stamps comes without its body (empty),
        which is then not read from the store."""
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

    def replace_server_secret(self, name: str, value: bytes) -> None:
        """Keep `value` under `name` from now on (a rotated key): `server_secret` answers
        it to every process that asks afterwards."""
        ...


class SessionStore(Protocol):
    """Web UI sessions (`domain.sessions`), by key. Small writes, each call its own
    transaction; `get_session` is read on every signed-in request: one point read."""

    def save_session(self, session: UiSession) -> None:
        """Insert or replace by key."""
        ...

    def get_session(self, key: str) -> UiSession | None: ...

    def end_session(self, key: str, ended_ms: int) -> None:
        """Mark the session ended (signed out) at `ended_ms`, unless it ended already;
        nothing for an unknown key."""
        ...

    def purge_sessions(self, before_ms: int) -> int:
        """Delete the sessions that expired or ended before `before_ms`; how many."""
        ...


class UserStore(Protocol):
    """Users added with `kindred users` and their admin API keys (`domain.users`). Rare,
    small writes, each call its own transaction, each raising the definitions' version (so
    that a removed user or a revoked key stops working in every process at once)."""

    def save_user(self, user: UserRecord) -> None:
        """Insert or replace by name."""
        ...

    def remove_user(self, name: str) -> bool:
        """Delete the user and every key of theirs; whether there was one."""
        ...

    def list_users(self) -> list[UserRecord]:
        """Every stored user, by name."""
        ...

    def save_user_key(self, key: UserKeyRecord) -> None:
        """Insert or replace by key id."""
        ...

    def list_user_keys(self) -> list[UserKeyRecord]:
        """Every key, revoked ones included, by creation time then key id."""
        ...


class AudienceStore(Protocol):
    """Audience definitions (small, rarely written: each call is its own transaction) and
    the membership log."""

    def save_audience(
        self, audience: AudienceDef, *, progress: bool = False, cut_log: bool = False
    ) -> AudienceDef:
        """Insert (id 0: the store gives one) or replace, raising the definitions'
        version; returns it with its id. `progress`: only the backfill's progress
        changed, the version stays (no process rebuilds its audiences). `cut_log`: with
        `history_to` set to the newest event log id, read in the same transaction (the
        batches logged up to it are the activation's to fold into its histories; every
        later one is applied by a writer that sees the new version)."""
        ...

    def list_audiences(self) -> list[AudienceDef]:
        """Every audience, deleted ones included, by id."""
        ...

    def audience_versions(self, audience_id: int) -> list[AudienceVersion]:
        """Every version of the audience, oldest first: save_audience (not `progress`)
        records one, in its transaction, whenever the definition changed
        (audiences.versions.is_new_version)."""
        ...

    def membership_log(
        self, *, audience_id: int | None, mpid: int | None, until_ms: int, limit: int
    ) -> list[MembershipChange]:
        """Log entries up to `until_ms`, oldest first, for an audience and/or a profile."""
        ...

    def membership_counts(self, audience_id: int, since_ms: int) -> MembershipCounts:
        """Enters and exits of an audience, in all and since an instant. The total of
        exits leaves out an erasure's (reason ERASED_EXIT): the entries they close were
        erased with the profile, so entered minus exited stays the audience's size."""
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


class DsrStore(Protocol):
    """Data subject requests (`domain.dsr`), by (workspace, request id), and the results of
    access and portability. Each call is its own transaction."""

    def insert_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> str:
        """Keep a new request: "created"; "duplicate" when the workspace has one of that id
        already; "conflict" when it has an open one (pending, in progress) of the same
        type and subject (`DsrRequest.subject_key`). Atomic across processes. `callbacks`:
        outbox rows added in the same transaction when (only when) it is created, so that
        status callbacks are queued in the order the statuses were stored."""
        ...

    def get_dsr(self, workspace_id: int, request_id: str) -> DsrRequest | None: ...

    def list_dsr(
        self, workspace_id: int | None, group_id: str | None, limit: int
    ) -> list[DsrRequest]:
        """Newest first (by received time), of one workspace or all, of one group or all."""
        ...

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        """Replace the stored request if it is still at `request.version - 1`; whether it
        was (a lost race: another process changed it first). `callbacks`: outbox rows added
        in the same transaction when (only when) it was replaced."""
        ...

    def due_dsr(self, now_ms: int, stale_before_ms: int, limit: int) -> list[DsrRequest]:
        """Requests to process: pending ones whose due time has come, and those in
        progress since before `stale_before_ms` (their process died); oldest due first."""
        ...

    def save_dsr_result(self, workspace_id: int, request_id: str, body: bytes | None) -> None:
        """Keep (or, with None, drop) the results of an access or portability request."""
        ...

    def dsr_result(self, workspace_id: int, request_id: str) -> bytes | None: ...

    def save_receipt(self, record: ReceiptRecord) -> None:
        """Keep an erasure's signed receipt (insert or replace, by `receipt_id`)."""
        ...

    def get_receipt(self, receipt_id: str) -> ReceiptRecord | None: ...

    def list_receipts(self, workspace_id: int | None, limit: int) -> list[ReceiptRecord]:
        """Newest first (by `made_ms`, then id), of one workspace or all."""
        ...

    def erasure_residue(
        self,
        scope: str,
        mpids: Sequence[int],
        identities: Sequence[IdentityKey],
        needles: Sequence[bytes],
        before_ms: int,
    ) -> dict[str, int]:
        """What is still stored of an erased subject, by part (`domain.receipts.
        RESIDUE_PARTS`, each present, 0 when clean): profiles of these MPIDs; identity links
        to them, and links of the identities (in the scope) to profiles created before
        `before_ms`; event-log entries of the MPIDs, and entries of no MPID received before
        `before_ms` whose body holds a needle; refused or quarantined batches received
        before it holding a needle; audience members, membership-log entries (except the
        exits an erasure logs, reason "erased"), merges (either side), outbox rows and dead
        letters (made before `before_ms`: an erasure's own removals are sent after it) of
        the MPIDs."""
        ...


class Store(
    DeliveryStore,
    DsrStore,
    ProfileReader,
    EventLogReader,
    RejectReader,
    MergeReader,
    CredentialStore,
    SessionStore,
    UserStore,
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
