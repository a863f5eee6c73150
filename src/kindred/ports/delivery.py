"""Ports of forwarding: the outbox, dead letters and per-connection delivery state
(ENR-3, AUD-11), as a store keeps them; and an output's transport (`Sink`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

__all__ = [
    "ConnectionState",
    "DeadLetter",
    "Delivery",
    "DeliveryStore",
    "Message",
    "OutputDefinitions",
    "Sink",
    "SyncState",
    "SyncStore",
]

# One message as an output receives it (a JSON object).
Message = dict[str, Any]


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox row: something to send over one connection (ENR-3). `kind` "batch": the
    accepted batch (`body`) from `source`, enriched when sent; "membership": a membership
    change (`body` is its JSON, with the audience's name at the time)."""

    connection: str
    kind: str
    workspace_id: int
    created_ms: int
    body: bytes
    mpid: int | None = None
    source: str | None = None
    client_ip: str | None = None
    historical: bool = False
    id: int | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery the receiver refused for good, kept for inspection and replay."""

    delivery: Delivery
    failed_ms: int
    error: str
    id: int | None = None


class ConnectionState(msgspec.Struct, frozen=True, kw_only=True):
    """How delivery over one connection is going (AUD-11): retries, fault, last error."""

    connection: str
    failures: int = 0
    failing_since_ms: int | None = None
    retry_at_ms: int = 0
    faulted_ms: int | None = None
    last_error: str | None = None
    delivered: int = 0


class SyncState(msgspec.Struct, frozen=True, kw_only=True):
    """An audience connection's initial sync (ENR-4): its current members sent as adds,
    page by page in MPID order, before any of its outbox rows.

    `status`: "waiting" (to begin), "running", "done", or "off" (the connection is
    disabled or deleted: nothing to do until it is enabled again). `audience_id`: the
    audience synced (None on a row "done" before initial syncs existed: synced, whatever the
    audience). `generation` counts the syncs begun (it names their messages' idempotency
    keys); `cursor_mpid` is the last member done (None: none yet); `members_total` the
    audience's size when the sync began (members may come and go meanwhile)."""

    connection: str
    status: str = "waiting"
    audience_id: int | None = None
    generation: int = 0
    cursor_mpid: int | None = None
    members_done: int = 0
    members_total: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None


class SyncStore(Protocol):
    """Initial syncs of audience connections (ENR-4); each call its own transaction. The
    writes that move a sync on are conditional on what the caller read (its generation, its
    members done), so that of two processes only one moves it."""

    def sync_state(self, connection: str) -> SyncState | None: ...

    def sync_states(self) -> list[SyncState]:
        """Every connection's, by name."""
        ...

    def set_sync(self, connection: str, status: str) -> None:
        """Start the connection's sync over ("waiting") or stop it ("off"), discarding its
        pending outbox rows: they are changes the next sync's members supersede."""
        ...

    def begin_sync(
        self, connection: str, audience_id: int, generation: int, now_ms: int, *, discard: bool
    ) -> SyncState | None:
        """Begin a sync (generation + 1, the audience's size counted) when the stored one is
        still at `generation` (none stored: 0) and not "off"; the sync begun, or None when
        another caller moved first. `discard`: also drop the connection's pending outbox
        rows (a sync that starts over after a change of audience)."""
        ...

    def advance_sync(
        self, connection: str, generation: int, members_done: int, cursor_mpid: int, count: int
    ) -> bool:
        """Mark `count` more members done, up to `cursor_mpid`, when the sync is still the
        running `generation` with `members_done` done (the caller's page is the next one)."""
        ...

    def finish_sync(self, connection: str, generation: int, now_ms: int) -> bool: ...

    def audience_members(self, audience_id: int, after_mpid: int | None, limit: int) -> list[int]:
        """The audience's members as stored now, by MPID ascending, after `after_mpid`
        (None: from the first)."""
        ...

    def pending_mpids(self, connection: str, mpids: Sequence[int]) -> set[int]:
        """Which of `mpids` have a row in the connection's outbox."""
        ...

    def add_dead_letters(self, deliveries: Sequence[Delivery], error: str, now_ms: int) -> None:
        """Keep deliveries that were never outbox rows (an initial sync's) as dead letters."""
        ...


class OutputDefinitions(Protocol):
    """The outputs and connections made at run time (each call its own transaction)."""

    def save_definition(self, kind: str, name: str, doc: bytes) -> None:
        """An output or connection made through the admin API (insert or replace),
        raising the definitions' version."""
        ...

    def delete_definition(self, kind: str, name: str) -> bool:
        """Whether there was one to delete; raises the definitions' version."""
        ...

    def list_definitions(self, kind: str) -> list[bytes]: ...


class DeliveryStore(OutputDefinitions, SyncStore, Protocol):
    """The outbox, dead letters, per-connection delivery state, initial syncs (and the
    outputs and connections defined at run time). Each call is its own transaction."""

    def claim_lane(self, connection: str, owner: str, now_ms: int, lease_ms: int) -> bool:
        """True when `owner` holds (or now takes) the right to send over the connection
        until now + lease: one sender per connection across processes keeps per-user order."""
        ...

    def release_lane(self, connection: str, owner: str) -> None: ...

    def pending_deliveries(self, connection: str, limit: int) -> list[Delivery]:
        """The oldest rows of the connection, in the order they were written."""
        ...

    def complete_deliveries(
        self, connection: str, ids: Sequence[int], state: ConnectionState
    ) -> None:
        """Remove sent rows and save the connection's state, in one transaction."""
        ...

    def bury_deliveries(self, connection: str, ids: Sequence[int], error: str, now_ms: int) -> None:
        """Move rows to the dead letters."""
        ...

    def count_pending(self) -> dict[str, int]:
        """Outbox rows by connection."""
        ...

    def connection_states(self) -> list[ConnectionState]: ...

    def save_connection_state(self, state: ConnectionState) -> None: ...

    def dead_letters(self, connection: str | None, limit: int) -> list[DeadLetter]: ...

    def erasure_message_states(self, sources: Sequence[str]) -> dict[str, str]:
        """For erasure messages (outbox rows of kind "erasure") by `source`: "pending"
        while a row is in the outbox, "failed" when only a dead letter is left; a source
        absent from the answer was delivered."""
        ...

    def replay_dead_letters(self, connection: str | None, ids: Sequence[int] | None) -> int:
        """Put dead letters back at the end of the outbox (all of the connection, or those
        named); returns how many."""
        ...


class Sink(Protocol):
    """An output's transport: takes messages or raises DeliveryFailed
    (kindred.domain.errors)."""

    def send(self, messages: Sequence[Message]) -> None: ...

    def close(self) -> None: ...
