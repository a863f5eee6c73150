"""What the single writer applies, and what it answers: batches, identity calls, merges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kindred.domain.apply import ApplyContext
from kindred.domain.changes import Change, Note
from kindred.domain.observation import Observation
from kindred.domain.tenancy import InputDef
from kindred.identity.resolve import IdentityDecision
from kindred.ports import LogEntry

__all__ = [
    "Accepted",
    "IdentityCall",
    "MergeCall",
    "Outcome",
    "Refused",
    "WriterItem",
    "apply_context",
    "log_entry",
]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A batch that passed the edge: authenticated, decoded, normalized."""

    input: InputDef
    observation: Observation
    body: bytes
    client_ip: str | None = None
    historical: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """A batch refused at the edge (400) or quarantined (web, 202), kept with its reason."""

    input_name: str
    received_ms: int
    kind: str  # "rejected" | "quarantined"
    reason: str
    body: bytes


@dataclass(frozen=True, slots=True)
class IdentityCall:
    """An IDSync call that may change profiles (IDS-1). `observation` carries the
    request's identities (canonical types, no events); modify names its profile in
    `target_mpid` and its changes as (canonical type, old value, new value)."""

    kind: Literal["identify", "search", "login", "logout", "modify"]
    input: InputDef
    observation: Observation
    # The request's own spelling of each identity type, canonical type -> request key.
    spellings: dict[str, str] = field(default_factory=dict)
    previous_mpid: int | None = None
    target_mpid: int | None = None
    changes: tuple[tuple[str, str | None, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class MergeCall:
    """alias: fold `source` into `destination`, moving its events of [start_ms, end_ms];
    unmerge: undo ledger entry `merge_id`."""

    kind: Literal["alias", "unmerge"]
    scope: str
    received_ms: int
    source: int | None = None
    destination: int | None = None
    start_ms: int = 0
    end_ms: int = 0
    merge_id: int | None = None
    rule: str = "alias"
    # The account's guardrail (Guardrails.max_profiles_merged).
    max_merged: int = 20


WriterItem = Accepted | Refused | IdentityCall | MergeCall


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    mpid: int | None = None
    notes: tuple[Note, ...] = ()
    changes: tuple[Change, ...] = field(default=())
    # What an identity or merge call answers (see services.identity, services.merges).
    detail: object = None


def log_entry(item: Accepted, status: str, mpid: int | None, reason: str | None) -> LogEntry:
    """The event log's entry of an accepted batch."""
    return LogEntry(
        input=item.input.name,
        workspace_id=item.input.workspace.workspace_id,
        received_ms=item.observation.received_ms,
        status=status,
        body=item.body,
        mpid=mpid,
        reason=reason,
        source_request_id=item.observation.source_request_id,
        client_ip=item.client_ip,
        historical=item.historical,
    )


def apply_context(item: Accepted, decision: IdentityDecision, mpid: int) -> ApplyContext:
    """Who writes the batch, into which profile slot, under which limits."""
    source = item.input
    workspace = source.workspace
    return ApplyContext(
        mpid=mpid,
        scope=workspace.identity_scope,
        workspace_id=workspace.workspace_id,
        source=source.name,
        priority=source.priority,
        may_set_consent=source.may_set_consent,
        guardrails=workspace.account.guardrails,
        immutable_type=workspace.account.identity.immutable,
        user_identities=decision.user_identities,
        device_identities=decision.device_identities,
    )
