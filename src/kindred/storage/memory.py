"""The reference implementation of every port: plain dicts behind one lock.

It defines the semantics the SQL stores must match (the contract suite runs on all three);
a unit of work copies the state on entry and swaps it in on commit.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import ERASED_EXIT, AudienceDef, MembershipChange, Selection
from kindred.audiences.evaluate import admits
from kindred.audiences.sample import SAMPLE_MODULUS, sample_key
from kindred.audiences.versions import AudienceVersion, is_new_version
from kindred.domain.credentials import ApiCredential
from kindred.domain.dsr import DsrRequest, DsrStatus
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Membership, Profile
from kindred.domain.receipts import ReceiptRecord, row_digest
from kindred.domain.sessions import UiSession
from kindred.domain.users import UserKeyRecord, UserRecord
from kindred.ports import (
    ConcurrentUpdate,
    Delivery,
    LogEntry,
    MembershipCounts,
    MergeEntry,
    Needles,
    ProfileSample,
    Recorded,
    RejectEntry,
    Removed,
    SelectionPage,
    UnitOfWork,
)
from kindred.storage.calculated_saves import CalculatedSaves
from kindred.storage.memory_outbox import DeliveryState, MemoryDeliveries
from kindred.storage.parts import PartedUnitOfWork

__all__ = ["MemoryStore"]


@dataclass
class _State:
    profiles: dict[int, Profile] = field(default_factory=dict)
    identities: dict[tuple[str, IdentityKey], set[int]] = field(default_factory=dict)
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)  # batch log partition -> seq
    log: list[LogEntry] = field(default_factory=list)
    rejects: list[RejectEntry] = field(default_factory=list)
    merges: list[MergeEntry] = field(default_factory=list)
    memberships: list[MembershipChange] = field(default_factory=list)
    audiences: dict[int, AudienceDef] = field(default_factory=dict)
    audience_versions: dict[int, list[AudienceVersion]] = field(default_factory=dict)
    calculated: dict[int, CalculatedDef] = field(default_factory=dict)
    definitions_version: int = 0
    credentials: dict[str, ApiCredential] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)
    sessions: dict[str, UiSession] = field(default_factory=dict)
    users: dict[str, UserRecord] = field(default_factory=dict)
    user_keys: dict[str, UserKeyRecord] = field(default_factory=dict)
    deliveries: DeliveryState = field(default_factory=DeliveryState)
    dsr: dict[tuple[int, str], DsrRequest] = field(default_factory=dict)
    dsr_results: dict[tuple[int, str], bytes] = field(default_factory=dict)
    receipts: dict[str, ReceiptRecord] = field(default_factory=dict)
    # The id the next row of each log gets: ids only grow, even when rows are erased.
    next_ids: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("log", "rejects", "merges", "memberships"), 1)
    )

    def take_ids(self, table: str, count: int = 1) -> int:
        """The first of `count` new ids of the table."""
        first = self.next_ids[table]
        self.next_ids[table] = first + count
        return first


class _MemoryUnitOfWork:
    def __init__(self, state: _State) -> None:
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
                e.mpid in gone or (e.mpid is None and _holds(e.body, needles))
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
            if _holds(r.body, needles)
        ]
        self.state.rejects = [r for r in self.state.rejects if not _holds(r.body, needles)]
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

    def delete_profile(self, profile: Profile) -> None:
        stored = self.state.profiles.get(profile.mpid)
        if stored is None or stored.version != profile.version:
            raise ConcurrentUpdate(f"profile {profile.mpid} is not at version {profile.version}")
        del self.state.profiles[profile.mpid]
        for key, mpids in list(self.state.identities.items()):
            mpids.discard(profile.mpid)
            if not mpids:
                del self.state.identities[key]


def _holds(body: bytes, needles: Sequence[bytes]) -> bool:
    return any(needle in body for needle in needles)


class MemoryStore(CalculatedSaves, MemoryDeliveries):
    def __init__(self) -> None:
        super().__init__()
        self._state = _State()
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
            was = draft.deliveries
            draft.deliveries = DeliveryState(
                list(was.outbox), was.next_id, list(was.dead), was.next_dead_id
            )
            yield PartedUnitOfWork(_MemoryUnitOfWork(draft))
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

    def find_profiles(self, scope: str, key: IdentityKey) -> list[int]:
        return sorted(self._state.identities.get((scope, key), ()))

    def find_linked(self, scope: str, keys: Sequence[IdentityKey]) -> dict[IdentityKey, list[int]]:
        found = {key: self.find_profiles(scope, key) for key in keys}
        return {key: mpids for key, mpids in found.items() if mpids}

    def count_profiles(self) -> int:
        return len(self._state.profiles)

    def sample_profiles(self, scope: str, size: int) -> ProfileSample:
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

    def log_for_mpid_range(self, first: int, last: int, to_id: int) -> list[LogEntry]:
        found = [
            e
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

    def save_credential(self, credential: ApiCredential) -> None:
        with self._lock:
            self._state.credentials[credential.client_id] = credential
            self._definitions_changed()

    def list_credentials(self) -> list[ApiCredential]:
        return sorted(self._state.credentials.values(), key=lambda c: (c.created_ms, c.client_id))

    def server_secret(self, name: str, candidate: bytes) -> bytes:
        with self._lock:
            return self._state.secrets.setdefault(name, candidate)

    def replace_server_secret(self, name: str, value: bytes) -> None:
        with self._lock:
            self._state.secrets[name] = value

    def save_user(self, user: UserRecord) -> None:
        with self._lock:
            self._state.users[user.name] = user
            self._definitions_changed()

    def remove_user(self, name: str) -> bool:
        with self._lock:
            keys = self._state.user_keys
            for key_id in [k for k, v in keys.items() if v.user == name]:
                del keys[key_id]
            self._definitions_changed()
            return self._state.users.pop(name, None) is not None

    def list_users(self) -> list[UserRecord]:
        return sorted(self._state.users.values(), key=lambda u: u.name)

    def save_user_key(self, key: UserKeyRecord) -> None:
        with self._lock:
            self._state.user_keys[key.key_id] = key
            self._definitions_changed()

    def list_user_keys(self) -> list[UserKeyRecord]:
        return sorted(self._state.user_keys.values(), key=lambda k: (k.created_ms, k.key_id))

    def save_session(self, session: UiSession) -> None:
        with self._lock:
            self._state.sessions[session.key] = session

    def get_session(self, key: str) -> UiSession | None:
        return self._state.sessions.get(key)

    def end_session(self, key: str, ended_ms: int) -> None:
        with self._lock:
            session = self._state.sessions.get(key)
            if session is not None and session.ended_ms is None:
                ended = msgspec.structs.replace(session, ended_ms=ended_ms)
                self._state.sessions[key] = ended

    def purge_sessions(self, before_ms: int) -> int:
        with self._lock:
            sessions = self._state.sessions
            gone = [
                k
                for k, s in sessions.items()
                if s.expires_ms < before_ms or (s.ended_ms is not None and s.ended_ms < before_ms)
            ]
            for key in gone:
                del sessions[key]
            return len(gone)

    def insert_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> str:
        with self._lock:
            requests = self._state.dsr
            if (request.workspace_id, request.request_id) in requests:
                return "duplicate"
            if any(
                r.workspace_id == request.workspace_id
                and r.request_type == request.request_type
                and r.is_open
                and r.subject_key == request.subject_key
                for r in requests.values()
            ):
                return "conflict"
            requests[(request.workspace_id, request.request_id)] = request
            self._state.deliveries.add(callbacks)
            return "created"

    def get_dsr(self, workspace_id: int, request_id: str) -> DsrRequest | None:
        return self._state.dsr.get((workspace_id, request_id))

    def list_dsr(
        self, workspace_id: int | None, group_id: str | None, limit: int
    ) -> list[DsrRequest]:
        with self._lock:
            found = [
                r
                for r in self._state.dsr.values()
                if (workspace_id is None or r.workspace_id == workspace_id)
                and (group_id is None or r.group_id == group_id)
            ]
        found.sort(key=lambda r: (r.received_ms, r.request_id), reverse=True)
        return found[:limit]

    def update_dsr(self, request: DsrRequest, callbacks: Sequence[Delivery] = ()) -> bool:
        with self._lock:
            key = (request.workspace_id, request.request_id)
            stored = self._state.dsr.get(key)
            if stored is None or stored.version != request.version - 1:
                return False
            self._state.dsr[key] = request
            self._state.deliveries.add(callbacks)
            return True

    def due_dsr(self, now_ms: int, stale_before_ms: int, limit: int) -> list[DsrRequest]:
        with self._lock:
            found = [
                r
                for r in self._state.dsr.values()
                if (r.status == DsrStatus.PENDING and r.due_ms <= now_ms)
                or (r.status == DsrStatus.IN_PROGRESS and r.status_ms < stale_before_ms)
            ]
        found.sort(key=lambda r: (r.due_ms, r.workspace_id, r.request_id))
        return found[:limit]

    def save_dsr_result(self, workspace_id: int, request_id: str, body: bytes | None) -> None:
        with self._lock:
            if body is None:
                self._state.dsr_results.pop((workspace_id, request_id), None)
            else:
                self._state.dsr_results[(workspace_id, request_id)] = body

    def dsr_result(self, workspace_id: int, request_id: str) -> bytes | None:
        return self._state.dsr_results.get((workspace_id, request_id))

    def save_receipt(self, record: ReceiptRecord) -> None:
        with self._lock:
            self._state.receipts[record.receipt_id] = record

    def get_receipt(self, receipt_id: str) -> ReceiptRecord | None:
        return self._state.receipts.get(receipt_id)

    def list_receipts(self, workspace_id: int | None, limit: int) -> list[ReceiptRecord]:
        with self._lock:
            found = [
                r
                for r in self._state.receipts.values()
                if workspace_id is None or r.workspace_id == workspace_id
            ]
        found.sort(key=lambda r: (r.made_ms, r.receipt_id), reverse=True)
        return found[:limit]

    def erasure_residue(
        self,
        scope: str,
        mpids: Sequence[int],
        identities: Sequence[IdentityKey],
        needles: Sequence[bytes],
        before_ms: int,
    ) -> dict[str, int]:
        gone = set(mpids)
        with self._lock:
            state = self._state
            profiles = state.profiles
            links = sum(1 for linked in state.identities.values() for m in linked if m in gone)
            for key in identities:
                for m in state.identities.get((scope, key), set()) - gone:
                    stored = profiles.get(m)
                    links += stored is None or stored.created_ms < before_ms
            deliveries = state.deliveries
            return {
                "profiles": sum(1 for m in gone if m in profiles),
                "identity_links": links,
                "event_log": sum(
                    1
                    for e in state.log
                    if e.mpid in gone
                    or (e.mpid is None and e.received_ms < before_ms and _holds(e.body, needles))
                ),
                "rejects": sum(
                    1
                    for r in state.rejects
                    if r.received_ms < before_ms and _holds(r.body, needles)
                ),
                "audience_memberships": sum(
                    len(p.memberships) for m, p in profiles.items() if m in gone
                ),
                "membership_log": sum(
                    1 for c in state.memberships if c.mpid in gone and c.reason != ERASED_EXIT
                ),
                "merge_ledger": sum(
                    1 for m in state.merges if m.survivor in gone or m.merged in gone
                ),
                "outbox": sum(
                    1 for d in deliveries.outbox if d.mpid in gone and d.created_ms < before_ms
                ),
                "dead_letters": sum(
                    1
                    for d in deliveries.dead
                    if d.delivery.mpid in gone and d.delivery.created_ms < before_ms
                ),
            }

    def close(self) -> None:
        """Nothing to release."""
