"""Privacy benchmark, in process on a real store: (a) erasure throughput, subjects erased a
second over a large store, each found by an identity as a data subject request names it;
(b) the retention sweep's cost per million stored events.

    python bench/privacy.py erasure --data-dir D --profiles 1000000 --subjects 2000
    python bench/privacy.py retention --profiles 100000            # 1M events, own store
    python bench/privacy.py retention --profiles 100000 --calculated  # with recomputation

(a) seeds D up to `--profiles` profiles (one batch each) the first time; later runs use it
as it is, and erase `--subjects` profiles picked at random among those still there, so a
store serves many runs. (b) seeds a fresh store with `--profiles` batches of 10 events,
moves the clock past the account's retention period and times the event sweep that deletes them
(with `--calculated`, a lifetime calculated attribute is active, so every profile the sweep
touches has it computed again).

Each run prints one JSON line: the figures, the machine, the command.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, batch_body, machine
from bench.compat import accepted, run_all
from bench.seed import seed
from kindred.attributes.definition import CalculatedDef
from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.services.privacy.bulk import IdentityName

DAY_MS = 86_400_000
# Subjects a bulk deletion call names (one call per group, as a client would send them).
CALL = 100


class MovableClock:
    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def _container(data_dir: str, store_url: str | None, clock: MovableClock) -> Container:
    env = {"KINDRED_STORE_URL": store_url} if store_url else {}
    settings = load_settings(CONFIG, data_dir=data_dir, env=env)
    container = build(settings, clock=clock)
    container.store.migrate()
    return container


def erasure(args: argparse.Namespace) -> dict[str, Any]:
    seed(args.data_dir, args.profiles, args.store_url)
    container = _container(args.data_dir, args.store_url, MovableClock())
    try:
        stored = container.store.count_profiles()
        # Users are seeded as 0..N-1 with customer id "user-<n>"; a random draw of them
        # (an erased one, from an earlier run, is simply not found).
        rng = random.Random(args.seed)
        users = rng.sample(range(args.profiles), args.subjects)
        per_call: list[float] = []
        found = 0
        started, cpu = time.perf_counter(), time.process_time()
        for first in range(0, len(users), CALL):
            names = [
                IdentityName(type="customerid", value=f"user-{u}")
                for u in users[first : first + CALL]
            ]
            t0 = time.perf_counter()
            done = container.bulk_delete.by_identities(1, names)
            per_call.append((time.perf_counter() - t0) / len(names) * 1e3)
            found += sum(entry.found for entry in done)
        wall = time.perf_counter() - started
        return {
            "bench": "erasure",
            "profiles_stored": stored,
            "subjects": len(users),
            "found": found,
            "subjects_per_s": round(len(users) / wall, 1),
            "cpu_ms_per_subject": round((time.process_time() - cpu) / len(users) * 1e3, 2),
            "ms_per_subject_median": round(statistics.median(per_call), 2),
            "ms_per_subject_range": [round(min(per_call), 2), round(max(per_call), 2)],
        }
    finally:
        container.store.close()


def _seed_events(container: Container, profiles: int, now: int) -> int:
    """Each profile one batch of 10 events; returns the events stored."""
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    for first in range(0, profiles, 2000):
        items = [
            accepted(source, batch_body(user, seq=user, now_ms=now, events=10), now)
            for user in range(first, min(first + 2000, profiles))
        ]
        run_all(container, items)
    return profiles * 10


def retention(args: argparse.Namespace) -> dict[str, Any]:
    clock = MovableClock()
    with tempfile.TemporaryDirectory(prefix="kindred-retention-") as tmp:
        container = _container(args.data_dir or tmp, args.store_url, clock)
        try:
            if args.calculated:
                made = container.calculated.create(
                    CalculatedDef(
                        name="plays_ever",
                        workspace_id=1,
                        draft={
                            "calculation_type": "count",
                            "event": {"event": "custom_event", "name": "Play"},
                            "window": {"type": "lifetime"},
                        },
                    )
                )
                container.calculated.activate(made.id)
            events = _seed_events(container, args.profiles, clock.now_ms())
            days = next(iter(container.tenancy.workspaces.values())).account.retention_days
            clock.offset_ms = (days + 1) * DAY_MS
            started, cpu = time.perf_counter(), time.process_time()
            # The event sweep alone: the lifetime sweep, which runs first on the timer, would
            # delete these profiles as a whole (none was updated within the period).
            report = container.retention.events.run()
            wall = time.perf_counter() - started
            cpu_s = time.process_time() - cpu
            pruned = report.pruned
            if pruned != args.profiles:
                raise RuntimeError(f"the sweep deleted {pruned} of {args.profiles} batches")
            return {
                "bench": "retention",
                "calculated": bool(args.calculated),
                "batches_pruned": pruned,
                "events_pruned": events,
                "recomputed": report.recomputed,
                "sweep_s": round(wall, 2),
                "s_per_million_events": round(wall / events * 1e6, 2),
                "cpu_s_per_million_events": round(cpu_s / events * 1e6, 2),
            }
        finally:
            container.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["erasure", "retention"])
    parser.add_argument("--data-dir", help="the store's data dir (erasure: seeded once)")
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--calculated", action="store_true")
    args = parser.parse_args()
    if args.what == "erasure" and not args.data_dir:
        parser.error("erasure needs --data-dir (the seeded store it erases from)")
    result = erasure(args) if args.what == "erasure" else retention(args)
    result["machine"] = machine()
    result["command"] = " ".join(["python", *sys.argv])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
