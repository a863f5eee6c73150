"""An activation over stored events computed in processes of its own (AUD-5): real spawned
processes on the same SQLite store compute and save the pages, their membership changes
reach the audience's connection, and the result is the one computed in the server's own
process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from kindred.audiences.definition import AudienceDef
from kindred.bootstrap.activation_processes import NICENESS, ActivationProcesses, shares
from kindred.bootstrap.write_side import definitions_side
from kindred.services.audiences.activation import Span
from kindred.services.audiences.jobs import AudienceBackfill
from tests.integration.forwarding_world import World, batch
from tests.pg import pg_url, temporary_database

__all__: list[str] = []

_CUSTOMERS = 24
_PLAYERS = {f"c{n}" for n in range(_CUSTOMERS) if n % 4 >= 2}  # two plays or more


def _config(out: Path) -> str:
    return f"""
[[outputs]]
name = "files"
kind = "jsonl"
directory = "{out}"

[[audience_connections]]
name = "players-to-files"
audience_id = 1
output = "files"
identity_types = ["customer_id"]
"""


class _Counted(ActivationProcesses):
    def __init__(self, world: World) -> None:
        super().__init__(world.settings, page=1, processes=2)
        self.spans: list[Span] = []

    def run_spans(
        self, audience: AudienceDef, now_ms: int, scope: str, spans: Sequence[Span]
    ) -> list[int | None]:
        self.spans.extend(spans)
        return super().run_spans(audience, now_ms, scope, spans)


def _activated(world: World) -> int:
    for n in range(_CUSTOMERS):
        assert world.send(batch(f"c{n}", *["Play"] * (n % 4))).status == "applied"
    audiences = world.container.audiences
    made = audiences.create(
        AudienceDef(
            name="Players",
            workspaces=[1],
            criteria={"event": "custom_event", "name": "Play", "within_days": 30, "at_least": 2},
        )
    )
    audiences.set_status(made.id, "active")
    return made.id


def _pass(world: World, processes: ActivationProcesses | None) -> AudienceBackfill:
    container = world.container
    *_, transactions = definitions_side(
        world.settings, container.store, container.tenancy, box=container.secret_box
    )
    return AudienceBackfill(
        container.store,
        transactions,
        container.audience_registry,
        world.clock,
        chunk=1,
        elsewhere=processes,
    )


def _settled(world: World, backfill: AudienceBackfill, audience_id: int) -> list[str]:
    """Runs the backfill to its end; the customer ids of the members."""
    for _ in range(20):
        current = next(a for a in world.container.store.list_audiences() if a.id == audience_id)
        if current.backfill_scope is None and current.history_from is None:
            break
        backfill.run()
    members = world.container.audiences.members_at(audience_id, world.clock.now_ms())
    profiles = world.container.store.get_profiles(members)
    return sorted(p.user_identities["customer_id"].value for p in profiles.values())


def _delivered(world: World, out: Path) -> list[tuple[str, str]]:
    for lane in world.container.delivery.lanes():
        while lane.step():
            pass
        lane.release()
    sent = [
        json.loads(line) for path in out.glob("*.jsonl") for line in path.read_text().splitlines()
    ]
    return sorted((m["action"], m["identity"]) for m in sent)


@contextmanager
def _store_url(kind: str) -> Iterator[str | None]:
    """None: SQLite in the world's directory; else a fresh PostgreSQL database's URL."""
    if kind == "sqlite":
        yield None
        return
    with temporary_database() as conninfo:
        yield pg_url(conninfo)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_activation_computed_in_processes_of_its_own_equals_one_computed_here(
    tmp_path: Path, kind: str
) -> None:
    results = {}
    for where in ("here", "processes"):
        out = tmp_path / where / "out"
        out.parent.mkdir()
        with _store_url(kind) as url:
            results[where] = _computed(out, url, counted=where == "processes")
    members, delivered = results["processes"]
    assert members == sorted(_PLAYERS)
    assert delivered == [("add", customer) for customer in sorted(_PLAYERS)]
    assert results["processes"] == results["here"]


def _computed(
    out: Path, store_url: str | None, *, counted: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """The members and what their connection was sent, the pass computed here or (with
    `counted`) in processes of its own."""
    world = World(out.parent, _config(out), store_url)
    processes = _Counted(world) if counted else None
    try:
        audience_id = _activated(world)
        members = _settled(world, _pass(world, processes), audience_id)
        delivered = _delivered(world, out)
    finally:
        if processes is not None:
            processes.close()
        world.close()
    if processes is not None:
        # Every profile's page went to the processes (24 pages: 3 runs of 8 or more).
        assert len(processes.spans) == _CUSTOMERS
    return members, delivered


def test_shares_are_runs_of_neighbours_as_even_as_the_count_allows() -> None:
    spans: list[Span] = [(m, m + 1) for m in range(7)]
    assert shares(spans, 2) == [spans[:4], spans[4:]]
    assert shares(spans, 3) == [spans[:3], spans[3:5], spans[5:]]
    assert shares(spans[:1], 2) == [spans[:1]]
    assert shares([], 2) == []


def _children() -> list[int]:
    """The activation's processes: this process's children that run a pool's worker (not
    multiprocessing's resource tracker), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if parent == os.getpid() and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def test_processes_killed_between_runs_leave_their_spans_to_new_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    world = World(tmp_path, _config(out))
    processes = _Counted(world)
    try:
        audience_id = _activated(world)
        backfill = _pass(world, processes)
        backfill.run()  # a run of 8 pages or more: the processes start
        done = next(a for a in world.container.store.list_audiences() if a.id == audience_id)
        killed = _children()
        assert len(killed) == 2
        # Both yield the CPU to the server's own threads (once started: one the run did
        # not need may still be starting).
        niced = [min(os.getpriority(os.PRIO_PROCESS, 0) + NICENESS, 19)] * 2
        deadline = time.monotonic() + 20
        while [os.getpriority(os.PRIO_PROCESS, p) for p in killed] != niced:
            assert time.monotonic() < deadline, "the activation's processes were not niced"
            time.sleep(0.05)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while set(_children()) & set(killed):  # dead before the next run asks them
            assert time.monotonic() < deadline
            time.sleep(0.01)
        backfill.run()  # finds them dead: not a span done, the cursor where it was
        after = next(a for a in world.container.store.list_audiences() if a.id == audience_id)
        assert (after.backfill_from, after.backfill_done) == (
            done.backfill_from,
            done.backfill_done,
        )
        assert _settled(world, backfill, audience_id) == sorted(_PLAYERS)  # new processes
        assert not set(_children()) & set(killed)
    finally:
        processes.close()
        world.close()


# A process standing in for the server: it starts the activation's processes, prints
# their ids, and waits to be killed.
_SERVER = """
import sys, time
from pathlib import Path
from tests.integration import test_activation_processes as t
from tests.integration.forwarding_world import World

tmp = Path(sys.argv[1])
world = World(tmp, t._config(tmp / "out"))
t._activated(world)
processes = t._Counted(world)  # kept: an executor let go ends its processes itself
t._pass(world, processes).run()
print(" ".join(map(str, t._children())), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_processes_end_themselves_when_the_server_is_killed(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", _SERVER, str(tmp_path)]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE) as server:
        try:
            assert server.stdout is not None
            started = [int(pid) for pid in server.stdout.readline().split()]
            assert len(started) == 2
            assert all(_alive(pid) for pid in started)
        finally:
            server.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in started):
        assert time.monotonic() < deadline, f"outlived their server: {_described(started)}"
        time.sleep(0.05)


def _described(pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()[:120]
        except OSError:
            continue
        found.append(f"{pid}: {[x for x in status if x.startswith(('State', 'PPid'))]} {command!r}")
    return found
