"""PostgreSQL ingest as server processes are added: one process against two, interleaved.

Each round starts `kindred serve --workers W` on a database of its own (`--database`, not
the shared `kindred_bench`), drives it with bench/ingest.py's load (new request ids and new
users every round), and reports batches/s, latency, and the CPU seconds per second of the
Kindred processes and of the PostgreSQL backends serving them (and of all PostgreSQL
processes, WAL writer and checkpointer included), with the load average. Rounds alternate
(1, 2, 1, 2, ...), and with `--before <tree>` each round runs that tree's code then this
one's, so ratios come from the same sitting.

    python bench/pg_scale.py --profiles 200000 --rate 3000 --duration 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

import psycopg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PG_ADMIN_URL, ServerProcess, percentile, pg_database
from bench.ingest import RUN_SPAN, Tally, batches_by_status, drive
from bench.seed import seed


def _ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _backends(database: str) -> list[int]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _cpu(pids: list[int]) -> dict[int, int]:
    return {p: _ticks(p) for p in pids}


def _used(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds used between two readings by the processes alive at both."""
    ticks = sum(after[p] - before[p] for p in before if after.get(p))
    return ticks / os.sysconf("SC_CLK_TCK")


def _round(
    args: argparse.Namespace, url: str, workers: int, src: str | None, run_id: int
) -> dict[str, object]:
    server = ServerProcess(Path(args.data_dir), url, workers=workers, src=src)
    server.start()
    try:
        load = argparse.Namespace(
            rate=args.rate,
            duration=args.warmup,
            connections=args.connections,
            returning=args.returning,
        )
        seq_base = run_id * RUN_SPAN
        warm_total = int(args.rate * args.warmup)
        uvloop.run(drive(load, server.port, args.profiles, Tally(), seq_base))
        load.duration = args.duration
        backends = _backends(args.database)  # the pool's connections, open by now
        every_pg = _postgres_pids()
        kindred0, backends0, pg0 = server.cpu_seconds(), _cpu(backends), _cpu(every_pg)
        tally = Tally()
        elapsed = uvloop.run(drive(load, server.port, args.profiles, tally, seq_base + warm_total))
        kindred1, backends1, pg1 = server.cpu_seconds(), _cpu(backends), _cpu(every_pg)
        backends_used, pg_used = _used(backends0, backends1), _used(pg0, pg1)
        by_status = batches_by_status(server) if workers == 1 else {}
    finally:
        server.stop()
    lat = sorted(tally.latencies)
    ok = tally.statuses.get(202, 0)
    return {
        "tree": src or "this",
        "workers": workers,
        "batches_per_s": round(ok / elapsed),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 1),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
        "statuses": tally.statuses,
        "kindred_cpu": round((kindred1 - kindred0) / elapsed, 2),
        "pg_backends_cpu": round(backends_used / elapsed, 2),
        "pg_all_cpu": round(pg_used / elapsed, 2),
        "kindred_cpu_us_per_batch": round((kindred1 - kindred0) / max(ok, 1) * 1e6),
        "pg_backends_cpu_us_per_batch": round(backends_used / max(ok, 1) * 1e6),
        "loadavg": os.getloadavg()[0],
        "by_status_one_worker": by_status,
    }


def _summary(rows: list[dict[str, object]]) -> None:
    groups: dict[tuple[object, object], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((row["tree"], row["workers"]), []).append(row)
    for (tree, workers), found in groups.items():
        parts = []
        for key in ("batches_per_s", "p99_ms", "kindred_cpu", "pg_all_cpu"):
            values = [float(r[key]) for r in found]  # type: ignore[arg-type]
            parts.append(f"{key} {statistics.median(values):g} ({min(values):g}-{max(values):g})")
        print(f"{tree} workers={workers}: " + ", ".join(parts), flush=True)
    for tree in dict.fromkeys(r["tree"] for r in rows):
        ones = [r for r in rows if r["tree"] == tree and r["workers"] == 1]
        twos = [r for r in rows if r["tree"] == tree and r["workers"] == 2]
        ratios = [
            float(b["batches_per_s"]) / float(a["batches_per_s"])  # type: ignore[arg-type]
            for a, b in zip(ones, twos, strict=False)
        ]
        if ratios:
            print(
                f"{tree}: two processes / one, per round: {[round(r, 2) for r in ratios]},"
                f" median {statistics.median(ratios):.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="kindred_pgscale")
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=3000, help="batches/s offered")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--returning", type=float, default=0.7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="server processes, alternated")
    parser.add_argument("--before", help="a source tree (its src) run before this one each round")
    parser.add_argument("--data-dir", default=str(Path(__file__).parent / "out" / "pgscale"))
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="drop the database first (it is created when missing)",
    )
    args = parser.parse_args()

    url = pg_database(args.database, fresh=args.fresh)
    seed(args.data_dir, args.profiles, url)
    trees: list[str | None] = [args.before, None] if args.before else [None]
    rows: list[dict[str, object]] = []
    for _ in range(args.rounds):
        for workers in (int(w) for w in args.workers.split(",")):
            for tree in trees:
                # request ids and new users no earlier round used
                row = _round(args, url, workers, tree, secrets.randbelow(2**20) + 1)
                print(json.dumps(row), flush=True)
                rows.append(row)
                time.sleep(2)
    _summary(rows)


if __name__ == "__main__":
    main()
