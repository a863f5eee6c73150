"""Audience benchmark, in process on a real SQLite store: (a) what 100 active audiences of
mixed criteria add to the ingest cost per event, (b) how long the backfill of one new
audience takes over every stored profile, (c) how many profiles a second the time-trigger
scheduler re-evaluates.

    python bench/audiences.py --profiles 20000                 # a fresh store of its own
    python bench/audiences.py --data-dir bench/out/sqlite      # a seeded store (1M)
    python bench/audiences.py --data-dir bench/out/sqlite --backfill-only   # (b) alone
    python bench/audiences.py --history --profiles 100000    # (d) activation over stored events
    python bench/audiences.py --history --profiles 100000 --data-dir D   # (d), D seeded once
    python bench/audiences.py --history --data-dir D --in-process   # (d) on one core
    python bench/audiences.py --history --data-dir D --store-url postgresql://...   # (d), PG

With --data-dir the store is used as it is (the audiences it creates are deleted at the
end, their memberships stay in the log); without it a temporary store is seeded first.
With --history and --data-dir, a store without profiles is seeded first; one that has them
is used as it is (copy a seeded store aside to time activations over the same data).
The cyclic collector is set as `kindred serve` sets it (`--default-gc`: Python's defaults,
as every figure before 2026-12-06, 22:00 UTC was measured).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, batch_body, kindred_src, machine
from bench.compat import (
    accepted,
    audience_backfill,
    audience_scheduler,
    definitions_changed,
    due_profiles,
    run_all,
    serving_gc_thresholds,
)
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container, build
from kindred.config import load_settings

DAY_MS = 86_400_000
GROUP = 256


class MovableClock:
    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def criteria_mix(n: int, base: int) -> dict[str, Any]:
    """Criteria of the kinds real audiences use, varied by `n`; `base` is the id of the
    first audience (the later ones may nest earlier ones)."""
    kinds: list[dict[str, Any]] = [
        {"attribute": "tier", "op": "equals", "value": ("gold", "silver", "bronze")[n % 3]},
        {"attribute": "visits", "op": "gt", "value": n * 7 % 1000},
        {"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 1 + n % 5},
        {"event": "screen_view", "name": "Home", "within_days": 1 + n % 30},
        {
            "and": [
                {"attribute": "favorite_genres", "op": "includes", "value": "jazz"},
                {"consent": "gdpr", "purpose": "marketing", "state": "consented"},
            ]
        },
        {
            "or": [
                {"identity": "email", "op": "pattern", "value": f"user{n % 10}*"},
                {"device": "os_version", "op": "ge", "value": 17},
            ]
        },
        {"exclude": {"attribute": "newsletter", "op": "is_true"}},
        {"first_seen": "within_last_days", "value": 1 + n % 60},
        {"event": "custom_event", "name": "Search", "at_least": 2},
    ]
    if n % 10 == 9:
        return {
            "and": [
                {"audience": base + n - 8},
                {"attribute": "tier", "op": "not_equals", "value": "gold"},
            ]
        }
    return kinds[n % 10]


def seed(container: Container, profiles: int, now: int) -> None:
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    for first in range(0, profiles, 2000):
        items = []
        for user in range(first, min(first + 2000, profiles)):
            body = batch_body(user, seq=user, now_ms=now, events=1)
            items.append(accepted(source, body, now))
        run_all(container, items)


@dataclass(frozen=True)
class IngestCost:
    """Microseconds per event: wall time, and this process's CPU time (steadier than wall
    time on a shared machine: the ingest runs in this process's one thread)."""

    wall_us: float
    cpu_us: float


