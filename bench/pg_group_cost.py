"""What a group of batches costs on PostgreSQL, in process (no HTTP, no load generator):
wall time per group, CPU of this process and of its PostgreSQL backend per batch.

The batches are bench/ingest.py's (10 events, 70% returning users of a seeded store,
request ids new every run), applied through the real write path in groups of `--group`
as the writer forms them under load. CPU time, unlike wall time, stays comparable on a
shared machine; wall time per group shows the round trips. Run it for a source tree with
`PYTHONPATH=<tree>/src` (bench/pg_scale.py seeds the database):

    python bench/pg_group_cost.py --database kindred_pgscale --profiles 200000 --group 32
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, batch_body, kindred_src
from bench.compat import accepted, run_all
from kindred.bootstrap import build
from kindred.config import load_settings


def _backend_ticks(database: str) -> int:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    ticks = 0
    for (pid,) in rows:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="kindred_pgscale")
    parser.add_argument("--profiles", type=int, default=200_000, help="seeded population")
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--groups", type=int, default=150)
    parser.add_argument("--returning", type=float, default=0.7)
    args = parser.parse_args()
    url = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    settings = load_settings(CONFIG, data_dir="/tmp/pg-group-cost", env={"KINDRED_STORE_URL": url})
    container = build(settings)
    container.store.migrate()  # as `kindred serve` does at start
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    rng = random.Random()
    base = (secrets.randbelow(2**20) + 1) << 28  # request ids and new users no run used
    new_user = args.profiles + base
    now = container.clock.now_ms()
    bodies = []
    for n in range(args.group * (args.groups + 10)):
        if rng.random() < args.returning:
            user = rng.randrange(args.profiles)
        else:
            user, new_user = new_user, new_user + 1
        bodies.append(batch_body(user, seq=base + n, now_ms=now))
    groups = [bodies[i : i + args.group] for i in range(0, len(bodies), args.group)]
    for group in groups[:10]:  # warm-up: connections open, statements prepared
        run_all(container, [accepted(source, b, now) for b in group])
    walls = []
    hz = os.sysconf("SC_CLK_TCK")
    cpu0, pg0 = time.process_time(), _backend_ticks(args.database)
    for group in groups[10:]:
        items = [accepted(source, b, now) for b in group]
        started = time.perf_counter()
        statuses = run_all(container, items)
        walls.append(time.perf_counter() - started)
        if set(statuses) != {"applied"}:
            raise RuntimeError(f"not every batch applied: {sorted(set(statuses))}")
    cpu, pg = time.process_time() - cpu0, (_backend_ticks(args.database) - pg0) / hz
    container.close()
    batches = args.group * args.groups
    print(
        json.dumps(
            {
                "kindred_src": kindred_src(),
                "group": args.group,
                "wall_ms_per_group_median": round(statistics.median(walls) * 1000, 2),
                "client_cpu_us_per_batch": round(cpu / batches * 1e6),
                "pg_backend_cpu_us_per_batch": round(pg / batches * 1e6),
                "loadavg": os.getloadavg()[0],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
