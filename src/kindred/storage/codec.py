"""How profiles are serialized by every store: JSON, so SQL can read into them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.audiences.sample import SAMPLE_MODULUS
from kindred.domain.credentials import ApiCredential
from kindred.domain.profile import Membership, Profile
from kindred.ports import LogEntry, MembershipCounts, MergeEntry, ProfileSample, RejectEntry

__all__ = [
    "CREDENTIAL_COLUMNS",
    "LOG_INSERT_COLUMNS",
    "MEMBERSHIP_COLUMNS",
    "MERGE_COLUMNS",
    "REJECT_INSERT_COLUMNS",
    "ProfileRead",
    "ProfileWrite",
    "audience_doc",
    "audience_of",
    "credential_of",
    "credential_row",
    "decode_profile",
    "encode_profile",
    "log_row",
    "membership_counts_of",
    "membership_of",
    "membership_row",
    "membership_rows",
    "merge_of",
    "merge_row",
    "reject_row",
    "sample_of",
    "stored_document",
    "stored_profile",
]

# Column order of the rows below; every SQL store inserts in this order.
LOG_INSERT_COLUMNS = (
    "input, workspace_id, received_ms, status, reason, mpid, source_request_id,"
    " client_ip, historical, body, event_stamps"
)
REJECT_INSERT_COLUMNS = "input, received_ms, kind, reason, body, replayed_ms"

CREDENTIAL_COLUMNS = (
    "client_id, name, secret_hash, workspaces, rate_limit_per_s, rate_limit_burst,"
    " created_ms, revoked_ms, origin, scopes"
)

# Insert order of `merge_row`; reads select `id` first, then these.
MERGE_COLUMNS = (
    "scope, survivor, merged, rule, merged_ms, identity_type, identity_value,"
    " moved_log_ids, detail, unmerged_ms, survivor_before, merged_before"
)

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Profile)


def encode_profile(profile: Profile) -> bytes:
    return _ENCODER.encode(profile)


def decode_profile(doc: bytes | str) -> Profile:
    return _DECODER.decode(doc)


_MEMBERSHIPS = msgspec.json.Decoder(dict[int, Membership])


def stored_document(profile: Profile) -> bytes:
    """The profile as the profiles table keeps it: memberships live in audience_members."""
    if profile.memberships:
        profile = msgspec.structs.replace(profile, memberships={})
    return _ENCODER.encode(profile)


def stored_profile(doc: bytes | str, memberships: bytes | str | None) -> Profile:
    """A profile read with its memberships (a JSON object by audience id, or NULL)."""
    profile = _DECODER.decode(doc)
    held = _MEMBERSHIPS.decode(memberships) if memberships else {}
    if held != profile.memberships:
        profile = msgspec.structs.replace(profile, memberships=held)
    return profile


def sample_of(
    rows: Sequence[tuple[int, bytes | str, bytes | str | None]],
    size: int,
    previous: ProfileSample | None = None,
) -> ProfileSample:
    """The sample from up to `size + 1` rows (sample key, document, memberships) by key:
    with more than `size`, the bound is the next key, and a row at it is left out. A row
    stored as it was when `previous` was read is not decoded again."""
    bound = SAMPLE_MODULUS
    if len(rows) > size:
        bound = int(rows[size][0])
    known = previous.decoded_from if previous is not None else {}
    # By document, not by sample key: two profiles can share a key (a 31-bit hash), never
    # a document (it holds the MPID).
    decoded: dict[bytes | str, tuple[bytes | str | None, Profile]] = {}
    kept = []
    for key, doc, held in rows[:size]:
        if key >= bound:
            continue
        old = known.get(doc)
        profile = old[1] if old is not None and old[0] == held else stored_profile(doc, held)
        decoded[doc] = (held, profile)
        kept.append(profile)
    return ProfileSample(profiles=kept, bound=bound, decoded_from=decoded)


class ProfileRead(NamedTuple):
    """A profiles row as read, its document not decoded yet: a group of batches reads every
    profile it may touch at once and decodes each when a batch asks for it, so only the
    profiles in hand are in memory as objects (one with many calculated attributes is
    over a thousand)."""

    version: int
    doc: bytes | str
    memberships: bytes | str | None  # as stored_profile takes them

    def profile(self) -> Profile:
        return stored_profile(self.doc, self.memberships)


class ProfileWrite(NamedTuple):
    """A profile saved in a transaction, as its row: the document is encoded at the save,
    so the profile's objects are not held until the commit."""

    mpid: int
    scope: str
    version: int
    created_ms: int
    last_stored_ms: int
    audience_due_ms: int | None
    doc: str  # the store's own form of stored_document
    memberships: dict[int, Membership]

    @classmethod
    def of(cls, profile: Profile, doc: str) -> ProfileWrite:
        return cls(
            mpid=profile.mpid,
            scope=profile.scope,
            version=profile.version,
            created_ms=profile.created_ms,
            last_stored_ms=profile.last_stored_ms,
            audience_due_ms=profile.audience_due_ms,
            doc=doc,
            memberships=profile.memberships,
        )

    def profile(self) -> Profile:
        """The profile saved (read again by a later batch of the same transaction)."""
        profile = _DECODER.decode(self.doc)
        if self.memberships:
            profile = msgspec.structs.replace(profile, memberships=self.memberships)
        return profile


