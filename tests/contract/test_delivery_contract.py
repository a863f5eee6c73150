"""The store contract for the outbox, dead letters, connection states, initial syncs and
run-time definitions (ENR-3, ENR-4, AUD-11), on every store."""

from __future__ import annotations

import msgspec
import pytest

from kindred.domain.profile import Profile
from kindred.ports import ConnectionState, Delivery, Store, SyncState
from tests.contract.samples import BIG_B, rich_profile, save

__all__: list[str] = []


def delivery(connection: str, n: int, mpid: int | None = 7) -> Delivery:
    return Delivery(
        connection=connection,
        kind="batch",
        workspace_id=1,
        created_ms=1000 + n,
        body=b'{"events":[%d]}' % n,
        mpid=mpid,
        source="web",
        client_ip="10.0.0.1",
        historical=n % 2 == 1,
    )


def enqueue(store: Store, rows: list[Delivery]) -> None:
    with store.unit_of_work() as uow:
        uow.outbox.enqueue(rows)


def test_rows_come_back_per_connection_in_the_order_written(store: Store) -> None:
    enqueue(store, [delivery("a", 1), delivery("b", 2), delivery("a", 3, None)])
    enqueue(store, [delivery("a", 4)])
    pending = store.pending_deliveries("a", 10)
    assert [d.body for d in pending] == [b'{"events":[1]}', b'{"events":[3]}', b'{"events":[4]}']
    assert [d.historical for d in pending] == [True, True, False]
    assert pending[1].mpid is None
    assert pending[0].client_ip == "10.0.0.1"
    ids = [d.id or 0 for d in pending]
    assert ids == sorted(ids)
    assert all(ids)
    assert store.pending_deliveries("a", 2) == pending[:2]
    assert store.count_pending() == {"a": 3, "b": 1}


def test_a_rolled_back_transaction_leaves_no_row(store: Store) -> None:
    def fail() -> None:
        with store.unit_of_work() as uow:
            uow.outbox.enqueue([delivery("a", 1)])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert store.pending_deliveries("a", 10) == []


def test_completing_removes_rows_and_saves_the_state(store: Store) -> None:
    enqueue(store, [delivery("a", n) for n in range(3)])
    first, second, third = store.pending_deliveries("a", 10)
    assert first.id is not None
    assert second.id is not None
    state = ConnectionState(connection="a", delivered=2)
    store.complete_deliveries("a", [first.id, second.id], state)
    assert store.pending_deliveries("a", 10) == [third]
    assert store.connection_states() == [state]


def test_buried_rows_can_be_listed_and_replayed_at_the_end(store: Store) -> None:
    enqueue(store, [delivery("a", n) for n in range(3)])
    first, second, third = store.pending_deliveries("a", 10)
    assert first.id is not None
    store.bury_deliveries("a", [first.id], "HTTP 400: no", 5000)
    dead = store.dead_letters("a", 10)
    assert [(d.delivery.body, d.error, d.failed_ms) for d in dead] == [
        (first.body, "HTTP 400: no", 5000)
    ]
    assert store.dead_letters("b", 10) == []
    assert store.dead_letters(None, 10) == dead
    assert store.replay_dead_letters("a", None) == 1
    assert store.dead_letters(None, 10) == []
    again = store.pending_deliveries("a", 10)
    assert [d.body for d in again] == [second.body, third.body, first.body]


def test_replay_can_name_dead_letters(store: Store) -> None:
    enqueue(store, [delivery("a", n) for n in range(2)])
    rows = store.pending_deliveries("a", 10)
    store.bury_deliveries("a", [r.id for r in rows if r.id is not None], "gone", 1)
    dead = store.dead_letters(None, 10)
    assert dead[0].id is not None
    assert store.replay_dead_letters(None, [dead[0].id]) == 1
    assert [d.id for d in store.dead_letters(None, 10)] == [dead[1].id]


