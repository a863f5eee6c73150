"""Ingest benchmark: a separate load process drives a running Kindred server over HTTP.

It sends realistic batches (10 events, ~2 KB; a mix of returning users from the seeded
population and new users) at a fixed arrival rate, open loop, so latency is measured from
the moment each request was due (no coordinated omission). It reports events/s, batches/s,
p50/p99/p99.9 latency and the server's peak memory.

Every run sends request ids and new users no run before it sent (they derive from
`--run-id`, random unless given): a batch whose `source_request_id` the store has seen is
answered 202 as a duplicate without being applied, which is not the work measured here.
From the server's /metrics it reports how many batches were applied and how many were
duplicates (warm-up included), and exits non-zero when duplicates are over 1%.

    python bench/ingest.py --store sqlite --profiles 1000000 --rate 2000 --duration 60
    python bench/ingest.py --store postgres --profiles 1000000 --rate 1000 --duration 60
    python bench/ingest.py --profiles 1000000 --rate 2500 --writer-process both --rounds 3

With `--writer-process both` each round runs one `kindred serve` process, then one with
its writer process (`kindred serve --writer-process`), on the same store, and the summary
gives each figure's ratio per round (writer process over one process). The server's CPU
is that of its whole process tree, the writer process included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    EVENTS_HEAD,
    ServerProcess,
    batch_body,
    kindred_src,
    machine,
    percentile,
    pg_database,
    spread,
)
from bench.seed import seed

PG_BENCH_DATABASE = "kindred_bench"
# Sequence numbers (request ids) of run R are R * RUN_SPAN + 0, 1, ...; its new users are
# numbered from the seeded population's size up from there.
RUN_SPAN = 2**28
MAX_DUPLICATE_SHARE = 0.01


@dataclass
class BareIngest(ServerProcess):
    """bench/bare_ingest.py: the baseline (parse and 202), on the same port rules."""

    def command(self) -> list[str]:
        script = Path(__file__).parent / "bare_ingest.py"
        return [
            sys.executable,
            str(script),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    # (second of the run, latency) of the slowest requests: shows whether stalls are periodic
    slow: list[tuple[float, float]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    events: int = 0


async def send_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> int:
    writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def _connection(
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    queue: asyncio.Queue[tuple[float, bytes, int] | None],
    tally: Tally,
    head: bytes,
) -> None:
    reader, writer = streams
    while (job := await queue.get()) is not None:
        due, body, events = job
        status = await send_request(reader, writer, head, body)
        latency = time.perf_counter() - due
        tally.latencies.append(latency)
        if latency > 0.05:
            tally.slow.append((due, latency))
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if status == 202:
            tally.events += events
    writer.close()


async def drive(
    args: argparse.Namespace, port: int, seeded: int, tally: Tally, seq_base: int
) -> float:
    """Send `rate * duration` batches numbered from `seq_base`; new users are numbered
    from `seeded + seq_base`, so runs with disjoint sequence numbers meet different ones."""
    head = EVENTS_HEAD
    queue: asyncio.Queue[tuple[float, bytes, int] | None] = asyncio.Queue()
    # Connected before the first request is due: the schedule measures requests, not the
    # setting up of connections.
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(args.connections))
    )
    workers = [asyncio.create_task(_connection(s, queue, tally, head)) for s in opened]
    rng = random.Random(seq_base)
    new_user = max(seeded, 1) + seq_base
    total = int(args.rate * args.duration)
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    for n in range(total):
        due = started + n / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if seeded and rng.random() < args.returning:
            user = rng.randrange(seeded)
        else:
            user, new_user = new_user, new_user + 1
        queue.put_nowait((due, batch_body(user, seq=n + seq_base, now_ms=now_ms), 10))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return time.perf_counter() - started


def _stall_seconds(tally: Tally) -> dict[int, float]:
    """Second of the run -> worst latency (ms), for seconds that had requests over 50 ms."""
    if not tally.slow:
        return {}
    start = min(due for due, _ in tally.slow)
    worst: dict[int, float] = {}
    for due, latency in tally.slow:
        second = int(due - start)
        worst[second] = max(worst.get(second, 0.0), round(latency * 1000, 1))
    return worst


def _memory_sampler(server: ServerProcess, peaks: list[float], stop: asyncio.Event) -> None:
    async def sample() -> None:
        while not stop.is_set():
            peaks.append(server.rss_mb()[0])
            await asyncio.sleep(0.5)

    asyncio.get_event_loop().create_task(sample())


def slow_groups(server: ServerProcess) -> dict[str, int]:
    """From the server's `kindred_commit_seconds` histogram: how many commit groups took
    longer than 25, 50 and 100 ms, and how many there were (since it started). A group
    that stalls (a checkpoint, a collection) holds up every batch queued behind it."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("kindred_commit_seconds_bucket{"):
            labels, _, value = line.rpartition(" ")
            buckets[labels.split('le="', 1)[1].split('"', 1)[0]] = float(value)
    total = buckets.get("+Inf", 0.0)
    return {
        "groups": int(total),
        **{f"over_{ms}ms": int(total - buckets.get(le, total)) for ms, le in _SLOW_MARKS},
    }


_SLOW_MARKS = (("25", "0.025"), ("50", "0.05"), ("100", "0.1"))


def batches_by_status(server: ServerProcess) -> dict[str, int]:
    """The server's batch counter (`kindred_batches_total`) by status, over all inputs,
    since it started. With several workers: the one worker process that answered."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("kindred_batches_total{"):
            labels, _, value = line.rpartition(" ")
            status = labels.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0) + int(float(value))
    return counts


async def _run(
    args: argparse.Namespace, server: ServerProcess, seeded: int, run_id: int, name: str
) -> dict[str, object]:
    seq_base = run_id * RUN_SPAN
    warm_total = int(args.rate * args.warmup) if args.warmup > 0 else 0
    if seeded + warm_total + int(args.rate * args.duration) >= RUN_SPAN:
        raise SystemExit("--profiles plus the batches of one run must stay under 2**28")
    if warm_total:
        warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        await drive(warm, server.port, seeded, Tally(), seq_base=seq_base)
    tally = Tally()
    rss: list[float] = []
    stop = asyncio.Event()
    _memory_sampler(server, rss, stop)
    cpu_before = server.cpu_seconds()
    elapsed = await drive(args, server.port, seeded, tally, seq_base=seq_base + warm_total)
    cpu_s = server.cpu_seconds() - cpu_before
    stop.set()
    by_status = batches_by_status(server)
    lat = sorted(tally.latencies)
    ok = tally.statuses.get(202, 0)
    return {
        "server": name,
        "store": args.store,
        "server_workers": args.workers,
        "writer_process": name == "kindred-writer",
        "profiles_seeded": seeded,
        "target_batches_per_s": args.rate,
        "duration_s": round(elapsed, 1),
        "batches_per_s": round(ok / elapsed),
        "events_per_s": round(tally.events / elapsed),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "p999_ms": round(percentile(lat, 0.999) * 1000, 2),
        "statuses": tally.statuses,
        "seconds_with_requests_over_50ms": _stall_seconds(tally),
        "server_peak_rss_mb": round(server.rss_mb()[1], 1),
        # CPU (user + system) of the server's processes over the measured run, per batch
        # sent: the figure that stays comparable on a machine shared with other work
        "server_cpu_us_per_batch": round(cpu_s / max(len(lat), 1) * 1e6, 1),
        "load_average": os.getloadavg()[0],
        "run_id": run_id,
        # from the server's counters: warm-up and measured run (with several workers, one
        # worker's share)
        "server_batches_by_status": by_status,
        "server_commit_groups": slow_groups(server) if name == "kindred" else {},
        "server_batches_scope": "all" if args.workers == 1 else f"one of {args.workers} workers",
        "duplicate_share": round(_duplicate_share(by_status), 4),
        "kindred_src": kindred_src(),
        "machine": machine(),
    }


def _duplicate_share(by_status: dict[str, int]) -> float:
    return by_status.get("duplicate", 0) / max(sum(by_status.values()), 1)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--profiles", type=int, default=1_000_000, help="seeded population")
    parser.add_argument("--rate", type=float, default=2000, help="batches per second")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10, help="seconds at the rate, unmeasured")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--writer-process",
        choices=["off", "on", "both"],
        default="off",
        help="kindred serve --writer-process; both: each round one process first, then"
        " with the writer process, each server started for its run, and their ratios",
    )
    parser.add_argument("--returning", type=float, default=0.7, help="share of known users")
    parser.add_argument("--config", help="the server's config (default: bench/kindred-bench.toml)")
    parser.add_argument("--data-dir", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--fresh", action="store_true", help="start from an empty store")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run bench/bare_ingest.py (parse and 202), interleaved, and print ratios",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measured runs (run ids --run-id, +1, ...)"
    )
    parser.add_argument(
        "--run-id",
        type=int,
        default=secrets.randbelow(2**20) + 1,
        help="a number no earlier run on the store used (default: random); request ids and"
        " new users derive from it",
    )
    args = parser.parse_args()
    if not 1 <= args.run_id < 2**20 - args.rounds:
        raise SystemExit("--run-id must be between 1 and 2**20 - 1")
    return args


def main() -> None:
    args = _arguments()

    data_dir = Path(args.data_dir) / args.store
    store_url = None
    if args.fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.store == "postgres":
        store_url = pg_database(PG_BENCH_DATABASE, fresh=args.fresh)
    if args.profiles:
        seed(str(data_dir), args.profiles, store_url)
        os.sync()  # the seed's dirty pages must not be flushed during the measurement
    if args.writer_process == "both":
        results = _layout_rounds(args, data_dir, store_url)
        print(json.dumps(_summary(results), indent=2), flush=True)
        return
    server = _server(args, data_dir, store_url, writer_process=args.writer_process == "on")
    bare = BareIngest(data_dir, workers=args.workers) if args.baseline else None
    try:
        server.start()
        if bare:
            bare.start()
        results = _rounds(args, server, bare)
    finally:
        server.stop()
        if bare:
            bare.stop()
    if args.rounds > 1 or bare:
        print(json.dumps(_summary(results), indent=2), flush=True)


def _server(
    args: argparse.Namespace, data_dir: Path, store_url: str | None, *, writer_process: bool
) -> ServerProcess:
    env = {"KINDRED_WRITER_PROCESS": "1"} if writer_process else {}
    server = ServerProcess(data_dir, store_url, workers=args.workers, env=env)
    if args.config:
        server.config = Path(args.config)
    return server


def _layout_rounds(
    args: argparse.Namespace, data_dir: Path, store_url: str | None
) -> list[dict[str, object]]:
    """Each round: one process, then with the writer process, each on a server started
    for its run (the same store), so that the two alternate in one sitting."""
    results: list[dict[str, object]] = []
    run_id = args.run_id
    for _ in range(args.rounds):
        for name, writer_process in (("kindred", False), ("kindred-writer", True)):
            server = _server(args, data_dir, store_url, writer_process=writer_process)
            server.start()
            try:
                run = uvloop.run(_run(args, server, args.profiles, run_id, name))
            finally:
                server.stop()
            run_id += 1
            results.append(run)
            _print_run(run)
            _check_applied(run)
    return results


def _rounds(
    args: argparse.Namespace, server: ServerProcess, bare: BareIngest | None
) -> list[dict[str, object]]:
    """Each round: the baseline first (if any), then Kindred, interleaved."""
    results: list[dict[str, object]] = []
    for round_ in range(args.rounds):
        if bare:
            results.append(uvloop.run(_run(args, bare, 0, args.run_id + round_, "bare")))
            _print_run(results[-1])
        run = uvloop.run(_run(args, server, args.profiles, args.run_id + round_, "kindred"))
        results.append(run)
        _print_run(run)
        _check_applied(run)
    return results


def _print_run(run: dict[str, object]) -> None:
    print(json.dumps(run, indent=2), flush=True)


def _check_applied(run: dict[str, object]) -> None:
    by_status = run["server_batches_by_status"]
    assert isinstance(by_status, dict)
    check_applied(by_status)


def check_applied(by_status: dict[str, int]) -> None:
    """Fail loudly when the server applied nothing or answered too many as duplicates."""
    if not by_status.get("applied") or _duplicate_share(by_status) > MAX_DUPLICATE_SHARE:
        raise SystemExit(
            f"FAILED: the server counted batches {by_status}: over"
            f" {MAX_DUPLICATE_SHARE:.0%} duplicates (or none applied), so this run did not"
            " measure ingest; use a fresh --run-id (or none) or a fresh store"
        )


SUMMARY_FIGURES = ("batches_per_s", "p50_ms", "p99_ms", "p999_ms", "server_cpu_us_per_batch")


def _summary(results: list[dict[str, object]]) -> dict[str, object]:
    """Per server, the median [min, max] of each figure over the rounds; with a baseline,
    per round the ratio of Kindred's figure to the bare server's of the same round; with
    both layouts, per round the writer process's figure over one process's."""
    summary: dict[str, object] = {}
    for name in ("bare", "kindred", "kindred-writer"):
        runs = [r for r in results if r["server"] == name]
        if runs:
            summary[name] = {
                key: spread([_number(r[key]) for r in runs]) for key in SUMMARY_FIGURES
            }
    bare_runs = [r for r in results if r["server"] == "bare"]
    kindred_runs = [r for r in results if r["server"] == "kindred"]
    writer_runs = [r for r in results if r["server"] == "kindred-writer"]
    if bare_runs:
        summary["kindred_over_bare"] = _ratios(kindred_runs, bare_runs)
    if writer_runs:
        summary["writer_process_over_one_process"] = _ratios(writer_runs, kindred_runs)
    return summary


def _ratios(
    these: list[dict[str, object]], those: list[dict[str, object]]
) -> dict[str, dict[str, float]]:
    """Per figure, the spread over the rounds of this run's figure over that run's."""
    pairs = list(zip(these, those, strict=True))
    return {
        key: spread([_number(a[key]) / max(_number(b[key]), 1e-9) for a, b in pairs])
        for key in SUMMARY_FIGURES
    }


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


if __name__ == "__main__":
    main()
