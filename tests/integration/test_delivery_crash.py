"""A delivery worker process killed (SIGKILL) in the middle of 10,000 deliveries: after a
restart the receiver has all of them, and each user's in the order they were written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from kindred.services.writes.commands import Accepted
from kindred.wire.observe import observe
from tests.integration.forwarding_world import World, batch
from tests.receiver import receiving

__all__: list[str] = []

USERS = 37
TOTAL = 10_000


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


def test_killed_worker_loses_nothing_and_keeps_per_user_order(
    tmp_path: Path, store_url: str | None
) -> None:
    with receiving() as receiver:
        world = World(
            tmp_path,
            f"""
[forwarding]
lease_s = 1
idle_s = 0.05

[[outputs]]
name = "hook"
kind = "webhook"
url = "{receiver.url}"
batch_size = 25

[[event_connections]]
name = "to-hook"
input = "server"
output = "hook"
""",
            store_url,
        )
        try:
            source = world.container.tenancy.input_named("server")
            assert source is not None
            items = []
            for n in range(TOTAL):
                raw = batch(f"user{n % USERS}", f"{n}")
                body = msgspec.json.encode(raw)
                items.append(Accepted(source, observe(body, source, world.clock.now_ms()), body))
            for start in range(0, TOTAL, 500):
                world.container.commands.run_all(items[start : start + 500])
            assert world.container.store.count_pending() == {"to-hook": TOTAL}

            first = worker(tmp_path)
            deadline = time.monotonic() + 60
            while len(receiver.messages) < TOTAL // 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            arrived_before = len(receiver.unique())
            assert 0 < arrived_before < TOTAL
            assert world.container.store.count_pending()["to-hook"] > 0

            second = worker(tmp_path)
            try:
                received = receiver.wait_for(TOTAL, timeout_s=120)
            finally:
                second.terminate()
                second.wait(15)
            assert len(received) == TOTAL
            per_user: dict[int, list[int]] = {}
            for message in received:
                number = int(message["events"][0]["data"]["event_name"])
                per_user.setdefault(message["mpid"], []).append(number)
            assert len(per_user) == USERS
            for numbers in per_user.values():
                assert numbers == sorted(numbers)
            assert sum(len(v) for v in per_user.values()) == TOTAL
            assert world.container.store.count_pending() == {}
        finally:
            world.close()
