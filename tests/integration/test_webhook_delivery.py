"""Delivery to a real local HTTP receiver (ENR-1..3, AUD-11): enrichment and filters, backoff
with a fake clock, Retry-After, faults and resume, dead letters and replay, hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.forwarding_world import World, batch
from tests.receiver import Answer, Receiver, receiving

__all__: list[str] = []


def hook_config(url: str, **settings: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return f"""
[[outputs]]
name = "hook"
kind = "webhook"
url = "{url}"
auth_header = "Authorization: Bearer t0ken"
timeout_s = 1
batch_size = 50

[[event_connections]]
name = "to-hook"
input = "server"
output = "hook"
{extra}"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def world(tmp_path: Path, receiver: Receiver, store_url: str | None) -> Iterator[World]:
    w = World(tmp_path, hook_config(receiver.url), store_url)
    yield w
    w.close()


def test_a_batch_arrives_enriched_from_the_stored_profile(world: World, receiver: Receiver) -> None:
    world.send(batch("c1", "first", tier="gold", city="Oslo"))
    world.send({**batch("c1", "second", city="Bergen"), "user_attributes": {"city": "Bergen"}})
    lane = world.lane("to-hook")
    assert lane.step() == 2
    first, second = receiver.unique()
    assert first["events"][0]["data"]["event_name"] == "first"
    # Enriched at forwarding time: both see the profile as it is now.
    for message in (first, second):
        assert message["user_attributes"] == {"tier": "gold", "city": "Bergen"}
        assert message["mpid"] == 1
        assert message["user_identities"] == [
            {
                "identity_type": "customer_id",
                "identity": "c1",
                "timestamp_unixtime_ms": message["user_identities"][0]["timestamp_unixtime_ms"],
            }
        ]
        assert message["device_info"]["ios_idfv"] == "idfv-c1"
        assert message["ip"] == "203.0.113.9"
        assert message["source_info"] == {"channel": "server_to_server", "is_historical": False}
    assert first["idempotency_key"] != second["idempotency_key"]
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer t0ken"
    assert lane.state().delivered == 2
    assert world.container.store.count_pending() == {}


def test_batches_without_events_are_not_forwarded(world: World, receiver: Receiver) -> None:
    world.send({**batch("c1"), "events": []})
    assert world.container.store.count_pending() == {}
    assert world.lane("to-hook").step() == 0
    assert receiver.requests == []


def test_a_read_only_input_is_forwarded_as_received(tmp_path: Path, receiver: Receiver) -> None:
    config = hook_config(receiver.url).replace('input = "server"', 'input = "feed"')
    world = World(tmp_path, config + 'attributes_block = ["secret"]\n')
    try:
        world.send(batch("c9", "seen", tier="gold", secret="s"), input_name="feed")
        assert world.container.store.get_profile(1) is None  # never applied
        assert world.lane("to-hook").step() == 1
        (message,) = receiver.unique()
        assert message["user_attributes"] == {"tier": "gold"}
        assert message["user_identities"] == {"customer_id": "c9"}
        assert "mpid" not in message
        assert message["source_info"]["channel"] == "partner"
    finally:
        world.close()


def test_filters_ip_switch_and_consent_gate(tmp_path: Path, receiver: Receiver) -> None:
    settings = {
        "event_names_block": '["hidden"]',
        "attributes_block": '["secret", "tier"]',
        "enrich_ip": "false",
        "consent_purpose": '"marketing"',
    }
    world = World(tmp_path, hook_config(receiver.url, **settings))
    try:
        consent = {
            "gdpr": {"marketing": {"consented": True, "timestamp_unixtime_ms": 1, "document": "d1"}}
        }
        world.send(batch("c1", "seen", "hidden", tier="gold", city="Oslo"))
        world.send({**batch("c1", "later"), "consent_state": consent})
        world.send(batch("c2", "no-consent"))
        world.send(batch("c1", "hidden"))  # nothing left after filtering
        assert world.lane("to-hook").step() == 4
        (first, second) = receiver.unique()
        # The first batch arrived before consent; it is forwarded because at forwarding time
        # the stored profile has consented.
        assert [e["data"]["event_name"] for e in first["events"]] == ["seen"]
        assert first["events"][0]["data"]["custom_attributes"] == {"n": "0"}
        assert first["user_attributes"] == {"city": "Oslo"}
        assert "ip" not in first
        assert first["consent_state"]["gdpr"]["marketing"]["consented"] is True
        assert [e["data"]["event_name"] for e in second["events"]] == ["later"]
    finally:
        world.close()


