"""Scale-out benchmark (issue 23): batches/s and p99 of today's single process against
roles api + worker over the batch log (1 API + 1 worker, 2 + 2), and the CPU each role
spends per batch, measured interleaved in one sitting.

Each run gets a fresh PostgreSQL database and a JetStream stream of its own. `wrk`
(bench/events.lua, closed loop) sends batches of 3 events for a while; then the bench
waits until every batch answered 202 is in the event log. It reports:

- accepted/s: batches answered 202 per second while wrk ran (for role api: appended to
  the log; for the single process: committed);
- applied/s: batches in the event log per second from wrk's start until the last was
  applied (the sustained rate: what workers keep up with);
- p50/p99 of the 202;
- CPU milliseconds per batch of each party: the API processes, the workers, PostgreSQL,
  nats-server (the whole server; other users of it count too), over the run and drain.

    PYTHONPATH=src python bench/scale.py --rounds 3 --duration 15
    PYTHONPATH=src python bench/scale.py --chaos 10     # kill -9 trials (tests/e2e/test_roles.py)
    PYTHONPATH=src python bench/scale.py --pg-cut 60    # PostgreSQL away for 60 s
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import AUTH, CONFIG, ServerProcess, machine
from bench.wrk import (
    machine_busy_seconds,
    postgres_cpu_seconds,
    process_cpu_seconds,
    run_wrk,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LUA = Path(__file__).with_name("events.lua")
LAYOUTS = {"single": (0, 0), "1api+1worker": (1, 1), "2api+2workers": (2, 2)}


@dataclass
class Layout:
    name: str
    apis: int
    workers: int


def _config(directory: Path, nats: str, partitions: int, replicas: int) -> Path:
    tag = uuid.uuid4().hex[:10]
    stream = (
        f'\n[stream]\nurl = "{nats}"\nname = "KINDRED_SCALE_{tag}"\n'
        f'subject_prefix = "kindred.scale.{tag}"\npartitions = {partitions}\n'
        f"replicas = {replicas}\n"
    )
    text = CONFIG.read_text()
    head, sep, rest = text.partition("[org]")
    path = directory / "kindred.toml"
    path.write_text(head + stream + "\n" + sep + rest)
    return path


def _count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM event_log").fetchone()
    return int(row[0]) if row else 0


def _wrk(port: int, args: argparse.Namespace, seconds: int, run: str) -> dict[str, Any]:
    token = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    command = [
        args.wrk, "-t2", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA), f"http://127.0.0.1:{port}", "--", token, str(args.users), run,
    ]  # fmt: skip
    return run_wrk(command, "EVENTS_RESULT ")


def run_layout(layout: Layout, args: argparse.Namespace) -> dict[str, Any]:
    db = f"kindred_scale_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {db}")
    url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), args.nats, args.partitions, args.replicas)
        servers = _servers(layout, Path(tmp), url, config)
        try:
            for server in servers:
                server.start()
            front = servers[0]
            _wrk(front.port, args, args.warmup, f"w{uuid.uuid4().hex[:6]}")
            _drain(url, None, 120)
            return _measure(layout, servers, url, args)
        finally:
            for server in servers:
                server.stop()
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _servers(layout: Layout, tmp: Path, url: str, config: Path) -> list[ServerProcess]:
    if layout.apis == 0:
        return [ServerProcess(tmp / "single", url, config=config, env={"KINDRED_ROLE": "all"})]
    apis = ServerProcess(
        tmp / "api", url, workers=layout.apis, config=config, env={"KINDRED_ROLE": "api"}
    )
    workers = [
        ServerProcess(tmp / f"worker{n}", url, config=config, env={"KINDRED_ROLE": "worker"})
        for n in range(layout.workers)
    ]
    return [apis, *workers]


def _drain(url: str, wanted: int | None, timeout_s: float) -> float:
    """Waits until the event log holds `wanted` rows (None: until it stops growing);
    the seconds waited."""
    started = time.perf_counter()
    last, still = -1, 0
    while time.perf_counter() - started < timeout_s:
        now = _count(url)
        if wanted is not None and now >= wanted:
            break
        still = still + 1 if now == last else 0
        if wanted is None and still >= 10:
            break
        last = now
        time.sleep(0.1)
    return time.perf_counter() - started


def _measure(
    layout: Layout, servers: list[ServerProcess], url: str, args: argparse.Namespace
) -> dict[str, Any]:
    before_rows = _count(url)
    cpu = [s.cpu_seconds() for s in servers]
    pg, nats = postgres_cpu_seconds(), process_cpu_seconds("nats-server")
    busy = machine_busy_seconds()
    started = time.perf_counter()
    result = _wrk(servers[0].port, args, args.duration, f"m{uuid.uuid4().hex[:6]}")
    wrk_wall = time.perf_counter() - started
    accepted = int(result["statuses"].get("202", 0))
    drain = _drain(url, before_rows + accepted, 300)
    total_wall = time.perf_counter() - started
    applied = _count(url) - before_rows
    used = [s.cpu_seconds() - c for s, c in zip(servers, cpu, strict=True)]
    pg, nats = postgres_cpu_seconds() - pg, process_cpu_seconds("nats-server") - nats
    busy = machine_busy_seconds() - busy
    per_batch = 1000 / max(applied, 1)
    report = {
        "layout": layout.name,
        "accepted": accepted,
        "applied": applied,
        "other_statuses": {k: v for k, v in result["statuses"].items() if k != "202"},
        "accepted_per_s": round(accepted / wrk_wall),
        "applied_per_s": round(applied / total_wall),
        "drain_s": round(drain, 1),
        "p50_ms": round(result["latency_us"]["p50"] / 1000, 2),
        "p99_ms": round(result["latency_us"]["p99"] / 1000, 2),
        "cpu_ms_per_batch": {
            "postgres": round(pg * per_batch, 3),
            "nats": round(nats * per_batch, 3),
            "machine": round(busy * per_batch, 3),
        },
    }
    if layout.apis == 0:
        report["cpu_ms_per_batch"]["single"] = round(used[0] * per_batch, 3)
    else:
        report["cpu_ms_per_batch"]["api"] = round(used[0] * 1000 / max(accepted, 1), 3)
        report["cpu_ms_per_batch"]["worker"] = round(sum(used[1:]) * per_batch, 3)
    return report


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per layout: median [min, max] of each figure."""
    out: dict[str, Any] = {}
    for name in LAYOUTS:
        mine = [r for r in runs if r["layout"] == name]
        if not mine:
            continue
        figures: dict[str, Any] = {}
        for key in ("accepted_per_s", "applied_per_s", "p50_ms", "p99_ms", "drain_s"):
            values = [r[key] for r in mine]
            figures[key] = [statistics.median(values), min(values), max(values)]
        for role in mine[0]["cpu_ms_per_batch"]:
            values = [r["cpu_ms_per_batch"][role] for r in mine]
            figures[f"cpu_ms_{role}"] = [statistics.median(values), min(values), max(values)]
        out[name] = figures
    return out


