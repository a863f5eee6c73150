"""Audience builder suggestions benchmark (UI-1): the latency of the values the builder
offers (`GET /ui/api/audiences/suggestions`: attribute keys, event names, identity types
... a workspace has seen), drawn from the estimator's sample of profiles and their logged
batches, on a store seeded by bench/estimate.py (N profiles, one batch of 10 events each).

    python bench/estimate.py --data-dir bench/out/suggest-sqlite --profiles 100000 --seed-only
    python bench/suggestions.py --data-dir bench/out/suggest-sqlite --calls 15

Each call is timed three ways: `read`, every call reading the sample and its batches again
(what the first question after 10 s costs); `sample_kept`, the estimator's sample and its
batches kept (as after an estimate) and the values gathered from them again; `kept`, the
answer kept as a server keeps it for 10 s. Wall and CPU time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audiences import MovableClock
from bench.common import kindred_src, machine
from bench.estimate import open_store
from kindred.services.audiences.estimates import AudienceEstimator
from kindred.services.audiences.suggestions import BuilderSuggestions


def timed(suggestions: BuilderSuggestions, workspaces: list[int], calls: int) -> dict[str, Any]:
    walls, cpus, answer = [], [], None
    for _ in range(calls):
        wall, cpu = time.perf_counter(), time.process_time()
        answer = suggestions.of(workspaces)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    assert answer is not None
    walls.sort()
    return {
        "wall_median_ms": round(statistics.median(walls), 1),
        "wall_p90_ms": round(walls[int(len(walls) * 0.9) - 1], 1),
        "wall_max_ms": round(walls[-1], 1),
        "cpu_median_ms": round(statistics.median(cpus), 1),
        "sampled_profiles": answer.sampled_profiles,
        "attribute_keys": len(answer.attribute_keys),
        "event_names": answer.event_names[:5],
        "identity_types": answer.identity_types,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    container = open_store(args.data_dir, args.store_url, MovableClock())
    workspaces = sorted(container.tenancy.workspaces)[:1]
    report: dict[str, Any] = {
        "kindred_src": kindred_src(),
        "machine": machine(),
        "profiles": container.store.count_profiles(),
        "store": "postgresql" if args.store_url else "sqlite",
        "workspaces": workspaces,
    }
    calculated = container.calculated.all
    every_time = AudienceEstimator(
        container.store, container.audience_registry, container.clock, kept_s=0
    )
    report["read"] = timed(
        BuilderSuggestions(every_time, container.tenancy, calculated, kept_s=0),
        workspaces,
        args.calls,
    )
    gathered = BuilderSuggestions(container.estimates, container.tenancy, calculated, kept_s=0)
    gathered.of(workspaces)  # the first question reads the sample; the next ones are timed
    report["sample_kept"] = timed(gathered, workspaces, args.calls)
    kept = BuilderSuggestions(container.estimates, container.tenancy, calculated)
    kept.of(workspaces)
    report["kept"] = timed(kept, workspaces, args.calls)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