def test_one_owner_at_a_time_holds_a_lane_until_its_lease_ends(store: Store) -> None:
    assert store.claim_lane("a", "p1", now_ms=1000, lease_ms=500)
    assert not store.claim_lane("a", "p2", now_ms=1200, lease_ms=500)
    assert store.claim_lane("a", "p1", now_ms=1400, lease_ms=500)  # renewed to 1900
    assert not store.claim_lane("a", "p2", now_ms=1800, lease_ms=500)
    assert store.claim_lane("a", "p2", now_ms=2000, lease_ms=500)
    assert store.claim_lane("b", "p1", now_ms=2000, lease_ms=500)
    store.release_lane("a", "p2")
    assert store.claim_lane("a", "p1", now_ms=2001, lease_ms=500)


def test_a_lease_keeps_the_saved_state(store: Store) -> None:
    state = ConnectionState(
        connection="a", failures=3, failing_since_ms=10, retry_at_ms=99, last_error="x"
    )
    store.save_connection_state(state)
    assert store.claim_lane("a", "p1", now_ms=1, lease_ms=5)
    assert store.connection_states() == [state]
    faulted = ConnectionState(connection="a", faulted_ms=7, last_error="y", delivered=4)
    store.save_connection_state(faulted)
    assert store.connection_states() == [faulted]


def test_definitions_are_kept_by_kind_and_name(store: Store) -> None:
    store.save_definition("output", "hook", b'{"a":1}')
    store.save_definition("output", "file", b'{"b":2}')
    store.save_definition("event_connection", "hook", b'{"c":3}')
    store.save_definition("output", "hook", b'{"a":9}')
    assert store.list_definitions("output") == [b'{"b":2}', b'{"a":9}']
    assert store.delete_definition("output", "file")
    assert not store.delete_definition("output", "file")
    assert store.list_definitions("output") == [b'{"a":9}']
    assert store.list_definitions("event_connection") == [b'{"c":3}']


def member(mpid: int, audience_id: int = 17802) -> Profile:
    """A profile in `audience_id` alone."""
    profile = rich_profile(mpid)
    kept = {
        audience_id: msgspec.structs.replace(profile.memberships[17802], audience_id=audience_id)
    }
    return msgspec.structs.replace(profile, memberships=kept)


def test_an_audiences_members_come_in_pages_by_mpid(store: Store) -> None:
    save(store, member(5), member(-9), member(BIG_B), member(3, audience_id=4), member(70))
    assert store.audience_members(17802, None, 2) == [BIG_B, -9]
    assert store.audience_members(17802, -9, 2) == [5, 70]
    assert store.audience_members(17802, 70, 2) == []
    assert store.audience_members(4, None, 10) == [3]
    assert store.audience_members(99, None, 10) == []


def test_a_sync_begins_once_moves_on_from_what_was_read_and_finishes(store: Store) -> None:
    save(store, member(1), member(2), member(3))
    assert store.sync_state("a") is None
    begun = store.begin_sync("a", 17802, 0, 1000, discard=False)
    assert begun == SyncState(
        connection="a",
        status="running",
        audience_id=17802,
        generation=1,
        members_total=3,
        started_ms=1000,
    )
    assert store.begin_sync("a", 17802, 0, 1001, discard=False) is None  # another moved first
    assert store.advance_sync("a", 1, 0, cursor_mpid=2, count=2)
    assert not store.advance_sync("a", 1, 0, cursor_mpid=2, count=2)  # that page is done
    assert not store.advance_sync("a", 2, 2, cursor_mpid=3, count=1)  # not that sync
    state = store.sync_state("a")
    assert state is not None
    assert (state.cursor_mpid, state.members_done) == (2, 2)
    assert not store.finish_sync("a", 0, 2000)
    assert store.finish_sync("a", 1, 2000)
    assert not store.finish_sync("a", 1, 2001)
    done = store.sync_state("a")
    assert done is not None
    assert (done.status, done.finished_ms, done.generation) == ("done", 2000, 1)
    assert store.sync_states() == [done]


