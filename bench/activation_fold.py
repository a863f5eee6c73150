"""An activation's fold of one profile's logged batches into an audience's histories, in
process on a seeded store (`bench/audiences.py --history`): CPU microseconds a profile,
the page's way (the batches' event stamps read, the times trimmed into the histories).

    python bench/activation_fold.py --data-dir D                  # 20,000 profiles, 5 passes
    PYTHONPATH=<tree>/src python bench/activation_fold.py --data-dir D   # another tree

The store is only read. The history is the one `bench/audiences.py --history` activates:
plays (`custom_event:play`) within 30 days, 4 kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, kindred_src, machine
from kindred.audiences import history
from kindred.audiences.history import Histories, HistorySpec, histories_of
from kindred.bootstrap.stores import make_store
from kindred.config import load_settings
from kindred.domain.profile import Profile
from kindred.ports import LogEntry
from kindred.services.audiences import log_reading

DAY_MS = 86_400_000
INPUT = "bench-server"

Fold = Callable[[Sequence[LogEntry]], dict[str, list[int]] | None]


def page_fold(reading: log_reading.LogReading, some: Histories, now_ms: int) -> Fold:
    """The fold a page makes of one profile's batches, as the tree measured makes it."""
    empty = Profile(mpid=1, scope="bench", created_ms=now_ms, last_stored_ms=now_ms)
    fold_taken = getattr(history, "fold_taken", None)
    if fold_taken is not None:

        def by_stamps(logged: Sequence[LogEntry]) -> dict[str, list[int]] | None:
            taken = reading.taken(logged)
            return dict(fold_taken(empty.event_times, taken, some, now_ms)) if taken else None

        return by_stamps
    before = "fold_logged"  # the tree before 2026-12-07, 22:00 UTC
    folded = getattr(log_reading, before)

    def by_facts(logged: Sequence[LogEntry]) -> dict[str, list[int]] | None:
        batches = [(e.input, reading.events(e)) for e in logged]
        if not any(facts for _, facts in batches):
            return None
        return dict(folded(empty, some, batches, now_ms))

    return by_facts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="a store seeded with --history")
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    store = make_store(load_settings(CONFIG, data_dir=args.data_dir, env={}))
    spec = HistorySpec(
        "custom_event:play#0.0", "custom_event:play", None, frozenset({INPUT}), 30 * DAY_MS, 4
    )
    some = histories_of([spec])
    reading = log_reading.LogReading(some, lambda name: object() if name == INPUT else None)  # type: ignore[arg-type,return-value]
    page = store.profiles_between("a1", 0, None, args.profiles) or store.profiles_between(
        "a1", -(2**63), None, args.profiles
    )
    logged = store.log_for_mpid_range(page[0].mpid, page[-1].mpid, 2**62, stamped_bodies=False)
    by_mpid: dict[int, list[LogEntry]] = {}
    for entry in logged:
        if entry.mpid is not None:
            by_mpid.setdefault(entry.mpid, []).append(entry)
    groups = list(by_mpid.values())
    fold = page_fold(reading, some, time.time_ns() // 1_000_000)
    folded = sum(fold(g) is not None for g in groups)  # warm-up; the reading's lookups
    started = time.process_time()
    for _ in range(args.passes):
        for group in groups:
            fold(group)
    cpu = time.process_time() - started
    report = {
        "profiles": len(groups),
        "profiles_with_plays": folded,
        "fold_us_per_profile": round(cpu / args.passes / len(groups) * 1e6, 2),
        "kindred_src": kindred_src(),
        "machine": machine(),
        "command": " ".join(["python", *sys.argv]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
