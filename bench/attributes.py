"""Calculated attribute benchmark, in process on a real SQLite store: (a) what 50 active
calculated attributes of mixed types and windows add to the ingest cost per event, (b) how
long activating one takes over the stored event history (every batch of the log read,
every profile computed and saved).

    python bench/attributes.py --profiles 20000 --history-batches 100000   # 1M events

(a) is measured twice: with definitions over the three event names every batch carries
(each batch folds into all 50: the worst case), and with the definitions spread over
`--vocabulary` event names of which each batch carries a few (about 16 of the 50 met per
batch), as definitions over an app's many events are.

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
from bench.common import CONFIG, kindred_src, machine
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


def definition_mix(n: int, vocabulary: int = 0) -> dict[str, Any]:
    """Definitions of every type over the bench's events, with every kind of window; with
    a `vocabulary` of event names, over those names in turn."""
    kind, attribute = _TYPES[n % len(_TYPES)]
    name = f"Action {n % vocabulary}" if vocabulary else _NAMES[n % 3]
    event: dict[str, Any] = {"event": "custom_event", "name": name}
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


def create_attributes(
    container: Container, count: int, prefix: str, vocabulary: int = 0
) -> list[int]:
    ids = []
    for n in range(count):
        made = container.calculated.create(
            CalculatedDef(name=f"{prefix}{n}", workspace_id=1, draft=definition_mix(n, vocabulary))
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
    report: dict[str, Any] = {
        "profiles": args.profiles,
        "kindred_src": kindred_src(),
        "machine": machine(),
    }
    base = secrets.randbits(40) << 20
    report["history_batches"] = args.history_batches
    report["history_events"] = args.history_batches * 10 + args.profiles
    report["history_store_s"] = round(
        history(container, args.history_batches, args.profiles, base), 1
    )

    report.update(activation_cost(container))

    # (a) the live path, for definitions that every batch meets and for definitions
    # spread over a vocabulary of event names
    report["every_batch_meets_every_definition"] = live_cost(container, args, base, 0)
    report[f"definitions_over_{args.vocabulary}_event_names"] = live_cost(
        container, args, base + 100_000_000, args.vocabulary
    )

    container.store.close()
    report["command"] = " ".join(["python", *sys.argv])
    return report


def activation_cost(container: Container) -> dict[str, Any]:
    """(b): one definition activated and computed over everything stored (before (a):
    profiles hold no other states), then deleted."""
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
    container.calculated.delete(one.id)
    return {
        "activation_profile_writes": computed,
        "activation_batches_read": progress.batches_read,
        "activation_s": round(seconds, 2),
        "activation_finished": progress.is_calculated,
    }


def live_cost(
    container: Container, args: argparse.Namespace, base: int, vocabulary: int
) -> dict[str, float]:
    """Ingest cost per event without calculated attributes and with `args.attributes`
    active ones: the same users, each with a batch a moment before each measured pass."""
    users, batches = args.profiles, args.batches

    def rate(seq0: int, user0: int | None = None) -> float:
        cost = ingest_rate(container, batches, users, seq0, user0, vocabulary=vocabulary)
        return cost.wall_us

    rate(base + 50_000_000)  # warm-up
    without = rate(base + 60_000_000, base + 50_000_000)
    ids = create_attributes(container, args.attributes, "bench_", vocabulary)
    first = rate(base + 70_000_000)
    steady = rate(base + 80_000_000, base + 70_000_000)
    for def_id in ids:
        container.calculated.delete(def_id)
    return {
        "ingest_us_per_event_without": round(without, 1),
        f"ingest_us_per_event_with_{len(ids)}": round(steady, 1),
        "added_us_per_event": round(steady - without, 1),
        "added_us_per_event_first_contact": round(first - without, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--history-batches", type=int, default=100_000)
    parser.add_argument("--attributes", type=int, default=50)
    parser.add_argument("--batches", type=int, default=5_000, help="batches of 10 events, each run")
    parser.add_argument(
        "--vocabulary", type=int, default=25, help="event names of the spread definitions"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kindred-attribute-bench-") as tmp:
        print(json.dumps(run(args, tmp), indent=2))


if __name__ == "__main__":
    main()
