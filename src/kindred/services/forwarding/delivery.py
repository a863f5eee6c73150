"""Forwarding, the send side (ENR-1..4, AUD-11): each connection drains its outbox rows in
the order they were written, enriched from the stored profile at the moment of sending.

One `Lane` per connection, each on its own thread in the runner: a slow or failing output
holds up only its own connections. A lane sends the oldest rows first and does not pass a
failing row, so per-user order holds; a lease in the store gives one process at a time the
right to send over a connection. A failure is retried with exponential backoff and jitter
(never sooner than the receiver's Retry-After); after the policy's attempts or time the
connection is faulted and stops until resumed. A receiver that refuses a message for good
(4xx other than 408 and 429) sends it to the dead letters, from where it can be replayed.
Delivery is at least once: every message carries an idempotency key that stays the same
when it is sent again.

An audience connection begins with its initial sync (ENR-4): before any of its outbox rows,
its lane sends the audience's current members as adds, a page at a time in MPID order, and
keeps a cursor in the store (`SyncStore`) after each page, so that a sync interrupted goes
on from its last page, once across processes (under the lane's lease; each store write
conditional on the state read). Why each user's messages still end in the right state, in
order: see `Lane._sync_step`. A variation connection (AUD-8) syncs only its variation's
members; when its test is deleted its sync starts over as a farewell, sending each of them a
removal, and the connection is then deleted (`Renderer.retire`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from kindred.audiences.abtest import sends_member, variant_audience_name
from kindred.audiences.definition import AudienceDef
from kindred.domain.errors import DeliveryFailed
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef
from kindred.domain.retry import RetryPolicy
from kindred.ports import (
    Clock,
    ConnectionState,
    Delivery,
    DeliveryStore,
    Sink,
    SyncState,
)
from kindred.services.forwarding.rendering import Renderer
from kindred.services.forwarding.router import MembershipNote

__all__ = ["Lane", "state_of"]

log = logging.getLogger("kindred.delivery")

_NOTE_BODY = msgspec.json.Encoder()


class Lane:
    """Delivery over one connection. `step` sends at most one group of rows."""

    def __init__(
        self,
        store: DeliveryStore,
        renderer: Renderer,
        connection: EventConnection | AudienceConnection,
        output: OutputDef,
        sink: Sink,
        *,
        policy: RetryPolicy,
        clock: Clock,
        jitter: Callable[[], float],
        owner: str,
        lease_ms: int = 30_000,
        on_outcome: Callable[[str, str, int], None] | None = None,
        bury_on_give_up: bool = False,
    ) -> None:
        """`on_outcome(connection, outcome, rows)`: told of every group sent (`sent`),
        failed (`retry`, `faulted`) or refused (`dead_letter`). `bury_on_give_up`: rows
        the retry policy gives up on go to the dead letters and the lane goes on (status
        callbacks: one receiver down must not stop the others'), instead of faulting."""
        self.connection = connection
        self._bury_on_give_up = bury_on_give_up
        self._on_outcome = on_outcome or (lambda _c, _o, _n: None)
        self.output = output
        self._store = store
        self._renderer = renderer
        self._sink = sink
        self._policy = policy
        self._clock = clock
        self._jitter = jitter
        self._owner = owner
        self._lease_ms = lease_ms

    @property
    def name(self) -> str:
        return self.connection.name

    def step(self) -> int:
        """Send the oldest pending rows (an audience connection's initial sync first); the
        number of rows (or members) finished (sent, filtered out or dead-lettered). 0:
        nothing to do now (idle, waiting to retry, faulted, or another process holds the
        connection)."""
        now = self._clock.now_ms()
        state = self.state()
        if state.faulted_ms is not None or state.retry_at_ms > now:
            return 0
        if isinstance(self.connection, AudienceConnection):
            syncing = self._sync_due(self.connection, state, now)
            if syncing is not None:
                return syncing
        rows = self._claim(now)
        if not rows:
            return 0
        try:
            return self._deliver(state, rows)
        except DeliveryFailed as failure:
            if failure.permanent and len(rows) > 1:
                return self._one_by_one(rows, now)
            return self._failed(state, _ids(rows), failure, now)

    def _sync_due(
        self, connection: AudienceConnection, state: ConnectionState, now: int
    ) -> int | None:
        """None when the initial sync is done (the rows are next); else what a step of it
        finished (0 as well while stopped or another process holds the connection)."""
        sync = self._store.sync_state(self.name)
        if sync is not None and sync.status == "off":
            return 0  # disabled or deleted since this lane began
        farewell_after = self._farewell_after(connection)
        if farewell_after is not None:
            if sync is None or sync.generation <= farewell_after:
                if sync is None or sync.status != "waiting":
                    # Its test ended before the farewell was asked for here: ask for it.
                    self._store.set_sync(self.name, "waiting")
                    return 1
            elif sync.status == "done":
                self._renderer.retire(self.name)  # its farewell is done
                return 0
        elif _synced(sync, connection.audience_id):
            return None
        if not self._store.claim_lane(self.name, self._owner, now, self._lease_ms):
            return 0
        return self._sync_step(connection, state, sync, now)

    def _sync_step(
        self,
        connection: AudienceConnection,
        state: ConnectionState,
        sync: SyncState | None,
        now: int,
    ) -> int:
        """Begin the initial sync, send its next page of members as adds, or finish it; the
        members finished (1 for a begin or a finish, so that the caller steps again).

        Why each user ends in the right state, in order (ENR-4). The outbox holds a row for
        every change of the audience committed while the connection exists (the router
        writes it in the change's transaction), and the lane sends none of them until the
        sync is done; the sync begins after the connection exists, so every page it reads
        shows every change committed before it. A page of members is read, then which of
        them have rows waiting; those are skipped, the others sent as adds. So for a user U:
        - U has rows waiting when its page is checked: no add from the sync; U's rows are
          sent after the sync, in the order committed, and the last of them is U's latest
          change: the output ends with U's current state.
        - U has none: U has not changed since the sync began (none of its rows was sent
          yet; rows dropped when it began are older changes the page shows), so U is a
          member as the page read, and any later change of U commits a row after the
          check, sent after the add: the add never arrives after a later remove.
        - U is not in the page: it is not a member as read, and a later enter has a row.
        A sync that starts over (the connection made again, enabled again, given another
        audience) first drops the connection's waiting rows (`SyncStore.set_sync`, or
        `begin_sync` with `discard`): they are older changes its pages read anyway, and a
        stale remove must not follow the new add. Two processes: one holds the lease; each
        write is conditional on the sync state read (generation, members done), so a
        process whose lease ran out mid-page sends that page again with the same keys
        (`CONNECTION:syncG:MPID/N`) and moves nothing."""
        audience_id = connection.audience_id
        if sync is None or sync.status == "waiting" or sync.audience_id != audience_id:
            begun = self._store.begin_sync(
                self.name,
                audience_id,
                sync.generation if sync is not None else 0,
                now,
                discard=sync is not None and sync.status != "waiting",
            )
            if begun is not None:
                log.info(
                    "%s: initial sync %d of audience %d begins with %d members",
                    self.name,
                    begun.generation,
                    audience_id,
                    begun.members_total,
                )
            return 0 if begun is None else 1
        mpids = self._store.audience_members(audience_id, sync.cursor_mpid, self.output.batch_size)
        if not mpids:
            if self._store.finish_sync(self.name, sync.generation, now):
                log.info("%s: initial sync done: %d members", self.name, sync.members_done)
            return 1
        audience = self._renderer.audience(audience_id)
        variation = connection.variation
        test = None if variation is None else self._renderer.test(audience_id)
        # A variation connection's farewell (its test deleted) sends every member of its
        # variation a removal: no row of theirs is sent after it.
        farewell = test is not None and test.ended_ms is not None
        carried = set() if farewell else self._store.pending_mpids(self.name, mpids)
        rows = {
            mpid: _sync_row(self.name, audience, mpid, now, variation, entered=not farewell)
            for mpid in mpids
            if mpid not in carried and audience is not None and sends_member(test, variation, mpid)
        }
        return self._sync_page(state, sync, mpids, rows, now)

    def _farewell_after(self, connection: AudienceConnection) -> int | None:
        """A variation connection whose test was deleted: the sync generation after which
        its sync is its farewell; None for any other connection."""
        if connection.variation is None:
            return None
        test = self._renderer.test(connection.audience_id)
        if test is None or test.ended_ms is None:
            return None
        return test.farewell_after.get(self.name, 0)

    def _sync_page(
        self,
        state: ConnectionState,
        sync: SyncState,
        mpids: list[int],
        rows: dict[int, Delivery],
        now: int,
    ) -> int:
        """Send a page's adds and move the cursor past it. A page refused for good: each
        member again on its own, those refused becoming dead letters; a failure worth
        retrying stops there (the cursor moved past the members done)."""
        failed: DeliveryFailed | None = None
        try:
            delivered = self._send_sync(list(rows.values()), sync.generation)
            done = len(mpids)
        except DeliveryFailed as failure:
            if not failure.permanent:
                return self._failed(state, [], failure, now)
            delivered = done = 0
            for mpid in mpids:
                row = rows.get(mpid)
                try:
                    delivered += self._send_sync([row] if row else [], sync.generation)
                except DeliveryFailed as one:
                    if not one.permanent:
                        failed = one
                        break
                    assert row is not None  # nothing sent, nothing refused
                    log.warning("%s: initial sync add refused for good: %s", self.name, one)
                    self._store.add_dead_letters([row], str(one), now)
                    self._on_outcome(self.name, "dead_letter", 1)
                done += 1
        if done:
            self._store.advance_sync(
                self.name, sync.generation, sync.members_done, mpids[done - 1], done
            )
        if failed is not None:
            self._failed(state, [], failed, now)
            return done
        self._store.save_connection_state(
            msgspec.structs.replace(
                state,
                failures=0,
                failing_since_ms=None,
                retry_at_ms=0,
                delivered=state.delivered + delivered,
            )
        )
        self._on_outcome(self.name, "synced", done)
        return done

    def _send_sync(self, rows: list[Delivery], generation: int) -> int:
        """Send an initial sync's adds, keyed by connection, sync and member; how many
        messages."""
        messages = [
            m
            for row in rows
            for m in self._renderer.render(
                self.connection, row, f"{self.name}:sync{generation}:{row.mpid}"
            )
        ]
        if messages:
            self._sink.send(messages)
        return len(messages)

    def _claim(self, now: int) -> list[Delivery]:
        """The rows to send now: none while idle or held by another process."""
        # Look before claiming: an idle poll is then a read, not a write transaction.
        if not self._store.pending_deliveries(self.name, 1):
            return []
        if not self._store.claim_lane(self.name, self._owner, now, self._lease_ms):
            return []
        return self._store.pending_deliveries(self.name, self.output.batch_size)

    def _deliver(self, state: ConnectionState, rows: list[Delivery]) -> int:
        """Send the rows' messages; remove the rows once the output took them."""
        messages = [m for row in rows for m in self._renderer.render(self.connection, row)]
        if messages:
            self._sink.send(messages)
        done = msgspec.structs.replace(
            state,
            failures=0,
            failing_since_ms=None,
            retry_at_ms=0,
            delivered=state.delivered + len(messages),
        )
        self._store.complete_deliveries(self.name, _ids(rows), done)
        self._on_outcome(self.name, "sent", len(rows))
        return len(rows)

    def _one_by_one(self, rows: list[Delivery], now: int) -> int:
        """A group refused for good: each row again on its own, so that only the rows the
        output refuses go to the dead letters. A failure worth retrying stops the round
        (nothing passes a row not yet through)."""
        finished = 0
        for row in rows:
            state = self.state()
            try:
                finished += self._deliver(state, [row])
            except DeliveryFailed as failure:
                finished += self._failed(state, _ids([row]), failure, now)
                if not failure.permanent:
                    break
        return finished

    def state(self) -> ConnectionState:
        return state_of(self._store, self.name)

    def release(self) -> None:
        self._store.release_lane(self.name, self._owner)
        self._sink.close()

    def _failed(
        self, state: ConnectionState, ids: list[int], failure: DeliveryFailed, now: int
    ) -> int:
        error = str(failure)
        if failure.permanent:
            log.warning("%s: %d rows refused for good: %s", self.name, len(ids), error)
            self._store.bury_deliveries(self.name, ids, error, now)
            self._on_outcome(self.name, "dead_letter", len(ids))
            return len(ids)
        failures = state.failures + 1
        since = state.failing_since_ms if state.failing_since_ms is not None else now
        if self._policy.gives_up(failures, since, now) and self._bury_on_give_up and ids:
            log.error("%s: gave up after %d attempts: %s", self.name, failures, error)
            self._store.bury_deliveries(self.name, ids, error, now)
            self._store.save_connection_state(
                msgspec.structs.replace(
                    state, failures=0, failing_since_ms=None, retry_at_ms=0, last_error=error
                )
            )
            self._on_outcome(self.name, "dead_letter", len(ids))
            return len(ids)
        if self._policy.gives_up(failures, since, now):
            log.error("%s: faulted after %d attempts: %s", self.name, failures, error)
            changed = msgspec.structs.replace(
                state, failures=failures, failing_since_ms=since, faulted_ms=now, last_error=error
            )
        else:
            wait = self._policy.delay_ms(failures, self._jitter(), failure.retry_after_s)
            changed = msgspec.structs.replace(
                state,
                failures=failures,
                failing_since_ms=since,
                retry_at_ms=now + wait,
                last_error=error,
            )
        self._store.save_connection_state(changed)
        self._on_outcome(self.name, "faulted" if changed.faulted_ms else "retry", len(ids))
        return 0


def _ids(rows: list[Delivery]) -> list[int]:
    return [row.id for row in rows if row.id is not None]


def _synced(sync: SyncState | None, audience_id: int) -> bool:
    """Whether the connection's initial sync is done for its audience (a sync done before
    initial syncs existed: for any)."""
    return (
        sync is not None
        and sync.status == "done"
        and (sync.audience_id is None or sync.audience_id == audience_id)
    )


def _sync_row(
    connection: str,
    audience: AudienceDef,
    mpid: int,
    now: int,
    variation: str | None = None,
    *,
    entered: bool = True,
) -> Delivery:
    """A member's add as an initial sync sends it, or its removal as a farewell does
    (never an outbox row; kept as a dead letter when refused for good); a variation's under
    the name `[External Name] - [Variation]`."""
    name = audience.external_name or audience.name
    note = MembershipNote(
        audience_id=audience.id,
        audience_name=name if variation is None else variant_audience_name(name, variation),
        entered=entered,
        at_ms=now,
    )
    return Delivery(
        connection=connection,
        kind="membership",
        workspace_id=audience.workspaces[0] if audience.workspaces else 0,
        created_ms=now,
        body=_NOTE_BODY.encode(note),
        mpid=mpid,
    )


def state_of(store: DeliveryStore, name: str) -> ConnectionState:
    found = [s for s in store.connection_states() if s.connection == name]
    return found[0] if found else ConnectionState(connection=name)