def test_setting_a_sync_discards_the_pending_rows_and_keeps_the_generation(store: Store) -> None:
    enqueue(store, [delivery("a", 1), delivery("b", 2)])
    begun = store.begin_sync("a", 17802, 0, 1000, discard=False)
    assert begun is not None
    assert len(store.pending_deliveries("a", 10)) == 1  # a first sync keeps them
    store.set_sync("a", "off")
    assert store.pending_deliveries("a", 10) == []
    assert len(store.pending_deliveries("b", 10)) == 1
    off = store.sync_state("a")
    assert off == SyncState(connection="a", status="off", generation=1)
    assert store.begin_sync("a", 17802, 1, 1000, discard=False) is None  # never while off
    store.set_sync("a", "waiting")
    again = store.begin_sync("a", 17802, 1, 3000, discard=False)
    assert again is not None
    assert again.generation == 2
    store.set_sync("c", "waiting")
    assert store.sync_state("c") == SyncState(connection="c", status="waiting")


def test_a_sync_begun_again_may_discard_the_pending_rows(store: Store) -> None:
    enqueue(store, [delivery("a", 1)])
    assert store.begin_sync("a", 1, 0, 1000, discard=False) is not None
    assert store.begin_sync("a", 2, 1, 2000, discard=True) is not None
    assert store.pending_deliveries("a", 10) == []


def test_which_mpids_have_pending_rows(store: Store) -> None:
    enqueue(store, [delivery("a", 1, mpid=5), delivery("a", 2, mpid=None), delivery("b", 3, 6)])
    assert store.pending_mpids("a", [5, 6, 7]) == {5}
    assert store.pending_mpids("b", [5, 6]) == {6}
    assert store.pending_mpids("a", []) == set()


def test_deliveries_never_in_the_outbox_can_be_dead_letters(store: Store) -> None:
    store.add_dead_letters([delivery("a", 1), delivery("a", 2)], "HTTP 400: no", 5000)
    dead = store.dead_letters("a", 10)
    assert [(d.delivery.body, d.error) for d in dead] == [
        (b'{"events":[1]}', "HTTP 400: no"),
        (b'{"events":[2]}', "HTTP 400: no"),
    ]
    assert store.replay_dead_letters("a", None) == 2
    assert len(store.pending_deliveries("a", 10)) == 2


def test_an_erasure_messages_state_is_found_by_its_source(store: Store) -> None:
    def erasure(connection: str, source: str) -> Delivery:
        row = delivery(connection, 0, None)
        return msgspec.structs.replace(row, kind="erasure", source=source)

    # A batch row with a source named like an erasure's is not an erasure message.
    lookalike = msgspec.structs.replace(delivery("a", 9), source="erasure:x:files")
    enqueue(store, [erasure("a", "erasure:x:files"), erasure("b", "erasure:x:down"), lookalike])
    enqueue(store, [erasure("a", "erasure:y:files")])
    sources = ["erasure:x:files", "erasure:x:down", "erasure:y:files", "erasure:z:files"]
    assert store.erasure_message_states(sources) == {
        "erasure:x:files": "pending",
        "erasure:x:down": "pending",
        "erasure:y:files": "pending",
    }
    sent = store.pending_deliveries("a", 10)[0]
    assert sent.id is not None
    store.complete_deliveries("a", [sent.id], ConnectionState(connection="a", delivered=1))
    (refused,) = store.pending_deliveries("b", 10)
    assert refused.id is not None
    store.bury_deliveries("b", [refused.id], "HTTP 400: no", 5000)
    assert store.erasure_message_states(sources) == {
        "erasure:x:down": "failed",
        "erasure:y:files": "pending",
    }
    assert store.replay_dead_letters("b", None) == 1
    assert store.erasure_message_states(["erasure:x:down"]) == {"erasure:x:down": "pending"}
    assert store.erasure_message_states([]) == {}