def chaos(trials: int) -> None:
    """The kill -9 end-to-end test, `trials` times (pytest runs it once)."""
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/e2e/test_roles.py", "-k", "kill_9",
    ]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    passed = 0
    for trial in range(trials):
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root)
        ok = done.returncode == 0
        passed += ok
        print(json.dumps({"trial": trial, "passed": ok, "tail": done.stdout[-300:]}), flush=True)
        if not ok:
            print(done.stdout, file=sys.stderr, flush=True)
    print(json.dumps({"trials": trials, "passed": passed}))


def pg_cut(seconds: float) -> None:
    """PostgreSQL cut for `seconds` during ingest (1 API + 1 worker, a proxy in front of
    the database): every answer while it is away, and whether everything answered 202 was
    applied exactly once, in order, after it is back."""
    from tests.e2e.scaleout import (  # noqa: PLC0415 - the e2e tests' helpers
        PgProxy,
        Sender,
        check_applied,
        role_server,
        stream_section,
    )

    proxy = PgProxy()
    stream, _ = stream_section("nats://127.0.0.1:4222")
    db = f"kindred_cut_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {db}")
    direct = f"postgresql://postgres@127.0.0.1:5432/{db}"
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{db}"
    with tempfile.TemporaryDirectory() as tmp:
        api = role_server(Path(tmp), "api", "api", url, stream)
        worker = role_server(Path(tmp), "worker", "worker", url, stream)
        api.start()
        worker.start()
        sender = Sender(lambda: [api.url], users=8)
        try:
            sender.start()
            time.sleep(3)
            before = sender.snapshot()
            proxy.cut()
            time.sleep(seconds)
            during = {k: v for k, v in sender.snapshot().items() if k not in before}
            proxy.restore()
            back = time.perf_counter()
            time.sleep(5)
            sender.stop()
            wanted = sum(1 for v in sender.answers.values() if v == 202)
            _drain(direct, wanted, 300)
            caught_up = time.perf_counter() - back
            with psycopg.connect(direct) as conn:
                rows = conn.execute("SELECT body FROM event_log ORDER BY id").fetchall()
            applied = []
            for (body,) in rows:
                doc = json.loads(bytes(body))
                applied.append((doc["user_identities"]["customer_id"], doc["user_attributes"]["n"]))
            counts = check_applied(sender.answers, applied)
            statuses: dict[int, int] = {}
            for status in during.values():
                statuses[status] = statuses.get(status, 0) + 1
            print(json.dumps({
                "cut_s": seconds,
                "answers_while_cut": statuses,
                "caught_up_s_after_restore": round(caught_up, 1),
                **counts,
                "exactly_once_in_order": True,
            }))  # fmt: skip
        finally:
            sender.stop()
            api.stop()
            worker.stop()
            proxy.cut()
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="measured seconds of wrk")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--replicas", type=int, default=1, help="the stream's replicas")
    parser.add_argument("--wrk", default="wrk")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--chaos", type=int, default=0, help="kill -9 trials instead")
    parser.add_argument("--pg-cut", type=float, default=0, help="cut PostgreSQL this long")
    args = parser.parse_args()
    if args.chaos:
        chaos(args.chaos)
        return
    if args.pg_cut:
        pg_cut(args.pg_cut)
        return
    names = args.layouts.split(",")
    print(json.dumps({"machine": machine(), "load": os.getloadavg()}), flush=True)
    runs = []
    for round_no in range(args.rounds):
        # Interleaved, each round in another order: drift in the machine's load spreads
        # over every layout alike.
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            apis, workers = LAYOUTS[name]
            run = run_layout(Layout(name, apis, workers), args)
            run["round"], run["load"] = round_no, os.getloadavg()[0]
            print(json.dumps(run), flush=True)
            runs.append(run)
    print(json.dumps({"summary": _summary(runs)}, indent=1))


if __name__ == "__main__":
    main()
