"""Audience A/B tests through the services and the delivery lanes (AUD-8, ENR-4), on the
memory store, SQLite and PostgreSQL: the test kept in the store (a second process reads the
same salt and puts everyone in the same variation, also after the audience's definition
changed); a variation connection's initial sync and live rows hold only its members, under
`[External Name] - [Variant]`; deleting the test sends their removals, then deletes the
connection and the test."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import msgspec
import pytest

from kindred.audiences.abtest import CONTROL, AbTestRequest, Variation
from kindred.domain.errors import Conflict, InvalidBatch, NotFound
from kindred.services.forwarding.delivery import Lane
from tests.integration.forwarding_world import World, batch
from tests.integration.test_initial_sync import Worlds, drain, enter, gold_audience, output, worlds
from tests.receiver import receiving

__all__ = ["worlds"]

SPLIT = AbTestRequest(
    variations=[Variation(name="Email", percentage=40), Variation(name="Push", percentage=40)]
)
MEMBERS = [f"m{n}" for n in range(30)]


def connect(world: World, name: str, variation: str | None) -> None:
    doc: dict[str, Any] = {
        "name": name,
        "audience_id": 1,
        "output": "hook",
        "identity_types": ["customer_id"],
    }
    if variation is not None:
        doc["variation"] = variation
    world.container.catalog.save("audience_connection", msgspec.json.encode(doc))


def lane(world: World, name: str) -> Lane:
    return world.lane(name)


def identities(world: World, mpids: list[int]) -> set[str]:
    found = set()
    for mpid in mpids:
        profile = world.container.store.get_profile(mpid)
        assert profile is not None
        found.add(profile.user_identities["customer_id"].value)
    return found


def of(messages: list[dict[str, Any]], connection: str, action: str) -> list[dict[str, Any]]:
    return [
        m
        for m in messages
        if m["idempotency_key"].startswith(f"{connection}:") and m["action"] == action
    ]


def test_variation_connections_send_their_members_and_say_goodbye(worlds: Worlds) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, *MEMBERS[:20])
        tests = world.container.abtests
        shown = tests.set(1, SPLIT)
        assert [(v.name, v.percentage) for v in shown.variations] == [
            ("Email", 40),
            ("Push", 40),
            (CONTROL, 20),
        ]
        email = identities(world, tests.members(1, "Email"))
        connect(world, "gold-email", "Email")
        connect(world, "gold-all", None)
        drain(lane(world, "gold-email"))
        drain(lane(world, "gold-all"))
        enter(world, *MEMBERS[20:])  # live rows after the syncs
        drain(lane(world, "gold-email"))
        drain(lane(world, "gold-all"))

        email = identities(world, tests.members(1, "Email"))
        assert email
        sent = hook.unique()
        assert {m["identity"] for m in of(sent, "gold-email", "add")} == email
        assert {m["audience_name"] for m in of(sent, "gold-email", "add")} == {
            "Gold Members - Email"
        }
        assert {m["identity"] for m in of(sent, "gold-all", "add")} == set(MEMBERS)
        assert {m["audience_name"] for m in of(sent, "gold-all", "add")} == {"Gold Members"}
        counts = {v.name: v.members for v in tests.show(1).variations}
        assert sum(counts.values()) == len(MEMBERS)
        assert counts["Email"] == len(email)

        # Another process on the same store, after the definition changed: the same split.
        audiences = world.container.audiences
        changed = msgspec.structs.replace(
            audiences.get(1), criteria={"attribute": "tier", "op": "equals", "value": "gold"}
        )
        audiences.update(1, changed, changed_by="test")
        other = worlds(output(hook.url), first_mpid=5000)
        assert other.container.abtests.get(1).salt == tests.get(1).salt
        assert other.container.abtests.members(1, "Email") == tests.members(1, "Email")

        # Edits keep the salt; a connected variation cannot disappear; only one test.
        edited = tests.set(1, AbTestRequest(variations=[*SPLIT.variations]))
        assert edited.updated_ms >= shown.updated_ms
        with pytest.raises(InvalidBatch, match="gold-email"):
            tests.set(1, AbTestRequest(variations=[Variation(name="Push", percentage=50)]))
        with pytest.raises(InvalidBatch, match="split cannot change"):
            tests.set(
                1,
                AbTestRequest(
                    variations=[*SPLIT.variations[:1], Variation(name="Push", percentage=30)]
                ),
            )
        sms = AbTestRequest(variations=[SPLIT.variations[0], Variation(name="SMS", percentage=40)])
        assert [v.name for v in tests.set(1, sms).variations] == ["Email", "SMS", CONTROL]
        assert identities(world, tests.members(1, "Email")) == email  # nobody moved
        tests.set(1, SPLIT)

        old_salt = tests.get(1).salt
        ending = tests.delete(1)
        assert ending == ["gold-email"]
        with pytest.raises(NotFound):
            tests.show(1)
        with pytest.raises(Conflict):
            tests.set(1, SPLIT)  # the farewell is not done
        drain(lane(world, "gold-email"))
        removed = of(hook.unique(), "gold-email", "delete")
        assert {m["identity"] for m in removed} == email
        assert {m["audience_name"] for m in removed} == {"Gold Members - Email"}
        names = {c.name for c in world.container.catalog.current().audience_connections}
        assert names == {"gold-all"}
        assert world.container.abtests.of_profile(1) == []
        tests.set(1, SPLIT)  # a new test, a new salt
        assert tests.get(1).salt != old_salt


def test_a_test_without_sending_connections_ends_at_once(worlds: Worlds) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        world.send(batch("solo", "x", tier="gold"))
        tests = world.container.abtests
        tests.set(1, SPLIT)
        doc = {
            "name": "off",
            "audience_id": 1,
            "output": "hook",
            "identity_types": ["customer_id"],
            "variation": "Push",
            "enabled": False,
        }
        world.container.catalog.save("audience_connection", msgspec.json.encode(doc))
        assert tests.delete(1) == []
        assert world.container.catalog.current().audience_connections == []
        assert world.container.abtests.of_profile(1) == []
        with pytest.raises(NotFound):
            tests.get(1)


def test_a_download_of_variations_has_a_csv_of_each_variations_members(worlds: Worlds) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, *MEMBERS)
        tests = world.container.abtests
        tests.set(1, SPLIT)
        downloads = world.container.downloads
        with pytest.raises(InvalidBatch, match=r"variations\[1\]"):
            downloads.prepare([1], ["customer_id"], None, ["Email", "Nope"])
        prepared = downloads.prepare([1], ["customer_id"], None, ["Email", "Control"])
        archive = zipfile.ZipFile(io.BytesIO(b"".join(prepared.chunks())))
        manifest = json.loads(archive.read("manifest.json"))
        assert [f["variant"] for f in manifest["files"]] == ["Email", "Control"]
        for entry, variation in zip(manifest["files"], ("Email", "Control"), strict=True):
            rows = list(csv.reader(io.StringIO(archive.read(entry["file_name"]).decode())))[1:]
            assert {row[0] for row in rows} == {str(m) for m in tests.members(1, variation)}
            assert {row[2] for row in rows} == identities(world, tests.members(1, variation))


def test_a_lane_that_sees_the_test_ended_first_still_says_goodbye(worlds: Worlds) -> None:
    """The test is saved ended before the connection's sync is started over (another
    process deleting it, seen in between): the lane starts the farewell itself, and never
    deletes the connection before its removals are sent."""
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, *MEMBERS[:12])
        tests = world.container.abtests
        tests.set(1, SPLIT)
        connect(world, "gold-push", "Push")
        drain(lane(world, "gold-push"))
        push = identities(world, tests.members(1, "Push"))
        assert {m["identity"] for m in of(hook.unique(), "gold-push", "add")} == push
        sync = world.container.store.sync_state("gold-push")
        assert sync is not None
        book = world.container.abtests._book
        ended = msgspec.structs.replace(
            tests.get(1), ended_ms=1, farewell_after={"gold-push": sync.generation}
        )
        book.save(ended)
        drain(lane(world, "gold-push"))
        assert {m["identity"] for m in of(hook.unique(), "gold-push", "delete")} == push
        assert world.container.catalog.current().audience_connections == []
