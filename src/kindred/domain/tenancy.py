"""Tenants and inputs: org -> account -> workspace, inputs with source types and protection."""

from __future__ import annotations

import enum

import msgspec

from kindred.domain.expiry import TtlRules
from kindred.domain.identities import DEFAULT_BLOCKLIST, DEFAULT_PRIORITY

__all__ = [
    "AccountPolicy",
    "Guardrails",
    "IdentityPolicy",
    "InputDef",
    "Protection",
    "SourceType",
    "Tenancy",
    "WorkspaceDef",
    "priority_of",
]


class SourceType(enum.StrEnum):
    """What kind of source wrote a value; fixes its rank on the priority ladder (PRF-4)."""

    CALCULATED = "calculated"
    ACCOUNT = "account"
    CUSTOM_FEED = "custom_feed"
    WEB = "web"
    IOS = "ios"
    ANDROID = "android"
    SERVER = "server"
    CSV_IMPORT = "csv_import"
    WAREHOUSE_SYNC = "warehouse_sync"
    PARTNER_FEED = "partner_feed"


PLATFORM_SOURCES: frozenset[SourceType] = frozenset(
    {SourceType.WEB, SourceType.IOS, SourceType.ANDROID, SourceType.SERVER}
)
CLIENT_SOURCES: frozenset[SourceType] = frozenset(
    {SourceType.WEB, SourceType.IOS, SourceType.ANDROID}
)

_PRIORITY: dict[SourceType, int] = {
    SourceType.CALCULATED: 60,
    SourceType.ACCOUNT: 50,
    SourceType.CUSTOM_FEED: 40,
    SourceType.WEB: 30,
    SourceType.IOS: 30,
    SourceType.ANDROID: 30,
    SourceType.SERVER: 30,
    SourceType.CSV_IMPORT: 20,
    SourceType.WAREHOUSE_SYNC: 20,
    SourceType.PARTNER_FEED: 10,
}


def priority_of(source: SourceType) -> int:
    """Rank on the ladder: calculated > account > custom feed > SDK > CSV/warehouse > partner."""
    return _PRIORITY[source]


class Protection(enum.StrEnum):
    """Input protection (PRF-5); platform inputs are always create & update."""

    CREATE_UPDATE = "create_update"
    UPDATE_ONLY = "update_only"
    READ_ONLY = "read_only"


class Guardrails(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Caps on profile data (PRF-6, IDS-4); over-limit data is refused with a reason."""

    max_attributes_per_profile: int = 1000
    max_attribute_key_length: int = 256
    max_attribute_value_length: int = 4096
    max_list_length: int = 1000
    max_list_entry_length: int = 512
    max_identities_per_profile: int = 50
    max_devices_per_workspace: int = 50
    # Profiles one profile may absorb through merges (aliases, logins), itself not counted.
    max_profiles_merged: int = 20


class IdentityPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How an account resolves identities (IDS-3, IDS-4)."""

    strategy: str = "default"
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    unique: frozenset[str] = frozenset({"customer_id"})
    login: frozenset[str] = frozenset({"customer_id"})
    immutable: str | None = "customer_id"
    blocklist: frozenset[str] = DEFAULT_BLOCKLIST
    merge_anonymous_on_login: bool = True
    # An identity value shared by this many profiles links no more (per type; absent = no cap).
    max_profiles_per_identity: dict[str, int] = msgspec.field(
        default_factory=lambda: {"device_application_stamp": 20}
    )

    def rank(self, identity_type: str) -> int:
        """Position in the priority order; unlisted types come after every listed one."""
        try:
            return self.priority.index(identity_type)
        except ValueError:
            return len(self.priority)


class AccountPolicy(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    identity_scope: str = "account"
    identity: IdentityPolicy = msgspec.field(default_factory=IdentityPolicy)
    guardrails: Guardrails = msgspec.field(default_factory=Guardrails)
    retention_days: int = 730
    profile_lifetime_days: int = 90
    lifetime_profiles: bool = False


class WorkspaceDef(msgspec.Struct, frozen=True, kw_only=True):
    workspace_id: int
    name: str
    account: AccountPolicy

    @property
    def identity_scope(self) -> str:
        """The key of the MPID space: the account's, or this workspace's own."""
        if self.account.identity_scope == "workspace":
            return f"w{self.workspace_id}"
        return f"a{self.account.account_id}"


class InputDef(msgspec.Struct, frozen=True, kw_only=True):
    """An input: where batches come from and with what authority."""

    name: str
    workspace: WorkspaceDef
    source_type: SourceType
    api_key: str
    api_secret: str | None
    protection: Protection = Protection.CREATE_UPDATE
    rate_limit_per_s: float = 270.0
    rate_limit_burst: int = 540
    # Its batches' user attributes are the account's, at the account rank (PRF-4).
    account_attributes: bool = False

    @property
    def priority(self) -> int:
        """The rank its user attributes are written at."""
        if self.account_attributes:
            return priority_of(SourceType.ACCOUNT)
        return priority_of(self.source_type)

    @property
    def is_client(self) -> bool:
        """Client SDK inputs take the user's IP from the request, not from the batch."""
        return self.source_type in CLIENT_SOURCES

    @property
    def may_set_consent(self) -> bool:
        return self.source_type is not SourceType.PARTNER_FEED


class Tenancy(msgspec.Struct, frozen=True, kw_only=True):
    """Every workspace and input of one deployment, indexed for the hot path."""

    org_id: int
    workspaces: dict[int, WorkspaceDef]
    inputs_by_key: dict[str, InputDef]
    inputs_by_name: dict[str, InputDef]
    # Per-attribute expiry (RET-4): the TTL rules of each workspace that has any.
    attribute_ttls: dict[int, TtlRules] = msgspec.field(default_factory=dict)

    def input_for_key(self, api_key: str) -> InputDef | None:
        return self.inputs_by_key.get(api_key)

    def input_named(self, name: str) -> InputDef | None:
        return self.inputs_by_name.get(name)

    def accounts_by_scope(self) -> dict[str, AccountPolicy]:
        """Each identity scope (MPID space) with the account that owns it."""
        return {w.identity_scope: w.account for w in self.workspaces.values()}
