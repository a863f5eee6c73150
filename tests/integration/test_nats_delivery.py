"""Delivery to NATS JetStream, against the server on 127.0.0.1:4222 (scripts/services.sh
starts it): messages land in the stream in order, and a message sent again (the same
idempotency key) is stored once."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest

from kindred.domain.errors import DeliveryFailed
from kindred.domain.forwarding import OutputDef
from kindred.outputs.nats import NatsSink
from tests.integration.forwarding_world import World, batch

__all__: list[str] = []

NATS_URL = "nats://127.0.0.1:4222"


async def _stored(stream: str, subject: str) -> list[dict[str, Any]]:
    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        found = []
        for seq in range(1, info.state.messages + 1):
            message = await js.get_msg(stream, seq)
            assert message.subject == subject
            assert message.data is not None
            found.append(json.loads(message.data))
        return found
    finally:
        await client.close()


async def _delete(stream: str) -> None:
    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def test_batches_reach_a_jetstream_stream_once_each(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    stream, subject = f"KINDRED_TEST_{tag}", f"kindred.test.{tag}"
    world = World(
        tmp_path,
        f"""
[[outputs]]
name = "bus"
kind = "nats"
url = "{NATS_URL}"
subject = "{subject}"
stream = "{stream}"
batch_size = 10

[[event_connections]]
name = "to-bus"
input = "server"
output = "bus"
""",
    )
    try:
        for n in range(25):
            world.send(batch(f"c{n % 3}", f"e{n}", tier="gold"))
        lane = world.lane("to-bus")
        while lane.step():
            pass
        lane.release()
        stored = asyncio.run(_stored(stream, subject))
        assert [m["events"][0]["data"]["event_name"] for m in stored] == [
            f"e{n}" for n in range(25)
        ]
        assert stored[0]["user_attributes"] == {"tier": "gold"}

        # The same messages published again: JetStream keeps them once (Nats-Msg-Id).
        again = NatsSink(world.container.catalog.current().outputs[0])
        try:
            again.send(stored[:5])
        finally:
            again.close()
        assert len(asyncio.run(_stored(stream, subject))) == 25
    finally:
        world.close()
        asyncio.run(_delete(stream))


def test_an_unreachable_server_is_a_failure_to_retry() -> None:
    sink = NatsSink(
        OutputDef(name="gone", kind="nats", url="nats://127.0.0.1:1", subject="x", timeout_s=1)
    )
    try:
        with pytest.raises(DeliveryFailed) as failure:
            sink.send([{"idempotency_key": "k"}])
        assert not failure.value.permanent
    finally:
        sink.close()
