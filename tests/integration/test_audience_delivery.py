"""Audience connections (ENR-4, BEY-5): adds and removes with only the accepted identity
types, one message per identity, shared attributes only when asked for, the external name;
membership changes as ordinary events to event outputs that ask for them. The audience
output here is a JSON-lines file, with rotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kindred.audiences.definition import AudienceDef
from tests.integration.forwarding_world import World, batch
from tests.receiver import receiving

__all__: list[str] = []


def config(directory: Path, hook: str) -> str:
    return f"""
[[outputs]]
name = "files"
kind = "jsonl"
directory = "{directory}"
rotate_bytes = 600

[[outputs]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[audience_connections]]
name = "gold-to-files"
audience_id = 1
output = "files"
identity_types = ["email", "ios_advertising_id"]

[[audience_connections]]
name = "gold-shared"
audience_id = 1
output = "files"
identity_types = ["customer_id"]
shared_attributes = ["tier", "ltv"]

[[event_connections]]
name = "events-and-audiences"
input = "server"
output = "hook"
audience_events = true
event_names_allow = ["audience_entered", "audience_exited"]
"""


def lines(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("files-*.jsonl")):
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return found


def test_membership_changes_reach_audience_and_event_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with receiving() as hook:
        world = World(tmp_path, config(out, hook.url))
        try:
            audiences = world.container.audiences
            audiences.create(
                AudienceDef(
                    name="Gold",
                    external_name="Gold Members",
                    workspaces=[1],
                    criteria={"attribute": "tier", "op": "equals", "value": "gold"},
                ),
                created_by="test",
            )
            audiences.set_status(1, "active")
            body = batch("c1", "x", tier="gold", ltv="9", city="Oslo")
            body["user_identities"]["email"] = "c1@example.com"
            body["device_info"]["ios_advertising_id"] = "AAAA-1"
            world.send(body)
            world.send(batch("c2", "y", tier="silver"))  # never enters
            world.clock.advance(1000)
            world.send({**batch("c1", "z"), "user_attributes": {"tier": "bronze"}})
            for lane in world.container.delivery.lanes():
                while lane.step():
                    pass
                lane.release()

            plain = [m for m in lines(out) if "user_attributes" not in m]
            assert [(m["action"], m["identity_type"], m["identity"]) for m in plain] == [
                ("add", "email", "c1@example.com"),
                ("add", "ios_advertising_id", "AAAA-1"),
                ("delete", "email", "c1@example.com"),
                ("delete", "ios_advertising_id", "AAAA-1"),
            ]
            assert {m["audience_name"] for m in plain} == {"Gold Members"}
            assert {m["audience_id"] for m in plain} == {1}
            shared = [m for m in lines(out) if "user_attributes" in m]
            assert [(m["action"], m["identity"]) for m in shared] == [
                ("add", "c1"),
                ("delete", "c1"),
            ]
            # Attributes as stored when sent: the profile's tier is bronze by then.
            assert shared[0]["user_attributes"] == {"tier": "bronze", "ltv": "9"}
            assert len({m["idempotency_key"] for m in lines(out)}) == 6
            assert len(list(out.glob("files-*.jsonl"))) > 1  # rotated

            events = hook.unique()
            names = [m["events"][0]["data"]["event_name"] for m in events]
            assert names == ["audience_entered", "audience_exited"]
            assert events[0]["events"][0]["data"]["custom_attributes"] == {
                "audience_id": "1",
                "audience_name": "Gold Members",
            }
            assert events[0]["user_attributes"]["tier"] == "bronze"
        finally:
            world.close()


def test_backfill_and_deactivation_changes_are_forwarded_too(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with receiving() as hook:
        world = World(tmp_path, config(out, hook.url))
        try:
            body = batch("c1", "x", tier="gold")
            body["user_identities"]["email"] = "c1@example.com"
            world.send(body)  # before the audience exists
            audiences = world.container.audiences
            audiences.create(
                AudienceDef(
                    name="Gold",
                    workspaces=[1],
                    criteria={"attribute": "tier", "op": "equals", "value": "gold"},
                ),
                created_by="test",
            )
            audiences.set_status(1, "active")  # the backfill finds c1
            world.clock.advance(1000)
            while world.container.audience_backfill.run():
                world.clock.advance(1000)
            audiences.set_status(1, "inactive")  # every member leaves
            for lane in world.container.delivery.lanes():
                while lane.step():
                    pass
                lane.release()
            plain = [m for m in lines(out) if "user_attributes" not in m]
            assert [(m["action"], m["identity"], m["audience_name"]) for m in plain] == [
                ("add", "c1@example.com", "Gold"),
                ("delete", "c1@example.com", "Gold"),
            ]
            names = [m["events"][0]["data"]["event_name"] for m in hook.unique()]
            assert names == ["audience_entered", "audience_exited"]
        finally:
            world.close()
