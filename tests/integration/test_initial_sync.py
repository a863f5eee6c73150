"""A new audience connection begins with the audience's current members (ENR-4): each sent as
an add, a page at a time, before the live changes; a change during the sync ends right at
the output; a sync stopped mid-way resumes from its last page, in another process too, and
two processes do it once. Its progress shows in the connection's status. On the memory
store, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kindred.audiences.definition import AudienceDef
from kindred.ports import Store
from kindred.services.forwarding.admin import ConnectionView
from kindred.services.forwarding.delivery import Lane
from kindred.storage.memory import MemoryStore
from tests.integration.forwarding_world import World, batch
from tests.pg import temporary_database
from tests.receiver import Answer, receiving

__all__: list[str] = []

CONNECTION = "gold-to-hook"
OUTPUT = """
[forwarding]
lease_s = 1
idle_s = 0.05

[[outputs]]
name = "hook"
kind = "webhook"
url = "{url}"
batch_size = 3
timeout_s = {timeout}
"""


def output(url: str, timeout: float = 0.5) -> str:
    return OUTPUT.format(url=url, timeout=timeout)


DECLARED = f"""
[[audience_connections]]
name = "{CONNECTION}"
audience_id = 1
output = "hook"
identity_types = ["customer_id"]
"""
CONNECTION_DOC = msgspec.json.encode(
    {"name": CONNECTION, "audience_id": 1, "output": "hook", "identity_types": ["customer_id"]}
)

Worlds = Callable[..., World]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def worlds(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Worlds]:
    """Makes worlds sharing one store: each stands for a process (its own owner, clock and
    lanes); `worlds(config, first_mpid=...)`."""
    made: list[World] = []
    shared: dict[str, Any] = {}

    def make(config: str, first_mpid: int = 1) -> World:
        if request.param == "memory":
            store: Store = shared.setdefault("memory", MemoryStore())
            world = World(tmp_path, config, store=store, first_mpid=first_mpid)
        else:
            world = World(tmp_path, config, shared.get("url"), first_mpid=first_mpid)
        made.append(world)
        return world

    if request.param == "postgres":
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - PostgreSQL only

        with temporary_database() as conninfo:
            parts = conninfo_to_dict(conninfo)
            host, port = parts.get("host", "127.0.0.1"), parts.get("port", 5432)
            shared["url"] = (
                f"postgresql://{parts.get('user', 'postgres')}@{host}:{port}/{parts['dbname']}"
            )
            try:
                yield make
            finally:
                for world in made:
                    world.close()
        return
    try:
        yield make
    finally:
        for world in made:
            world.close()


def gold_audience(world: World) -> None:
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


def enter(world: World, *customers: str) -> None:
    for customer in customers:
        world.send(batch(customer, "x", tier="gold"))


def leave(world: World, *customers: str) -> None:
    for customer in customers:
        world.send(batch(customer, "y", tier="bronze"))


def drain(lane: Lane) -> None:
    for _ in range(1000):
        if not lane.step():
            return
    raise AssertionError("the lane never went idle")


def status(world: World) -> ConnectionView:
    (view,) = [v for v in world.container.deliveries.connections() if v.name == CONNECTION]
    return view


def sync_status(world: World) -> str:
    progress = status(world).initial_sync
    assert progress is not None
    return progress.status


def final_state(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Each identity's last action, the messages taken in the order they arrived."""
    last: dict[str, str] = {}
    for m in messages:
        last[m["identity"]] = m["action"]
    return last


def members_at_output(messages: list[dict[str, Any]]) -> set[str]:
    return {identity for identity, action in final_state(messages).items() if action == "add"}


def actions_of(messages: list[dict[str, Any]], identity: str) -> list[str]:
    return [m["action"] for m in messages if m["identity"] == identity]


MEMBERS = [f"c{n}" for n in range(1, 8)]


@pytest.mark.parametrize("made", ["admin", "config"])
def test_a_connection_made_after_members_exist_receives_them_all_as_adds(
    worlds: Worlds, made: str
) -> None:
    with receiving() as hook:
        first = worlds(output(hook.url))
        gold_audience(first)
        enter(first, *MEMBERS)
        first.send(batch("s1", "x", tier="silver"))  # never a member
        if made == "admin":
            world = first
            world.container.catalog.save("audience_connection", CONNECTION_DOC)
        else:  # the config file names it when the server starts again
            world = worlds(output(hook.url) + DECLARED, first_mpid=1000)
        assert status(world).initial_sync is not None
        assert status(world).initial_sync.status == "waiting"  # type: ignore[union-attr]

        lane = world.lane(CONNECTION)
        assert lane.step() == 1  # begun
        progress = status(world).initial_sync
        assert progress is not None
        assert (progress.status, progress.members_done, progress.members_total) == (
            "running",
            0,
            7,
        )
        assert lane.step() == 3  # the first page
        progress = status(world).initial_sync
        assert progress is not None
        assert (progress.members_done, progress.members_total) == (3, 7)
        drain(lane)
        lane.release()

        messages = hook.messages
        assert [(m["action"], m["identity"]) for m in messages] == [("add", c) for c in MEMBERS]
        assert {m["audience_name"] for m in messages} == {"Gold Members"}
        assert len({m["idempotency_key"] for m in messages}) == 7
        assert all(m["idempotency_key"].startswith(f"{CONNECTION}:sync1:") for m in messages)
        view = status(world)
        assert view.initial_sync is not None
        assert view.initial_sync.status == "done"
        assert view.initial_sync.members_done == 7
        assert view.initial_sync.finished_ms is not None
        assert view.delivered == 7

        # Then the live changes, and no second sync.
        leave(world, "c3")
        drain(world.lane(CONNECTION))
        assert [(m["action"], m["identity"]) for m in hook.messages[7:]] == [("delete", "c3")]


