"""Calculated attribute benchmark, in process on a real SQLite store: (a) what 50 active
calculated attributes of mixed types and windows add to the ingest cost per event, (b) how
long activating one takes over the stored event history (every batch of the log read,
every profile computed and saved).

    python bench/attributes.py --profiles 20000 --history-batches 100000   # 1M events

A temporary store is seeded first: `--profiles` users with one batch each, then
`--history-batches` batches of 10 events spread over them (the history the activation
reads), then the measured ingest passes.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audiences import MovableClock, ingest_rate, seed
from bench.common import CONFIG, machine
from kindred.attributes.definition import CalculatedDef
from kindred.bootstrap import Container, build
from kindred.config import load_settings

_NAMES = ("Play", "Search", "Share")
_TYPES: tuple[tuple[str, str | None], ...] = (
    ("count", None),
    ("sum", "length_s"),
    ("min", "length_s"),
    ("max", "length_s"),
    ("average", "length_s"),
    ("most_frequent", "song"),
    ("unique_values_count", "song"),
    ("unique_list", "genre"),
    ("first_occurrence", "song"),
    ("last_occurrence", "song"),
    ("first_occurrence_timestamp", None),
    ("last_occurrence_timestamp", None),
)


def definition_mix(n: int) -> dict[str, Any]:
    """Definitions of every type over the bench's events, with every kind of window."""
    kind, attribute = _TYPES[n % len(_TYPES)]
    event: dict[str, Any] = {"event": "custom_event", "name": _NAMES[n % 3]}
    if n % 4 == 1:
        event["where"] = [{"attribute": "length_s", "op": "gt", "value": 100 + n % 20}]
    window = (
        {"type": "lifetime"},
        {"type": "within", "days": 1 + n % 30},
        {"type": "since", "date": "2024-01-01"},
    )[n % 3]
    doc: dict[str, Any] = {"calculation_type": kind, "event": event, "window": window}
    if attribute is not None:
        doc["attribute"] = attribute
    return doc


def create_attributes(container: Container, count: int, prefix: str) -> list[int]:
    ids = []
    for n in range(count):
        made = container.calculated.create(
            CalculatedDef(name=f"{prefix}{n}", workspace_id=1, draft=definition_mix(n))
        )
        container.calculated.activate(made.id)
        ids.append(made.id)
    return ids


def history(container: Container, batches: int, users: int, seq0: int) -> float:
    """Store `batches` batches of 10 events; returns the seconds it took."""
    started = time.perf_counter()
    done = 0
    while done < batches:
        step = min(10_000, batches - done)
        ingest_rate(container, step, users, seq0=seq0 + done)
        done += step
    return time.perf_counter() - started


def run(args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    clock = MovableClock()
    container = build(load_settings(CONFIG, data_dir=data_dir, env={}), clock=clock)
    container.store.migrate()
    seed(container, args.profiles, clock.now_ms())
    report: dict[str, Any] = {"profiles": args.profiles, "machine": machine()}
    base = secrets.randbits(40) << 20
    report["history_batches"] = args.history_batches
    report["history_events"] = args.history_batches * 10 + args.profiles
    report["history_store_s"] = round(
        history(container, args.history_batches, args.profiles, base), 1
    )

    # (b) activation over everything stored (before (a): profiles hold no other states)
    one = container.calculated.create(
        CalculatedDef(
            name="plays_30d",
            workspace_id=1,
            draft={
                "calculation_type": "count",
                "event": {"event": "custom_event", "name": "Play"},
                "window": {"type": "within", "days": 30},
            },
        )
    )
    container.calculated.activate(one.id)
    started = time.perf_counter()
    computed = 0
    while not container.calculated.progress(one.id).is_calculated:
        computed += container.calculated_backfill.run()
    seconds = time.perf_counter() - started
    progress = container.calculated.progress(one.id)
    report["activation_profile_writes"] = computed
    report["activation_batches_read"] = progress.batches_read
    report["activation_s"] = round(seconds, 2)
    report["activation_finished"] = progress.is_calculated
    container.calculated.delete(one.id)

    # (a) the live path: the same users, a batch a moment before each measured pass
    users = args.profiles
    ingest_rate(container, args.batches, users, seq0=base + 50_000_000)  # warm-up
    without = ingest_rate(
        container, args.batches, users, seq0=base + 60_000_000, user0=base + 50_000_000
    )
    ids = create_attributes(container, args.attributes, "bench_")
    first = ingest_rate(container, args.batches, users, seq0=base + 70_000_000)
    steady = ingest_rate(
        container, args.batches, users, seq0=base + 80_000_000, user0=base + 70_000_000
    )
    report["ingest_us_per_event_without"] = round(without, 1)
    report[f"ingest_us_per_event_with_{len(ids)}"] = round(steady, 1)
    report["added_us_per_event"] = round(steady - without, 1)
    report["added_us_per_event_first_contact"] = round(first - without, 1)
    for def_id in ids:
        container.calculated.delete(def_id)

    container.store.close()
    report["command"] = " ".join(["python", *sys.argv])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--history-batches", type=int, default=100_000)
    parser.add_argument("--attributes", type=int, default=50)
    parser.add_argument("--batches", type=int, default=5_000, help="batches of 10 events, each run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kindred-attribute-bench-") as tmp:
        print(json.dumps(run(args, tmp), indent=2))


if __name__ == "__main__":
    main()
