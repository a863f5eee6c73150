"""The store contract for the outbox, dead letters, connection states and run-time
definitions (ENR-3, AUD-11), on every store."""

from __future__ import annotations

import pytest

from kindred.ports import ConnectionState, Delivery, Store

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