def test_changes_during_the_sync_end_with_the_output_holding_the_current_members(
    worlds: Worlds,
) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, *MEMBERS)
        world.container.catalog.save("audience_connection", CONNECTION_DOC)
        lane = world.lane(CONNECTION)
        assert lane.step() == 1
        assert lane.step() == 3  # c1, c2, c3 added
        leave(world, "c2")  # added already: its remove must come after
        leave(world, "c6")  # not reached yet: must not be added
        enter(world, "c8")  # a new member: added once, by its own row
        leave(world, "c4")
        enter(world, "c4")  # left and came back before its page: a member at the end
        drain(lane)
        lane.release()

        messages = hook.messages
        assert members_at_output(messages) == {"c1", "c3", "c4", "c5", "c7", "c8"}
        assert actions_of(messages, "c2") == ["add", "delete"]
        assert "add" not in actions_of(messages, "c6")
        assert actions_of(messages, "c8") == ["add"]
        assert actions_of(messages, "c4")[-1] == "add"
        assert world.container.store.count_pending() == {}


def test_a_sync_stopped_mid_way_resumes_in_another_process_without_duplicates(
    worlds: Worlds,
) -> None:
    with receiving() as hook:
        config = output(hook.url)
        first = worlds(config)
        gold_audience(first)
        enter(first, *MEMBERS)
        first.container.catalog.save("audience_connection", CONNECTION_DOC)
        lane = first.lane(CONNECTION)
        lane.step()  # begun
        lane.step()  # c1..c3
        # The next page is taken, but its answer never comes: the sender gives up.
        hook.script.append(Answer(hang_s=1.5))
        assert lane.step() == 0
        assert len(hook.messages) == 6
        # The process dies here, its lease held. Another takes over once the lease ran out.
        second = worlds(config, first_mpid=1000)
        second.clock.advance(60_000)
        other = second.lane(CONNECTION)
        drain(other)
        other.release()

        unique = hook.unique()
        assert [m["identity"] for m in unique] == MEMBERS
        # The page whose answer was lost came again with the same keys; nothing else twice.
        assert len(hook.messages) == 10
        progress = status(second).initial_sync
        assert progress is not None
        assert (progress.status, progress.members_done) == ("done", 7)


def test_two_processes_sync_once(worlds: Worlds) -> None:
    with receiving() as hook:
        config = output(hook.url)
        first = worlds(config)
        gold_audience(first)
        enter(first, *MEMBERS)
        first.container.catalog.save("audience_connection", CONNECTION_DOC)
        second = worlds(config, first_mpid=1000)
        lanes = [first.lane(CONNECTION), second.lane(CONNECTION)]
        assert lanes[0].step() == 1  # begun
        assert lanes[0].step() == 3  # c1..c3
        assert lanes[1].step() == 0  # the first holds the connection
        lanes[0].release()  # the first stops (a deploy): the second goes on from its cursor
        for _ in range(20):
            for lane in reversed(lanes):
                lane.step()
        for lane in lanes:
            lane.release()
        assert [m["identity"] for m in hook.messages] == MEMBERS
        assert all(m["action"] == "add" for m in hook.messages)


def test_members_refused_for_good_become_dead_letters_and_the_sync_goes_on(
    worlds: Worlds,
) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, *MEMBERS)
        world.container.catalog.save("audience_connection", CONNECTION_DOC)
        # The first page refused; then each of its members alone: c2 refused again.
        hook.script.extend([Answer(400), Answer(200), Answer(400), Answer(200)])
        drain(world.lane(CONNECTION))
        assert [m["identity"] for m in hook.messages] == ["c1", "c3", "c4", "c5", "c6", "c7"]
        (dead,) = world.container.deliveries.dead_letters(CONNECTION, 10)
        assert (dead.kind, dead.mpid) == ("membership", "2")
        assert "400" in dead.error
        progress = status(world).initial_sync
        assert progress is not None
        assert (progress.status, progress.members_done) == ("done", 7)

        assert world.container.deliveries.replay(CONNECTION, None) == 1
        drain(world.lane(CONNECTION))
        assert [(m["action"], m["identity"]) for m in hook.messages[6:]] == [("add", "c2")]


