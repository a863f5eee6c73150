"""What operators do with connections (AUD-11): look at their status (an audience
connection's initial sync too, ENR-4), resume faulted ones, inspect and replay dead letters."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from kindred.domain.errors import NotFound
from kindred.domain.forwarding import AudienceConnection, EventConnection
from kindred.ports import Clock, ConnectionState, DeadLetter, DeliveryStore, SyncState
from kindred.services.forwarding.catalog import OutputCatalog
from kindred.services.forwarding.delivery import state_of

__all__ = ["ConnectionView", "DeadLetterView", "DeliveryAdmin", "SyncView"]

log = logging.getLogger("kindred.delivery")


class SyncView(msgspec.Struct, frozen=True, kw_only=True):
    """An audience connection's initial sync as the admin API and CLI show it: `status`
    "waiting" (to begin when its lane runs), "running", "done" or "off" (disabled);
    `members_done` of about `members_total` (the audience's size when it began)."""

    status: str
    members_done: int
    members_total: int
    started_ms: int | None
    finished_ms: int | None


class ConnectionView(msgspec.Struct, frozen=True, kw_only=True):
    """A connection as the admin API and CLI show it."""

    name: str
    kind: str  # "events" | "audience"
    output: str
    status: str  # "sending" | "retrying" | "faulted" | "disabled"
    pending: int
    delivered: int
    failures: int
    last_error: str | None
    faulted_ms: int | None
    retry_at_ms: int
    # Audience connections: the initial sync (ENR-4); None for event connections.
    initial_sync: SyncView | None = None
    # An audience connection of one variation of its audience's A/B test (AUD-8).
    variation: str | None = None


def _sync_view(c: AudienceConnection, s: SyncState | None) -> SyncView:
    if s is None:
        return SyncView(
            status="waiting" if c.enabled else "off",
            members_done=0,
            members_total=0,
            started_ms=None,
            finished_ms=None,
        )
    return SyncView(
        status=s.status,
        members_done=s.members_done,
        members_total=s.members_total,
        started_ms=s.started_ms,
        finished_ms=s.finished_ms,
    )


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter as the admin API and CLI show it (MPIDs as strings)."""

    id: int | None
    connection: str
    kind: str
    mpid: str | None
    created_ms: int
    failed_ms: int
    error: str


def _dead_view(d: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        id=d.id,
        connection=d.delivery.connection,
        kind=d.delivery.kind,
        mpid=None if d.delivery.mpid is None else str(d.delivery.mpid),
        created_ms=d.delivery.created_ms,
        failed_ms=d.failed_ms,
        error=d.error,
    )


class DeliveryAdmin:
    """What operators do with connections: look, resume, inspect and replay dead letters."""

    def __init__(self, store: DeliveryStore, catalog: OutputCatalog, clock: Clock) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock

    def connections(self) -> list[ConnectionView]:
        pending = self._store.count_pending()
        states = {s.connection: s for s in self._store.connection_states()}
        syncs = {s.connection: s for s in self._store.sync_states()}
        return [
            self._view(c, states.get(c.name), pending.get(c.name, 0), syncs.get(c.name))
            for c in self._catalog.current().connections()
        ]

    def resume(self, name: str) -> ConnectionView:
        """Clear the fault and the backoff: everything pending is sent again (AUD-11)."""
        view = self._find(name)
        state = state_of(self._store, name)
        self._store.save_connection_state(
            msgspec.structs.replace(
                state, failures=0, failing_since_ms=None, retry_at_ms=0, faulted_ms=None
            )
        )
        log.info("%s resumed with %d pending", name, view.pending)
        return self._find(name)

    def dead_letters(self, connection: str | None, limit: int) -> list[DeadLetterView]:
        return [_dead_view(d) for d in self._store.dead_letters(connection, limit)]

    def replay(self, connection: str | None, ids: Sequence[int] | None) -> int:
        return self._store.replay_dead_letters(connection, ids)

    def _find(self, name: str) -> ConnectionView:
        for view in self.connections():
            if view.name == name:
                return view
        raise NotFound(f"no connection {name!r}")

    def _view(
        self,
        c: EventConnection | AudienceConnection,
        s: ConnectionState | None,
        pending: int,
        sync: SyncState | None,
    ) -> ConnectionView:
        s = s or ConnectionState(connection=c.name)
        if not c.enabled:
            status = "disabled"
        elif s.faulted_ms is not None:
            status = "faulted"
        elif s.failures:
            status = "retrying"
        else:
            status = "sending"
        return ConnectionView(
            name=c.name,
            kind="events" if isinstance(c, EventConnection) else "audience",
            output=c.output,
            status=status,
            pending=pending,
            delivered=s.delivered,
            failures=s.failures,
            last_error=s.last_error,
            faulted_ms=s.faulted_ms,
            retry_at_ms=s.retry_at_ms,
            initial_sync=_sync_view(c, sync) if isinstance(c, AudienceConnection) else None,
            variation=c.variation if isinstance(c, AudienceConnection) else None,
        )
