"""What the single writer runs: commands, each with its own typed result.

Every change to profiles goes through the group-commit writer as a command: an accepted
batch, a refused one, an IDSync call, a modify, an alias, an un-merge. A command of type
`Command[R]` answers an `R`, or raises a refusal — a `KindredError` naming what is wrong
(`InvalidBatch`, `NotFound`), which the edges answer as 4xx. `CommandRunner` looks each
command's handler up in one table by the command's type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from kindred.domain.apply import ApplyContext
from kindred.domain.changes import Change, Note
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import Observation
from kindred.domain.stamps import event_stamps
from kindred.domain.tenancy import InputDef
from kindred.identity.resolve import IdentityDecision
from kindred.ports import BatchStatus, LogEntry, UnitOfWork

__all__ = [
    "Accepted",
    "AliasCall",
    "AliasOutcome",
    "BatchOutcome",
    "Command",
    "Handler",
    "IdentityAnswer",
    "IdentityCall",
    "IdentityOutcome",
    "ModifyCall",
    "ModifyOutcome",
    "Prefetch",
    "Refused",
    "UnmergeCall",
    "UnmergeOutcome",
    "apply_context",
    "log_entry",
]

R_co = TypeVar("R_co", covariant=True)
C_contra = TypeVar("C_contra", contravariant=True)
Out = TypeVar("Out")


class Command(Generic[R_co]):
    """A write the group writer runs; `R_co` is what it answers."""

    __slots__ = ()


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of a batch: its status (`BatchStatus`, or the refusal kind), the
    profile it was applied to, what was noted and changed."""

    status: str
    mpid: int | None = None
    notes: tuple[Note, ...] = ()
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class IdentityAnswer:
    mpid: int
    matched: dict[str, str]  # request key (its own spelling) -> value
    is_logged_in: bool


@dataclass(frozen=True, slots=True)
class IdentityOutcome:
    answer: IdentityAnswer
    notes: tuple[Note, ...] = ()
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class ModifyOutcome:
    mpid: int
    # Identity types taken from other profiles: (canonical type, MPID it moved to).
    moved: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class AliasOutcome:
    survivor: int
    moved: int  # event-log entries moved to the survivor


@dataclass(frozen=True, slots=True)
class UnmergeOutcome:
    survivor: int
    reapplied: int  # batches applied again since the merge


# --- commands --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted(Command[BatchOutcome]):
    """A batch that passed the edge: authenticated, decoded, normalized."""

    input: InputDef
    observation: Observation
    body: bytes
    client_ip: str | None = None
    historical: bool = False


@dataclass(frozen=True, slots=True)
class Refused(Command[BatchOutcome]):
    """A batch refused at the edge (400) or quarantined (web, 202), kept with its reason."""

    input_name: str
    received_ms: int
    kind: str  # "rejected" | "quarantined"
    reason: str
    body: bytes


@dataclass(frozen=True, slots=True)
class IdentityCall(Command[IdentityOutcome]):
    """An IDSync identify, search, login or logout that may change profiles (IDS-1).
    `observation` carries the request's identities (canonical types, no events)."""

    kind: Literal["identify", "search", "login", "logout"]
    input: InputDef
    observation: Observation
    # The request's own spelling of each identity type, canonical type -> request key.
    spellings: dict[str, str] = field(default_factory=dict)
    previous_mpid: int | None = None


@dataclass(frozen=True, slots=True)
class ModifyCall(Command[ModifyOutcome]):
    """An IDSync modify of profile `target_mpid`: each change is (canonical type, old
    value, new value)."""

    input: InputDef
    target_mpid: int
    changes: tuple[tuple[str, str | None, str | None], ...]
    received_ms: int


@dataclass(frozen=True, slots=True)
class AliasCall(Command[AliasOutcome]):
    """Fold profile `source` into `destination`, moving its events of [start_ms, end_ms]."""

    scope: str
    received_ms: int
    source: int
    destination: int
    start_ms: int
    end_ms: int
    # The account's guardrail (Guardrails.max_profiles_merged).
    max_merged: int
    rule: str = "alias"


@dataclass(frozen=True, slots=True)
class UnmergeCall(Command[UnmergeOutcome]):
    """Undo merge ledger entry `merge_id`."""

    scope: str
    received_ms: int
    merge_id: int


# --- handlers --------------------------------------------------------------------------


@dataclass
class Prefetch:
    """What a group will ask the store about, gathered from its commands so that a store
    that pays per round trip reads it in bulk (UnitOfWork.prefetch)."""

    identities: list[tuple[str, IdentityKey]] = field(default_factory=list)
    mpids: list[int] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)


class Handler(Protocol[C_contra, Out]):
    """Runs one type of command inside the group's unit of work."""

    # Errors that refuse this command alone (its sender is told); anything else fails the
    # group, which is then run command by command.
    refusals: tuple[type[Exception], ...]

    def announce(self, command: C_contra, prefetch: Prefetch) -> None:
        """Add what the command will read to the group's prefetch."""
        ...

    def run(self, uow: UnitOfWork, command: C_contra) -> Out:
        """Apply the command; raises one of `refusals` before writing anything."""
        ...

    def failed(self, command: C_contra, error: Exception) -> Out | None:
        """What the command answers when it failed even alone (None: the error is its
        answer); called outside any transaction."""
        ...

    def committed(self, command: C_contra, result: Out) -> None:
        """After the group committed: count it."""
        ...


class HandlerBase(Generic[C_contra, Out]):
    """Defaults for a handler: nothing to prefetch, no refusals, nothing to count."""

    refusals: tuple[type[Exception], ...] = ()

    def announce(self, command: C_contra, prefetch: Prefetch) -> None:
        """Nothing to read ahead."""

    def failed(self, command: C_contra, error: Exception) -> Out | None:
        """The error is the command's answer."""

    def committed(self, command: C_contra, result: Out) -> None:
        """Nothing to count."""


HandlerTable = dict[type[Any], Handler[Any, Any]]


def log_entry(item: Accepted, status: str, mpid: int | None, reason: str | None) -> LogEntry:
    """The event log's entry of an accepted batch (an applied one with its events' stamps)."""
    applied = status == BatchStatus.APPLIED
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
        event_stamps=(
            event_stamps(item.observation.events, item.observation.received_ms) if applied else None
        ),
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
        account_attributes=source.account_attributes,
        user_identities=decision.user_identities,
        device_identities=decision.device_identities,
    )