def membership_rows(
    writes: Iterable[tuple[int, Membership]],
) -> list[tuple[object, ...]]:
    """audience_members rows: (audience_id, mpid, name, since_ms, expires_ms)."""
    return [(m.audience_id, mpid, m.name, m.since_ms, m.expires_ms) for mpid, m in writes]


def log_row(entry: LogEntry) -> tuple[object, ...]:
    return (
        entry.input,
        entry.workspace_id,
        entry.received_ms,
        entry.status,
        entry.reason,
        entry.mpid,
        entry.source_request_id,
        entry.client_ip,
        entry.historical,
        entry.body,
        entry.event_stamps,
    )


def reject_row(entry: RejectEntry) -> tuple[object, ...]:
    return (entry.input, entry.received_ms, entry.kind, entry.reason, entry.body, entry.replayed_ms)


def credential_row(c: ApiCredential) -> tuple[object, ...]:
    workspaces = _ENCODER.encode(sorted(c.workspaces)).decode()
    return (
        c.client_id,
        c.name,
        c.secret_hash,
        workspaces,
        c.rate_limit_per_s,
        c.rate_limit_burst,
        c.created_ms,
        c.revoked_ms,
        c.origin,
        _ENCODER.encode(sorted(c.scopes)).decode(),
    )


def credential_of(row: Sequence[Any]) -> ApiCredential:
    """The inverse of `credential_row`, from a row in CREDENTIAL_COLUMNS order."""
    client_id, name, secret_hash, workspaces, rate, burst, created, revoked, origin, scopes = row
    return ApiCredential(
        client_id=str(client_id),
        name=str(name),
        secret_hash=str(secret_hash),
        workspaces=frozenset(msgspec.json.decode(str(workspaces), type=list[int])),
        rate_limit_per_s=float(rate),
        rate_limit_burst=int(burst),
        created_ms=int(created),
        revoked_ms=None if revoked is None else int(revoked),
        origin=str(origin),
        scopes=frozenset(msgspec.json.decode(str(scopes), type=list[str])),
    )


def merge_row(m: MergeEntry) -> tuple[object, ...]:
    return (
        m.scope,
        m.survivor,
        m.merged,
        m.rule,
        m.merged_ms,
        m.identity_type,
        m.identity_value,
        _ENCODER.encode(m.moved_log_ids).decode(),
        m.detail,
        m.unmerged_ms,
        m.survivor_before,
        m.merged_before,
    )


def merge_of(row: Sequence[Any]) -> MergeEntry:
    """From a row of `id, ` + MERGE_COLUMNS."""
    (entry_id, scope, survivor, merged, rule, merged_ms, id_type, id_value) = row[:8]
    moved, detail, unmerged_ms, survivor_before, merged_before = row[8:]
    return MergeEntry(
        id=int(entry_id),
        scope=str(scope),
        survivor=int(survivor),
        merged=int(merged),
        rule=str(rule),
        merged_ms=int(merged_ms),
        identity_type=id_type,
        identity_value=id_value,
        moved_log_ids=msgspec.json.decode(str(moved), type=list[int]),
        detail=detail,
        unmerged_ms=None if unmerged_ms is None else int(unmerged_ms),
        survivor_before=bytes(survivor_before),
        merged_before=bytes(merged_before),
    )


def audience_doc(audience: AudienceDef) -> str:
    return _ENCODER.encode(audience).decode()


def audience_of(entry_id: int, doc: str | bytes) -> AudienceDef:
    return msgspec.structs.replace(msgspec.json.decode(doc, type=AudienceDef), id=int(entry_id))


def calculated_doc(definition: CalculatedDef) -> str:
    return _ENCODER.encode(definition).decode()


def calculated_of(entry_id: int, doc: str | bytes) -> CalculatedDef:
    decoded = msgspec.json.decode(doc, type=CalculatedDef)
    return msgspec.structs.replace(decoded, id=int(entry_id))


def membership_row(c: MembershipChange) -> tuple[object, ...]:
    return (c.audience_id, c.mpid, c.entered, c.at_ms, c.reason)


# Read order of `membership_of` and of the counting query behind `membership_counts_of`.
MEMBERSHIP_COLUMNS = "id, audience_id, mpid, entered, at_ms, reason"


def membership_of(row: Sequence[Any]) -> MembershipChange:
    entry_id, audience_id, mpid, entered, at_ms, reason = row
    return MembershipChange(
        id=int(entry_id),
        audience_id=int(audience_id),
        mpid=int(mpid),
        entered=bool(entered),
        at_ms=int(at_ms),
        reason=str(reason),
    )


def membership_counts_of(row: Sequence[Any] | None) -> MembershipCounts:
    """From (entered, exited, entered since, exited since, last change)."""
    if row is None:
        return MembershipCounts()
    entered, exited, entered_since, exited_since, last = row
    return MembershipCounts(
        entered=int(entered or 0),
        exited=int(exited or 0),
        entered_since=int(entered_since or 0),
        exited_since=int(exited_since or 0),
        last_change_ms=None if last is None else int(last),
    )
