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


class DeliveryStore(OutputDefinitions, Protocol):
    """The outbox, dead letters, per-connection delivery state (and the outputs and
    connections defined at run time). Each call is its own transaction."""

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

    def replay_dead_letters(self, connection: str | None, ids: Sequence[int] | None) -> int:
        """Put dead letters back at the end of the outbox (all of the connection, or those
        named); returns how many."""
        ...


class Sink(Protocol):
    """An output's transport: takes messages or raises DeliveryFailed
    (kindred.domain.errors)."""

    def send(self, messages: Sequence[Message]) -> None: ...

    def close(self) -> None: ...
