"""What the estimator's background refresh costs the server that runs it: the CPU of each
refresh of every scope (the refreshing thread's own time) and its longest slice of work
without a pause, during which it competes with ingest and reads for the interpreter.

It builds the services on a seeded store (bench/seed.py; SQLite in `--data-dir`, or
PostgreSQL with `--store-url`) as a server does, with the server's pause replaced by a
marker, and runs `--runs` refreshes in a row: the first reads and decodes everything, the
later ones what changed. Run it against a source tree with `PYTHONPATH=<tree>/src`; a tree
whose estimator takes no pause reports each refresh as one slice.

    python bench/estimate_refresh.py --data-dir bench/out/sqlite --runs 8
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from bench.common import CONFIG, kindred_src, machine, spread
from kindred.bootstrap import build
from kindred.config import load_settings
from kindred.services.audiences.estimates import AudienceEstimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    env = {"KINDRED_STORE_URL": args.store_url} if args.store_url else {}
    container = build(load_settings(CONFIG, data_dir=args.data_dir, env=env))
    marks: list[float] = []
    # A tree before the pause existed takes none (bench/compat.py's way of asking).
    options: dict[str, Any] = {}
    if "pause" in inspect.signature(AudienceEstimator).parameters:
        options["pause"] = lambda: marks.append(time.thread_time())
    estimator = AudienceEstimator(
        container.store,
        container.audience_registry,
        container.clock,
        sample_size=container.settings.audiences.estimate_sample,
        **options,
    )
    cpu_ms, slice_ms = [], []
    for _ in range(args.runs):
        marks.clear()
        started = time.thread_time()
        estimator.refresh()
        points = [started, *marks, time.thread_time()]
        cpu_ms.append((points[-1] - started) * 1000)
        slice_ms.append(max(b - a for a, b in itertools.pairwise(points)) * 1000)
    container.close()
    later = slice(1, None)
    print(
        json.dumps(
            {
                "kindred_src": kindred_src(),
                "store": "postgres" if args.store_url else "sqlite",
                "first_refresh_cpu_ms": round(cpu_ms[0], 1),
                "first_refresh_longest_slice_ms": round(slice_ms[0], 1),
                "later_refresh_cpu_ms": spread(cpu_ms[later], 1),
                "later_refresh_longest_slice_ms": spread(slice_ms[later], 1),
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