def test_backoff_follows_the_policy_and_honours_retry_after(
    world: World, receiver: Receiver
) -> None:
    world.send(batch("c1", "e"))
    lane = world.lane("to-hook")
    receiver.script.extend([Answer(500), Answer(500), Answer(429, retry_after="30")])
    started = world.clock.now_ms()

    assert lane.step() == 0
    first_wait = lane.state().retry_at_ms - started
    assert 500 <= first_wait <= 1000  # base 1 s, equal jitter
    world.clock.advance(first_wait - 1)
    assert lane.step() == 0
    assert len(receiver.requests) == 1  # not yet due: nothing sent
    world.clock.advance(1)

    assert lane.step() == 0
    second_wait = lane.state().retry_at_ms - world.clock.now_ms()
    assert 1000 <= second_wait <= 2000
    world.clock.advance(second_wait)

    assert lane.step() == 0  # 429 with Retry-After: 30 s, longer than the backoff
    assert lane.state().retry_at_ms - world.clock.now_ms() == 30_000
    assert "429" in (lane.state().last_error or "")
    world.clock.advance(30_000)

    assert lane.step() == 1
    assert len(receiver.requests) == 4
    assert len(receiver.unique()) == 1
    assert lane.state().failures == 0


def test_a_fault_stops_the_connection_and_resume_delivers_everything(
    world: World, receiver: Receiver
) -> None:
    receiver.default = Answer(503)
    for n in range(120):
        world.send(batch(f"c{n % 7}", f"e{n}"))
    lane = world.lane("to-hook")
    for _ in range(4):  # max_attempts = 4
        assert lane.step() == 0
        world.clock.advance(lane.state().retry_at_ms - world.clock.now_ms() + 1)
    state = lane.state()
    assert state.faulted_ms is not None
    assert state.last_error is not None
    assert "503" in state.last_error
    (view,) = world.container.deliveries.connections()
    assert (view.status, view.pending) == ("faulted", 120)

    receiver.default = Answer(200)
    world.clock.advance(3_600_000)
    assert lane.step() == 0  # faulted: stays stopped whatever the time
    assert len(receiver.requests) == 4

    world.container.deliveries.resume("to-hook")
    while lane.step():
        pass
    received = receiver.unique()
    assert [m["events"][0]["data"]["event_name"] for m in received] == [f"e{n}" for n in range(120)]
    (view,) = world.container.deliveries.connections()
    assert (view.status, view.pending, view.delivered) == ("sending", 0, 120)


def test_a_resent_group_carries_the_same_idempotency_keys(world: World, receiver: Receiver) -> None:
    for n in range(3):
        world.send(batch("c1", f"e{n}"))
    lane = world.lane("to-hook")
    # The receiver takes the messages but the answer is lost (it hangs past the timeout).
    receiver.script.append(Answer(200, hang_s=1.5))
    assert lane.step() == 0
    world.clock.advance(lane.state().retry_at_ms - world.clock.now_ms())
    assert lane.step() == 3
    assert len(receiver.messages) == 6
    keys = [m["idempotency_key"] for m in receiver.messages]
    assert keys[:3] == keys[3:]
    assert [m["events"][0]["data"]["event_name"] for m in receiver.unique()] == ["e0", "e1", "e2"]


def test_a_refused_group_goes_to_the_dead_letters_and_can_be_replayed(
    world: World, receiver: Receiver
) -> None:
    world.send(batch("c1", "bad"))
    lane = world.lane("to-hook")
    receiver.script.append(Answer(400))
    assert lane.step() == 1
    world.send(batch("c1", "good"))
    assert lane.step() == 1
    admin = world.container.deliveries
    (dead,) = admin.dead_letters("to-hook", 10)
    assert "400" in dead.error
    assert admin.replay("to-hook", None) == 1
    assert lane.step() == 1
    assert [m["events"][0]["data"]["event_name"] for m in receiver.unique()] == ["good", "bad"]


def test_in_a_refused_group_only_the_refused_rows_become_dead_letters(
    world: World, receiver: Receiver
) -> None:
    for n in range(4):
        world.send(batch("c1", f"e{n}"))
    # The group is refused, then each row alone: e1 is refused again, the others pass.
    receiver.script.extend([Answer(400), Answer(200), Answer(400), Answer(200), Answer(200)])
    assert world.lane("to-hook").step() == 4
    assert [m["events"][0]["data"]["event_name"] for m in receiver.unique()] == [
        "e0",
        "e2",
        "e3",
    ]
    (dead,) = world.container.deliveries.dead_letters("to-hook", 10)
    assert "400" in dead.error
    assert world.container.store.count_pending() == {}


def test_a_hanging_output_does_not_hold_up_another(tmp_path: Path) -> None:
    with receiving() as slow, receiving() as fast:
        config = (
            hook_config(slow.url)
            + f"""
[[outputs]]
name = "fast"
kind = "webhook"
url = "{fast.url}"
timeout_s = 1

[[event_connections]]
name = "to-fast"
input = "server"
output = "fast"
"""
        )
        world = World(tmp_path, config)
        slow.default = Answer(200, hang_s=5)
        try:
            runner = world.container.delivery
            runner.reconcile()
            for n in range(20):
                world.send(batch("c1", f"e{n}"))
            assert len(fast.wait_for(20, timeout_s=5)) == 20
            # The fast lane records its deliveries just after the receiver has them.
            deadline = time.monotonic() + 5
            while True:
                views = {v.name: v for v in world.container.deliveries.connections()}
                if views["to-fast"].delivered == 20 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            # Meanwhile every request to the slow output hung past its timeout.
            assert views["to-hook"].delivered == 0
            assert views["to-hook"].pending == 20
            assert views["to-fast"].delivered == 20
        finally:
            world.close()
