"""Live ingest while an audience is activated over the stored events (issue 18): a running
server takes batches at a fixed rate, open loop, and after `--activate-after` seconds an
audience with event criteria is created and activated (through the CLI, as an operator
would); the latency of the batches is reported before, during and after the activation's
pass, with the pass's wall time.

    cp -r D W && python bench/activation_ingest.py --data-dir W --rate 300 --duration 120

D is a store seeded by `bench/audiences.py --history` (its users are numbered from 0; the
returning share of batches picks among them). Every run sends request ids and new users no
run before it sent; the server's own count of batches applied and answered as duplicates
is reported, and a run with more than 1% duplicates fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CONFIG,
    EVENTS_HEAD,
    ServerProcess,
    batch_body,
    kindred_src,
    machine,
    percentile,
)
from bench.ingest import batches_by_status, check_applied, send_request
from kindred.storage.sqlite import SqliteStore

AUDIENCE = {
    "name": "bench activation under ingest",
    "workspaces": [1],
    "lookback_days": 30,
    "criteria": {"event": "custom_event", "name": "Play", "within_days": 14, "at_least": 3},
}


async def _drive(
    args: argparse.Namespace, port: int, answers: list[tuple[float, float, int]]
) -> None:
    """`rate * duration` batches, each answer kept as (when it was due, its latency, status)."""
    head = EVENTS_HEAD
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def connection(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        reader, writer = streams
        while (job := await queue.get()) is not None:
            due, body = job
            status = await send_request(reader, writer, head, body)
            answers.append((due, time.perf_counter() - due, status))
        writer.close()

    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(args.connections))
    )
    workers = [asyncio.create_task(connection(s)) for s in opened]
    seq_base = random.randrange(10**9, 2 * 10**9)  # request ids and new users of this run
    rng = random.Random(seq_base)
    new_user = args.profiles + seq_base
    now_ms = int(time.time() * 1000)
    for n in range(int(args.rate * args.duration)):
        due = args.started + n / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if rng.random() < args.returning:
            user = rng.randrange(args.profiles)
        else:
            user, new_user = new_user, new_user + 1
        queue.put_nowait((due, batch_body(user, seq=seq_base + n, now_ms=now_ms)))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


def _activate(args: argparse.Namespace, marks: dict[str, float]) -> None:
    """After `--activate-after` s: the audience created and activated through the CLI; then
    the instant its pass is through every profile."""
    time.sleep(max(0.0, args.started + args.activate_after - time.perf_counter()))
    env = {**os.environ, "PYTHONPATH": kindred_src()}
    where = ["--config", str(CONFIG), "--data-dir", args.data_dir]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(AUDIENCE, file)
    kindred = [sys.executable, "-m", "kindred.cli", "audiences"]
    made = subprocess.run(
        [*kindred, "create", file.name, *where], env=env, capture_output=True, check=True
    )
    audience_id = json.loads(made.stdout)["id"]
    marks["activated"] = time.perf_counter()
    subprocess.run(
        [*kindred, "activate", str(audience_id), *where], env=env, capture_output=True, check=True
    )
    store = SqliteStore(Path(args.data_dir) / "kindred.db")
    try:
        while True:
            found = next(a for a in store.list_audiences() if a.id == audience_id)
            if found.history_from is None and found.backfill_scope is None:
                marks["finished"] = time.perf_counter()
                marks["members_evaluated"] = float(found.backfill_done)
                return
            time.sleep(0.5)
    finally:
        store.close()


def _window(answers: list[tuple[float, float, int]], start: float, end: float) -> dict[str, Any]:
    latencies = sorted(lat * 1000 for due, lat, _ in answers if start <= due < end)
    if not latencies:
        return {"batches": 0}
    return {
        "batches": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "p999_ms": round(percentile(latencies, 0.999), 1),
        "max_ms": round(latencies[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="a seeded store's data dir (a copy)")
    parser.add_argument("--profiles", type=int, default=1_000_000, help="users seeded in it")
    parser.add_argument("--rate", type=float, default=300, help="batches per second")
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--activate-after", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--returning", type=float, default=0.7, help="share of known users")
    args = parser.parse_args()
    server = ServerProcess(data_dir=Path(args.data_dir))
    server.start()
    answers: list[tuple[float, float, int]] = []
    marks: dict[str, float] = {}
    try:
        args.started = time.perf_counter() + 1.0
        activation = threading.Thread(target=_activate, args=(args, marks), daemon=True)
        activation.start()
        asyncio.run(_drive(args, server.port, answers))
        activation.join(timeout=600)
        by_status = batches_by_status(server)
    finally:
        server.stop()
    end = args.started + args.duration
    activated, finished = marks.get("activated", end), marks.get("finished", end)
    statuses: dict[int, int] = {}
    for _, _, status in answers:
        statuses[status] = statuses.get(status, 0) + 1
    report = {
        "kindred_src": kindred_src(),
        "rate": args.rate,
        "statuses": statuses,
        # From the server's own metrics: applied, not answered as duplicates.
        "batches_by_status": by_status,
        "activation_s": round(finished - activated, 2) if "finished" in marks else None,
        "profiles_evaluated": int(marks.get("members_evaluated", 0)),
        "before": _window(answers, args.started, activated),
        "during": _window(answers, activated, finished),
        "after": _window(answers, finished, end),
        "machine": machine(),
        "command": " ".join(["python", *sys.argv]),
    }
    print(json.dumps(report, indent=2))
    check_applied(by_status)


if __name__ == "__main__":
    main()
