"""The memory store's state: every table as a Python container (a unit of work works on a
copy and puts it in place at commit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kindred.attributes.definition import CalculatedDef
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.audiences.versions import AudienceVersion
from kindred.domain.credentials import ApiCredential
from kindred.domain.dsr import DsrRequest
from kindred.domain.identities import IdentityKey
from kindred.domain.profile import Profile
from kindred.domain.receipts import ReceiptRecord
from kindred.domain.sessions import UiSession
from kindred.domain.users import UserKeyRecord, UserRecord
from kindred.ports import (
    Delivery,
    LogEntry,
    MergeEntry,
    RejectEntry,
)
from kindred.storage.memory_outbox import DeliveryState

__all__ = ["MemoryState", "holds", "replace_dsr"]


@dataclass
class MemoryState:
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


def holds(body: bytes, needles: Sequence[bytes]) -> bool:
    return any(needle in body for needle in needles)


def replace_dsr(state: MemoryState, request: DsrRequest, callbacks: Sequence[Delivery]) -> bool:
    """`DsrStore.update_dsr` on the state: the request replaced, with its callbacks queued,
    only if the stored one is still at `request.version - 1`."""
    key = (request.workspace_id, request.request_id)
    stored = state.dsr.get(key)
    if stored is None or stored.version != request.version - 1:
        return False
    state.dsr[key] = request
    state.deliveries.add(callbacks)
    return True
