"""The profile aggregate (PRF-1): everything known about one user in one identity scope."""

from __future__ import annotations

import msgspec

from kindred.domain.calculated import CalcState
from kindred.domain.observation import AttrValue, ConsentFact, LocationFact

__all__ = [
    "AttributeEntry",
    "Attribution",
    "Device",
    "IdentityEntry",
    "Membership",
    "Profile",
    "WorkspaceProfile",
]


class AttributeEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A user attribute with where and when it was written; `deleted` marks a tombstone.

    Tombstones keep the deletion time so that an older write arriving later cannot bring
    the value back (PRF-3).
    """

    value: AttrValue = None
    priority: int
    source: str
    ts_ms: int
    deleted: bool = False


class IdentityEntry(msgspec.Struct, frozen=True, kw_only=True):
    value: str
    first_seen_ms: int
    last_seen_ms: int


class Attribution(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Install attribution; `deleted` keeps the deletion's time so an older attribution
    event arriving later cannot bring it back."""

    publisher: str | None = None
    campaign: str | None = None
    ts_ms: int
    deleted: bool = False


class Device(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    key: str
    first_seen_ms: int
    last_seen_ms: int
    platform: str | None = None
    info: dict[str, object] = msgspec.field(default_factory=dict)
    identities: dict[str, str] = msgspec.field(default_factory=dict)
    att_status: str | None = None
    att_ts_ms: int | None = None
    attribution: Attribution | None = None


class Membership(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The profile is in this audience (AUD-*); kept on the profile so reads need no join."""

    audience_id: int
    name: str
    since_ms: int
    expires_ms: int | None = None


class WorkspaceProfile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a profile holds per workspace: attributes, consent, devices."""

    first_seen_ms: int
    last_seen_ms: int
    attributes: dict[str, AttributeEntry] = msgspec.field(default_factory=dict)
    gdpr: dict[str, ConsentFact] = msgspec.field(default_factory=dict)
    ccpa: ConsentFact | None = None
    devices: dict[str, Device] = msgspec.field(default_factory=dict)
    # The newest location a batch gave in this workspace.
    location: LocationFact | None = None
    # Calculated attribute states (CA-2) by attribute name; their values are attributes
    # written with the calculated rank of the priority ladder.
    calculated: dict[str, CalcState] = msgspec.field(default_factory=dict)

    def live_attributes(self) -> dict[str, AttrValue]:
        """Attribute values without tombstones."""
        return {k: e.value for k, e in self.attributes.items() if not e.deleted}


class Profile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    mpid: int
    scope: str
    created_ms: int
    last_stored_ms: int
    is_opted_out: bool = False
    opt_out_ts_ms: int = 0
    limit_ad_tracking: bool | None = None
    ip: str | None = None
    user_identities: dict[str, IdentityEntry] = msgspec.field(default_factory=dict)
    workspaces: dict[int, WorkspaceProfile] = msgspec.field(default_factory=dict)
    # Account-level user attributes (PRF-4): written by inputs with `account_attributes`,
    # one value for every workspace of the account, ranked above every workspace source
    # but calculated attributes.
    account_attributes: dict[str, AttributeEntry] = msgspec.field(default_factory=dict)
    memberships: dict[int, Membership] = msgspec.field(default_factory=dict)
    # Times of events, by the history keys active audiences read (see audiences.history),
    # within each one's lookback window, oldest first.
    event_times: dict[str, list[int]] = msgspec.field(default_factory=dict)
    # How far (an event log id) an audience's activation has folded the stored events
    # into each of its histories (services.audiences.jobs), so that none counts twice.
    event_folded: dict[str, int] = msgspec.field(default_factory=dict)
    # When time alone may next change an audience membership (the scheduler's due time).
    audience_due_ms: int | None = None
    # Hashes of the most recent event message ids (see domain.dedup), packed int64s.
    recent_messages: bytes = b""
    # Set when this profile was merged into another (IDS-6): its MPID then stands for that
    # survivor, and it holds nothing else until an un-merge brings its data back.
    merged_into: int | None = None
    # How many profiles were merged into this one (directly or through them).
    absorbed: int = 0
    # Incremented on every save: stores use it to detect a lost update across processes.
    version: int = 0

    def live_account_attributes(self) -> dict[str, AttrValue]:
        """Account-level attribute values without tombstones."""
        return {k: e.value for k, e in self.account_attributes.items() if not e.deleted}

    def device_identities(self) -> dict[str, set[str]]:
        """Every device identity of every workspace, by type."""
        found: dict[str, set[str]] = {}
        for workspace in self.workspaces.values():
            for device in workspace.devices.values():
                for id_type, value in device.identities.items():
                    found.setdefault(id_type, set()).add(value)
        return found

    def identity_count(self) -> int:
        return len(self.user_identities) + sum(len(v) for v in self.device_identities().values())
