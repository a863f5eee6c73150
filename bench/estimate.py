"""Audience estimator benchmark (AUD-7): the latency of an estimate (median and spread over
repeated calls) and its error against the audience's true size, on a store of N profiles,
each with one stored batch of 10 events (bench/audiences.py's `seed_history`: user u is
tier bronze/silver/gold by u % 3, has `visits` u % 1000 and 3 plays stamped u % 30 days
ago).

    python bench/estimate.py --data-dir bench/out/estimate-sqlite --profiles 1000000
    python bench/estimate.py --data-dir D --profiles 100000 --store-url postgresql://...

A store with fewer than N profiles is seeded up to N first (`--seed-only` stops there);
one that has them is used as it is. The true sizes follow from the seed (`true_size`,
counted over the users 0..N-1); `--scan` also counts them by evaluating every profile
(the estimator with a sample of every profile, `exact`), a check of those formulas
(memory: every profile at once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audiences import DAY_MS, MovableClock, seed_history
from bench.common import CONFIG, batch_body, kindred_src, machine
from bench.compat import accepted, run_all
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.services.audiences.estimates import DEFAULT_SAMPLE, AudienceEstimator

GOLD: dict[str, object] = {"attribute": "tier", "op": "equals", "value": "gold"}
PLAYED: dict[str, object] = {
    "event": "custom_event",
    "name": "Play",
    "within_days": 14,
    "at_least": 3,
}

# name -> (criteria, whether user u is a member by the seed)
DEFINITIONS: dict[str, tuple[dict[str, object], Callable[[int], bool]]] = {
    "gold (attribute)": (GOLD, lambda u: u % 3 == 2),
    "3 plays in 14 days (events)": (PLAYED, lambda u: u % 30 < 14),
    "gold, played, not visits < 500": (
        {"and": [GOLD, PLAYED, {"exclude": {"attribute": "visits", "op": "lt", "value": 500}}]},
        lambda u: u % 3 == 2 and u % 30 < 14 and u % 1000 >= 500,
    ),
    "gold with visits 7 (1 in 3000)": (
        {"and": [GOLD, {"attribute": "visits", "op": "equals", "value": 7}]},
        lambda u: u % 3 == 2 and u % 1000 == 7,
    ),
}


def open_store(data_dir: str, store_url: str | None, clock: MovableClock) -> Container:
    env = {"KINDRED_STORE_URL": store_url} if store_url else {}
    container = build(load_settings(CONFIG, data_dir=data_dir, env=env), clock=clock)
    container.store.migrate()
    return container


def seeded(container: Container, profiles: int, clock: MovableClock) -> dict[str, Any]:
    """The store with users 0..profiles-1: those missing added (a store seeded to fewer is
    grown, as bench/audiences.py's `seed_history` would have seeded them)."""
    stored = container.store.count_profiles()
    if stored >= profiles:
        return {"profiles": stored, "seed_s": None}
    started = time.perf_counter()
    if stored == 0:
        seed_history(container, profiles, clock.now_ms())
    else:
        grow(container, stored, profiles, clock.now_ms())
    return {"profiles": profiles, "seed_s": round(time.perf_counter() - started, 1)}


def grow(container: Container, first: int, last: int, now: int) -> None:
    """Users first..last-1, each batch as `seed_history` makes it."""
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    for start in range(first, last, 2000):
        items = [
            accepted(source, batch_body(u, seq=u, now_ms=now - u % 30 * DAY_MS, events=10), now)
            for u in range(start, min(start + 2000, last))
        ]
        run_all(container, items)


def true_size(member: Callable[[int], bool], profiles: int) -> int:
    return sum(1 for u in range(profiles) if member(u))


def measure(
    estimator: AudienceEstimator, definition: AudienceDef, calls: int
) -> tuple[list[float], list[float], Any]:
    """Milliseconds of each of `calls` estimates after a first one (reported apart): wall
    time, and this process's CPU time (steadier on a shared machine)."""
    answer = None
    wall, cpu = [], []
    for _ in range(calls + 1):
        started, used = time.perf_counter(), time.process_time()
        answer = estimator.estimate(definition)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return wall, cpu, answer


def measure_warm(
    estimator: AudienceEstimator, definition: AudienceDef, calls: int
) -> tuple[list[float], list[float], list[float], Any]:
    """As `measure`, each estimate on a sample just refreshed as a server's background
    task refreshes it (`refresh`, timed apart: the background's cost, wall ms)."""
    answer = None
    wall, cpu, refreshed = [], [], []
    for _ in range(calls + 1):
        started = time.perf_counter()
        estimator.refresh()
        refreshed.append((time.perf_counter() - started) * 1000)
        started, used = time.perf_counter(), time.process_time()
        answer = estimator.estimate(definition)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return wall, cpu, refreshed, answer


def measure_contended(
    estimator: AudienceEstimator, definition: AudienceDef, calls: int
) -> tuple[list[float], list[float], Any]:
    """As `measure`, while another thread refreshes the samples without a pause (the
    worst case of a server's background refresh: one always in progress, sharing the
    interpreter with the estimate)."""
    stop = threading.Event()

    def refreshing() -> None:
        while not stop.is_set():
            estimator.refresh()

    estimator.refresh()
    thread = threading.Thread(target=refreshing, daemon=True)
    thread.start()
    try:
        return measure(estimator, definition, calls)
    finally:
        stop.set()
        thread.join()


def _spread(found: dict[str, Any], label: str, times: list[float], cpu: list[float]) -> None:
    steady = sorted(times[1:])
    found[f"{label}_median_ms"] = round(statistics.median(steady), 1)
    found[f"{label}_p10_p90_max_ms"] = [
        round(steady[len(steady) // 10], 1),
        round(steady[len(steady) * 9 // 10], 1),
        round(steady[-1], 1),
    ]
    found[f"{label}_median_cpu_ms"] = round(statistics.median(cpu[1:]), 1)


def run_one(
    container: Container, name: str, *, calls: int, sample: int, profiles: int, scan: bool
) -> dict[str, Any]:
    criteria, member = DEFINITIONS[name]
    definition = AudienceDef(name="", workspaces=[1], lookback_days=30, criteria=criteria)
    truth = true_size(member, profiles)
    found: dict[str, Any] = {"definition": name, "true_size": truth}
    # Every call reading the sample (kept_s=0, a process without the background refresh),
    # then calls reusing it (kept), then each call on a sample just refreshed (warm: a
    # server's estimates, the refresh being its background task), then calls while a
    # refresh is always in progress in another thread (contended: the worst case).
    answers: dict[str, Any] = {}
    labels = (("read", 0.0), ("kept", 3600.0), ("warm", 3600.0), ("contended", 3600.0))
    for label, kept_s in labels:
        estimator = AudienceEstimator(
            container.store,
            container.audience_registry,
            container.clock,
            sample_size=sample,
            kept_s=kept_s,
        )
        if label == "warm":
            times, cpu, refreshed, answer = measure_warm(estimator, definition, calls)
            found["refresh_median_ms"] = round(statistics.median(refreshed[1:]), 1)
            found["refresh_min_max_ms"] = [
                round(min(refreshed[1:]), 1),
                round(max(refreshed[1:]), 1),
            ]
        elif label == "contended":
            times, cpu, answer = measure_contended(estimator, definition, calls)
        else:
            times, cpu, answer = measure(estimator, definition, calls)
        _spread(found, label, times, cpu)
        answers[label] = answer
    # The same answer whichever way the sample was read (the store does not change here).
    found["warm_answers_as_read"] = (answers["warm"].estimate, answers["warm"].criteria) == (
        answers["read"].estimate,
        answers["read"].criteria,
    )
    found.update(
        {
            "estimate": answer.estimate,
            "shown": answer.shown,
            "interval_95": [answer.low, answer.high],
            "sampled_members": answer.sampled_members,
            "sample_size": answer.sample_size,
            "error_pct": (
                round((answer.estimate - truth) / truth * 100, 2)
                if answer.estimate is not None and truth
                else None
            ),
            "truth_in_interval": (
                answer.low <= truth <= answer.high if answer.low is not None else None
            ),
            "calls": calls,
        }
    )
    if scan:
        everyone = AudienceEstimator(
            container.store,
            container.audience_registry,
            container.clock,
            sample_size=profiles + 1,
        ).estimate(definition)
        found["scanned_size"] = everyone.estimate
    return found


def errors_by_sample(container: Container, profiles: int, sizes: list[int]) -> list[Any]:
    """The error (%) of one estimate of each definition at each sample size (nested
    samples: the smaller is the start of the larger)."""
    rows = []
    for name, (criteria, member) in DEFINITIONS.items():
        definition = AudienceDef(name="", workspaces=[1], lookback_days=30, criteria=criteria)
        truth = true_size(member, profiles)
        row: dict[str, Any] = {"definition": name, "true_size": truth}
        for size in sizes:
            answer = AudienceEstimator(
                container.store, container.audience_registry, container.clock, sample_size=size
            ).estimate(definition)
            row[str(size)] = (
                round((answer.estimate - truth) / truth * 100, 2)
                if answer.estimate is not None
                else answer.shown
            )
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--calls", type=int, default=30, help="estimates timed per definition")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="profiles sampled")
    parser.add_argument("--scan", action="store_true", help="also count every profile")
    parser.add_argument(
        "--error-sizes",
        default="1000,2500,5000,10000",
        help="sample sizes whose error is reported (comma-separated; empty: none)",
    )
    args = parser.parse_args()
    clock = MovableClock()
    container = open_store(args.data_dir, args.store_url, clock)
    report: dict[str, Any] = {"kindred_src": kindred_src()}
    report.update(seeded(container, args.profiles, clock))
    report["store"] = "postgresql" if args.store_url else "sqlite"
    if not args.seed_only:
        report["sample"] = args.sample
        report["results"] = [
            run_one(
                container,
                name,
                calls=args.calls,
                sample=args.sample,
                profiles=report["profiles"],
                scan=args.scan,
            )
            for name in DEFINITIONS
        ]
        sizes = [int(n) for n in args.error_sizes.split(",") if n]
        if sizes:
            report["error_pct_by_sample_size"] = errors_by_sample(
                container, report["profiles"], sizes
            )
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"] = machine()
    report["command"] = " ".join(["python", *sys.argv])
    container.store.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
