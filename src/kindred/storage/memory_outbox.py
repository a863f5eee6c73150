"""The reference delivery store (outbox, dead letters, connection states, definitions) of
the memory store: the semantics the SQL stores match."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import msgspec

from kindred.ports import ConnectionState, DeadLetter, Delivery, SyncState

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
        self._syncs: dict[str, SyncState] = {}

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
            self._bury(self._take(connection, ids), error, now_ms)

    def _bury(self, deliveries: Sequence[Delivery], error: str, now_ms: int) -> None:
        state = self._deliveries
        for delivery in deliveries:
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

    def erasure_message_states(self, sources: Sequence[str]) -> dict[str, str]:
        wanted = set(sources)
        with self._lock:
            found = {
                d.delivery.source: "failed"
                for d in self._deliveries.dead
                if d.delivery.kind == "erasure" and d.delivery.source in wanted
            }
            found.update(
                (d.source, "pending")
                for d in self._deliveries.outbox
                if d.kind == "erasure" and d.source in wanted
            )
        return {source: state for source, state in found.items() if source is not None}

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

    def sync_state(self, connection: str) -> SyncState | None:
        with self._lock:
            return self._syncs.get(connection)

    def sync_states(self) -> list[SyncState]:
        with self._lock:
            return [self._syncs[name] for name in sorted(self._syncs)]

    def set_sync(self, connection: str, status: str) -> None:
        with self._lock:
            self._drop_pending(connection)
            before = self._syncs.get(connection)
            generation = before.generation if before else 0
            self._syncs[connection] = SyncState(
                connection=connection, status=status, generation=generation
            )

    def begin_sync(
        self, connection: str, audience_id: int, generation: int, now_ms: int, *, discard: bool
    ) -> SyncState | None:
        with self._lock:
            before = self._syncs.get(connection)
            if (before.generation if before else 0) != generation or (
                before is not None and before.status == "off"
            ):
                return None
            if discard:
                self._drop_pending(connection)
            begun = SyncState(
                connection=connection,
                status="running",
                audience_id=audience_id,
                generation=generation + 1,
                members_total=len(self._member_mpids(audience_id)),
                started_ms=now_ms,
            )
            self._syncs[connection] = begun
            return begun

    def advance_sync(
        self, connection: str, generation: int, members_done: int, cursor_mpid: int, count: int
    ) -> bool:
        with self._lock:
            sync = self._syncs.get(connection)
            if not _running(sync, generation) or sync.members_done != members_done:
                return False
            self._syncs[connection] = msgspec.structs.replace(
                sync, cursor_mpid=cursor_mpid, members_done=members_done + count
            )
            return True

    def finish_sync(self, connection: str, generation: int, now_ms: int) -> bool:
        with self._lock:
            sync = self._syncs.get(connection)
            if not _running(sync, generation):
                return False
            self._syncs[connection] = msgspec.structs.replace(
                sync, status="done", finished_ms=now_ms
            )
            return True

    def audience_members(self, audience_id: int, after_mpid: int | None, limit: int) -> list[int]:
        with self._lock:
            members = self._member_mpids(audience_id)
            return [m for m in members if after_mpid is None or m > after_mpid][:limit]

    def pending_mpids(self, connection: str, mpids: Sequence[int]) -> set[int]:
        with self._lock:
            wanted = set(mpids)
            return {
                d.mpid
                for d in self._deliveries.outbox
                if d.connection == connection and d.mpid in wanted
            }

    def add_dead_letters(self, deliveries: Sequence[Delivery], error: str, now_ms: int) -> None:
        with self._lock:
            self._bury(deliveries, error, now_ms)

    def _member_mpids(self, audience_id: int) -> list[int]:
        """The audience's members as stored, by MPID ascending (the store's own)."""
        raise NotImplementedError

    def _drop_pending(self, connection: str) -> None:
        outbox = self._deliveries.outbox
        self._deliveries.outbox = [d for d in outbox if d.connection != connection]

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


def _running(sync: SyncState | None, generation: int) -> TypeGuard[SyncState]:
    return sync is not None and sync.status == "running" and sync.generation == generation