def test_two_running_servers_sync_once(worlds: Worlds) -> None:
    members = [f"m{n:02}" for n in range(30)]
    with receiving() as hook:
        config = output(hook.url)
        first = worlds(config)
        gold_audience(first)
        enter(first, *members)
        second = worlds(config, first_mpid=1000)
        first.container.catalog.save("audience_connection", CONNECTION_DOC)
        for world in (first, second):
            world.container.delivery.reconcile()
        try:
            hook.wait_for(len(members))
            time.sleep(0.3)  # time for a second sync, were there one
        finally:
            for world in (first, second):
                world.container.delivery.stop()
        assert [m["identity"] for m in hook.messages] == members


def test_a_connection_enabled_again_starts_over_with_the_members_then(worlds: Worlds) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, "c1", "c2")
        catalog = world.container.catalog
        catalog.save("audience_connection", CONNECTION_DOC)
        drain(world.lane(CONNECTION))
        assert members_at_output(hook.messages) == {"c1", "c2"}

        disabled = {**msgspec.json.decode(CONNECTION_DOC), "enabled": False}
        catalog.save("audience_connection", msgspec.json.encode(disabled))
        assert status(world).initial_sync is not None
        assert status(world).initial_sync.status == "off"  # type: ignore[union-attr]
        leave(world, "c1")  # unseen: disabled
        enter(world, "c3")
        assert world.container.store.count_pending() == {}

        catalog.save("audience_connection", CONNECTION_DOC)
        before = len(hook.messages)
        drain(world.lane(CONNECTION))
        again = hook.messages[before:]
        assert [(m["action"], m["identity"]) for m in again] == [("add", "c2"), ("add", "c3")]
        assert all(m["idempotency_key"].startswith(f"{CONNECTION}:sync2:") for m in again)
        # c1 left while the output was disconnected: it is not told (as mParticle, a
        # reconnected output receives the members, not the history).
        progress = status(world).initial_sync
        assert progress is not None
        assert (progress.status, progress.members_done) == ("done", 2)


def test_a_config_connection_disabled_then_enabled_at_a_later_start_syncs_then(
    worlds: Worlds,
) -> None:
    with receiving() as hook:
        disabled = output(hook.url) + DECLARED + "enabled = false\n"
        world = worlds(disabled)
        gold_audience(world)
        enter(world, "c1", "c2")
        assert sync_status(world) == "off"
        # No lane but the status callbacks' (always there).
        assert [lane.name for lane in world.container.delivery.lanes()] == ["opendsr-callbacks"]
        again = worlds(output(hook.url) + DECLARED, first_mpid=1000)  # started again
        assert sync_status(again) == "waiting"
        drain(again.lane(CONNECTION))
        assert [(m["action"], m["identity"]) for m in hook.messages] == [
            ("add", "c1"),
            ("add", "c2"),
        ]


def test_a_deleted_connection_made_again_starts_over(worlds: Worlds) -> None:
    with receiving() as hook:
        world = worlds(output(hook.url))
        gold_audience(world)
        enter(world, "c1")
        catalog = world.container.catalog
        catalog.save("audience_connection", CONNECTION_DOC)
        drain(world.lane(CONNECTION))
        leave(world, "c1")  # a row waiting when the connection goes
        catalog.delete("audience_connection", CONNECTION)
        assert world.container.store.count_pending() == {}
        enter(world, "c2")
        catalog.save("audience_connection", CONNECTION_DOC)
        drain(world.lane(CONNECTION))
        assert [(m["action"], m["identity"]) for m in hook.messages] == [
            ("add", "c1"),
            ("add", "c2"),
        ]
        assert hook.messages[1]["idempotency_key"].startswith(f"{CONNECTION}:sync2:")


def worker(tmp: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINDRED_")}
    with (tmp / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kindred.cli",
                "deliver",
                "--follow",
                "--config",
                str(tmp / "kindred.toml"),
                "--data-dir",
                str(tmp / "data"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def test_a_killed_process_mid_sync_leaves_the_rest_to_the_next(
    tmp_path: Path, store_url: str | None
) -> None:
    total = 300
    with receiving() as hook:
        hook.default = Answer(hang_s=0.02)  # a page at a time, slowly enough to kill mid-way
        world = World(tmp_path, output(hook.url, timeout=5), store_url)
        try:
            gold_audience(world)
            source = world.container.tenancy.input_named("server")
            assert source is not None
            enter(world, *(f"m{n:03}" for n in range(total)))
            world.container.catalog.save("audience_connection", CONNECTION_DOC)

            first = worker(tmp_path)
            deadline = time.monotonic() + 60
            while len(hook.messages) < total // 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert 0 < len(hook.unique()) < total
            progress = status(world).initial_sync
            assert progress is not None
            assert progress.status == "running"

            second = worker(tmp_path)
            try:
                received = hook.wait_for(total, timeout_s=120)
                deadline = time.monotonic() + 30
                while sync_status(world) != "done" and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                second.terminate()
                second.wait(15)
            assert sorted(m["identity"] for m in received) == [f"m{n:03}" for n in range(total)]
            # At most the page in flight when it was killed came twice, with the same keys.
            assert len(hook.messages) - total <= 3
            progress = status(world).initial_sync
            assert progress is not None
            assert (progress.status, progress.members_done) == ("done", total)
        finally:
            world.close()
