"""The reference delivery store (outbox, dead letters, connection states, definitions) of
the memory store: the semantics the SQL stores match."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from kindred.ports import ConnectionState, DeadLetter, Delivery

__all__ = ["DeliveryState", "MemoryDeliveries"]


@dataclass
class DeliveryState:
    """The outbox part of the memory store's state (copied by its units of work)."""

    outbox: list[Delivery] = field(default_factory=list)
    next_id: int = 1
    dead: list[DeadLetter] = field(default_factory=list)
    next_dead_id: int = 1

    def add(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self.outbox.append(msgspec.structs.replace(delivery, id=self.next_id))
            self.next_id += 1


class MemoryDeliveries:
    _lock: threading.RLock
    _deliveries: DeliveryState

    def __init__(self) -> None:
        self._states: dict[str, ConnectionState] = {}
        self._leases: dict[str, tuple[str, int]] = {}
        self._definitions: dict[tuple[str, str], bytes] = {}

    def claim_lane(self, connection: str, owner: str, now_ms: int, lease_ms: int) -> bool:
        with self._lock:
            holder = self._leases.get(connection)
            if holder is not None and holder[0] != owner and holder[1] >= now_ms:
                return False
            self._leases[connection] = (owner, now_ms + lease_ms)
            return True

    def release_lane(self, connection: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(connection, ("",))[0] == owner:
                del self._leases[connection]

    def pending_deliveries(self, connection: str, limit: int) -> list[Delivery]:
        with self._lock:
            return [d for d in self._deliveries.outbox if d.connection == connection][:limit]

    def complete_deliveries(
        self, connection: str, ids: Sequence[int], state: ConnectionState
    ) -> None:
        with self._lock:
            self._take(connection, ids)
            self._states[connection] = state

    def bury_deliveries(self, connection: str, ids: Sequence[int], error: str, now_ms: int) -> None:
        with self._lock:
            state = self._deliveries
            for delivery in self._take(connection, ids):
                entry = DeadLetter(
                    id=state.next_dead_id, delivery=delivery, failed_ms=now_ms, error=error
                )
                state.next_dead_id += 1
                state.dead.append(entry)

    def count_pending(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for d in self._deliveries.outbox:
                counts[d.connection] = counts.get(d.connection, 0) + 1
            return counts

    def connection_states(self) -> list[ConnectionState]:
        with self._lock:
            return [self._states[name] for name in sorted(self._states)]

    def save_connection_state(self, state: ConnectionState) -> None:
        with self._lock:
            self._states[state.connection] = state

    def dead_letters(self, connection: str | None, limit: int) -> list[DeadLetter]:
        with self._lock:
            found = [
                d
                for d in self._deliveries.dead
                if connection is None or d.delivery.connection == connection
            ]
            return found[:limit]

    def replay_dead_letters(self, connection: str | None, ids: Sequence[int] | None) -> int:
        with self._lock:
            chosen = [
                d
                for d in self.dead_letters(connection, len(self._deliveries.dead))
                if ids is None or d.id in ids
            ]
            state = self._deliveries
            state.dead = [d for d in state.dead if d not in chosen]
            self._deliveries.add([msgspec.structs.replace(d.delivery, id=None) for d in chosen])
            return len(chosen)

    def save_definition(self, kind: str, name: str, doc: bytes) -> None:
        with self._lock:
            self._definitions[(kind, name)] = doc
            self._definitions_changed()

    def delete_definition(self, kind: str, name: str) -> bool:
        with self._lock:
            self._definitions_changed()
            return self._definitions.pop((kind, name), None) is not None

    def _definitions_changed(self) -> None:
        """Raise the definitions' version (the store's own)."""
        raise NotImplementedError

    def list_definitions(self, kind: str) -> list[bytes]:
        with self._lock:
            return [doc for (k, _), doc in sorted(self._definitions.items()) if k == kind]

    def _take(self, connection: str, ids: Sequence[int]) -> list[Delivery]:
        wanted = set(ids)
        outbox = self._deliveries.outbox
        taken = [d for d in outbox if d.id in wanted and d.connection == connection]
        self._deliveries.outbox = [d for d in outbox if d not in taken]
        return taken