def ingest_rate(
    container: Container,
    batches: int,
    users: int,
    seq0: int,
    user0: int | None = None,
    *,
    vocabulary: int = 0,
) -> IngestCost:
    """Microseconds of ingest (decode + apply + commit) per event, over `batches` batches
    of 10 events for returning users, in groups as the writer forms them. `user0` picks
    the users (the same `user0`, the same users); by default `seq0` does. `vocabulary`:
    see `batch_body`."""
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    now = container.clock.now_ms()
    first = seq0 if user0 is None else user0
    bodies = [
        batch_body((first + n) * 7919 % users, seq=seq0 + n, now_ms=now, vocabulary=vocabulary)
        for n in range(batches)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    applied = 0
    for first in range(0, batches, GROUP):
        items = [accepted(source, b, now) for b in bodies[first : first + GROUP]]
        applied += sum(status == "applied" for status in run_all(container, items))
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    if applied != batches:
        raise RuntimeError(f"only {applied} of {batches} batches applied (request ids reused?)")
    events = batches * 10
    return IngestCost(elapsed / events * 1e6, cpu_s / events * 1e6)


def create_audiences(container: Container, count: int) -> list[int]:
    base = max((a.id for a in container.store.list_audiences()), default=0) + 1
    ids = []
    for n in range(count):
        made = container.audiences.create(
            AudienceDef(name=f"bench {n}", workspaces=[1], criteria=criteria_mix(n, base))
        )
        container.audiences.set_status(made.id, "active")
        ids.append(made.id)
    return ids


def settle_backfills(container: Container, clock: MovableClock) -> None:
    """Run every pending audience backfill to its end."""
    backfill = audience_backfill(container, clock, chunks_per_run=10**9)
    for _ in range(1_000):
        pending = [
            a
            for a in container.store.list_audiences()
            if a.status == "active"
            and (a.backfill_scope is not None or getattr(a, "history_from", None) is not None)
        ]
        if not pending:
            return
        backfill.run()
    raise RuntimeError("the audience backfills did not finish")


def retire_audiences(container: Container) -> int:
    """Delete the audiences the store holds (an earlier run cut short leaves some active),
    nesting ones first; returns how many."""
    live = [a for a in container.store.list_audiences() if a.status != "deleted"]
    for audience in sorted(live, key=lambda a: -a.id):
        container.store.save_audience(msgspec.structs.replace(audience, status="deleted"))
    definitions_changed(container)
    return len(live)


def _due(container: Container, now: int) -> list[int]:
    """MPIDs whose audience due time has come (read straight from the store)."""
    return [p.mpid for p in due_profiles(container, now)]


def seed_history(container: Container, profiles: int, now: int) -> int:
    """Each profile one batch of 10 events (3 plays), stamped 0 to 29 days ago; returns
    how many events were stored."""
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    for first in range(0, profiles, 2000):
        items = []
        for user in range(first, min(first + 2000, profiles)):
            body = batch_body(user, seq=user, now_ms=now - user % 30 * DAY_MS, events=10)
            items.append(accepted(source, body, now))
        run_all(container, items)
    return profiles * 10


def history(
    container: Container, clock: MovableClock, *, chunks_per_run: int, processes: bool
) -> dict[str, Any]:
    """(d): one new audience with event criteria over every stored profile and its stored
    events: its histories folded from the event log, then its memberships; run by runs of
    `chunks_per_run` pages as the server runs it (40 a run), back to back."""
    report: dict[str, Any] = {}
    one = container.audiences.create(
        AudienceDef(
            name="bench history",
            workspaces=[1],
            lookback_days=30,
            criteria={"event": "custom_event", "name": "Play", "within_days": 14, "at_least": 3},
        )
    )
    container.audiences.set_status(one.id, "active")
    backfill = audience_backfill(container, clock, chunks_per_run, processes=processes)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu = time.perf_counter(), time.process_time()
    runs = 0
    while _pending(container, one.id):  # the fold of the log, then the memberships
        backfill.run()
        runs += 1
    seconds = time.perf_counter() - started
    own_cpu = time.process_time() - cpu
    # The activation's processes, ended so that their CPU time is counted.
    spans = getattr(container, "activation_processes", None)
    if spans is not None:
        spans.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    report["history_activation_s"] = round(seconds, 2)
    report["history_activation_runs"] = runs
    # CPU time of this process (all its threads) and of the activation's processes:
    # steadier than wall time on a shared machine.
    report["history_activation_cpu_s"] = round(own_cpu + children_cpu, 2)
    report["history_activation_processes_cpu_s"] = round(children_cpu, 2)
    report["history_members"] = container.audiences.metrics(one.id).size
    container.audiences.delete(one.id)
    return report


def _pending(container: Container, audience_id: int) -> bool:
    found = next(a for a in container.store.list_audiences() if a.id == audience_id)
    return found.status == "active" and (
        found.backfill_scope is not None or getattr(found, "history_from", None) is not None
    )


def run(args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    clock = MovableClock()
    settings = load_settings(CONFIG, data_dir=data_dir, env={})
    if args.store_url:
        store = msgspec.structs.replace(settings.store, url=args.store_url)
        settings = msgspec.structs.replace(settings, store=store)
    if args.activation_processes is not None:
        audiences = msgspec.structs.replace(
            settings.audiences, activation_processes=args.activation_processes
        )
        settings = msgspec.structs.replace(settings, audiences=audiences)
    container = build(settings, clock=clock)
    container.store.migrate()
    thresholds = None if args.default_gc else serving_gc_thresholds()
    if thresholds is not None:
        # As `kindred serve` runs: what start-up built frozen, the serving thresholds.
        gc.freeze()
        gc.set_threshold(*thresholds)
    args.gc = "default" if thresholds is None else "serving"
    if args.history:
        stored = container.store.count_profiles()
        found: dict[str, Any] = {"kindred_src": kindred_src()}
        if stored:
            found.update({"profiles": stored, "events_stored": stored * 10, "seed_s": None})
        else:
            started = time.perf_counter()
            events = seed_history(container, args.profiles, clock.now_ms())
            seeded = time.perf_counter() - started
            found.update({"profiles": args.profiles, "events_stored": events})
            found["seed_s"] = round(seeded, 1)
        found.update(
            history(
                container,
                clock,
                chunks_per_run=args.chunks_per_run,
                processes=not args.in_process,
            )
        )
        found["machine"] = machine()
        found["gc"] = args.gc
        found["command"] = " ".join(["python", *sys.argv])
        container.store.close()
        return found
    if args.profiles and not args.data_dir:
        seed(container, args.profiles, clock.now_ms())
    stored = container.store.count_profiles()
    users = min(stored, args.profiles or stored)
    report: dict[str, Any] = {
        "profiles_stored": stored,
        "kindred_src": kindred_src(),
        "machine": machine(),
        "gc": args.gc,
    }
    report["audiences_deleted_first"] = retire_audiences(container)
    if not args.backfill_only:
        report.update(live_and_time_trigger(container, clock, args, users))
    report.update(backfill(container, clock))
    container.store.close()
    report["command"] = " ".join(["python", *sys.argv])
    return report


def live_and_time_trigger(
    container: Container, clock: MovableClock, args: argparse.Namespace, users: int
) -> dict[str, Any]:
    """(a) and (c); the audiences they create are deleted at the end."""
    report: dict[str, Any] = {}
    # Request ids must be new to the store, or the batches are answered as duplicates.
    base = secrets.randbits(40) << 20
    # Every measured pass sends to users who had a batch a moment before (warm caches).
    ingest_rate(container, args.batches, users, seq0=base)  # warm-up, unmeasured
    without = ingest_rate(container, args.batches, users, seq0=base + 10_000_000, user0=base)
    ids = create_audiences(container, args.audiences)
    # Their backfills run to their end first: an audience with event criteria is `warming`
    # until then, and ingest would leave it out. The first measured pass brings each
    # user's histories and memberships up to the batches of the warm-up; the second is the
    # steady state, where memberships change rarely.
    started = time.perf_counter()
    settle_backfills(container, clock)
    report["audience_backfills_s"] = round(time.perf_counter() - started, 1)
    first = ingest_rate(container, args.batches, users, seq0=base + 20_000_000)
    steady = ingest_rate(
        container, args.batches, users, seq0=base + 30_000_000, user0=base + 20_000_000
    )
    report["ingest_us_per_event_without_audiences"] = round(without.wall_us, 1)
    report[f"ingest_us_per_event_with_{len(ids)}_audiences"] = round(steady.wall_us, 1)
    report["added_us_per_event"] = round(steady.wall_us - without.wall_us, 1)
    report["added_us_per_event_first_contact"] = round(first.wall_us - without.wall_us, 1)
    report["ingest_cpu_us_per_event_without_audiences"] = round(without.cpu_us, 1)
    report[f"ingest_cpu_us_per_event_with_{len(ids)}_audiences"] = round(steady.cpu_us, 1)
    report["added_cpu_us_per_event"] = round(steady.cpu_us - without.cpu_us, 1)

    # (c) eight days later, every "last N days" membership of those audiences is due
    clock.offset_ms += 8 * DAY_MS
    scheduler = audience_scheduler(container, clock)
    due = sum(1 for p in _due(container, clock.now_ms()))
    started = time.perf_counter()
    moved = scheduler.run()
    seconds = time.perf_counter() - started
    report["time_trigger_profiles_due"] = due
    report["time_trigger_membership_changes"] = moved
    report["time_trigger_s"] = round(seconds, 2)
    report["time_trigger_profiles_per_s"] = round(due / seconds) if seconds else None
    for audience_id in reversed(ids):
        container.audiences.delete(audience_id)
    return report


def backfill(container: Container, clock: MovableClock) -> dict[str, Any]:
    """(b): one new audience over every stored profile, deleted at the end."""
    report: dict[str, Any] = {}
    one = container.audiences.create(
        AudienceDef(name="bench backfill", workspaces=[1], criteria=criteria_mix(0, 0))
    )
    container.audiences.set_status(one.id, "active")
    backfill = audience_backfill(container, clock, chunks_per_run=10**9)
    started = time.perf_counter()
    evaluated = backfill.run()
    seconds = time.perf_counter() - started
    report["backfill_profiles"] = evaluated
    report["backfill_s"] = round(seconds, 2)
    report["backfill_profiles_per_s"] = round(evaluated / seconds) if seconds else None
    report["backfill_members"] = container.audiences.metrics(one.id).size
    container.audiences.delete(one.id)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="a seeded store's data dir (default: a new one)")
    parser.add_argument("--profiles", type=int, default=20_000, help="profiles to seed (new store)")
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--batches", type=int, default=5_000, help="batches of 10 events, each run")
    parser.add_argument(
        "--backfill-only", action="store_true", help="measure (b) alone, in a fresh process"
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="(d) alone: a new store of --profiles profiles with 10 stored events each",
    )
    parser.add_argument(
        "--chunks-per-run",
        type=int,
        default=40,
        help="(d): pages of 500 profiles an activation's run takes (the server's: 40)",
    )
    parser.add_argument(
        "--store-url",
        help="a PostgreSQL store (postgresql://...) instead of SQLite in the data dir",
    )
    parser.add_argument(
        "--activation-processes",
        type=int,
        help="(d): audiences.activation_processes (default: the configuration's)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="(d): every page computed in this process (audiences.activation_processes = 0)",
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="Python's default collector thresholds (before 2026-12-06 every figure used"
        " them), not those kindred serve sets",
    )
    args = parser.parse_args()
    if args.data_dir:
        print(json.dumps(run(args, args.data_dir), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="kindred-audience-bench-") as tmp:
        print(json.dumps(run(args, tmp), indent=2))


if __name__ == "__main__":
    main()
