"""Ingest latency while wrong secrets flood the token route and the UI sign-in.

A real server (SQLite, a fresh store). A load process sends batches to `/v2/events` at a
fixed arrival rate, open loop (latency from the moment each batch was due), in phases that
alternate without and with a flood, sent by a process of its own: wrong-secret requests
to `POST /oauth/token` and `POST /ui/login`, `--flood-rate` a second each. Every flood
request comes from an address of its own (`X-Forwarded-For`, which the server trusts from
127.0.0.1), so the per-address limits do not stop it: half the token requests name a real
credential with a hashed secret (made with `kindred credentials create`; its per-client
limit soon answers 429), the other half and every sign-in name client ids and users that
do not exist (each checked against the decoy hash): the worst case, every one of them an
scrypt until the queue of checks is full.

It prints per phase the ingest p50/p90/p99 and the flood's answers, then for each figure
the median over the phases of each kind with [min-max], and the ratio with/without of the
medians.

    python bench/auth_flood.py --rounds 3 --phase 10 --rate 200 --flood-rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

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
from bench.ingest import send_request

AUDIENCE = "https://api.mparticle.com"


@dataclass
class Phase:
    flood: bool
    latencies: list[float] = field(default_factory=list)
    ingest_statuses: dict[int, int] = field(default_factory=dict)
    flood_statuses: dict[str, dict[str, int]] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        return {f"p{q}_ms": round(percentile(lat, q / 100) * 1000, 2) for q in (50, 90, 99)}


async def _ingest(
    port: int, phase: Phase, rate: float, seconds: float, *, seq_base: int, connections: int
) -> None:
    head = EVENTS_HEAD
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(connections))
    )

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (job := await queue.get()) is not None:
            due, body = job
            status = await send_request(reader, writer, head, body)
            phase.latencies.append(time.perf_counter() - due)
            phase.ingest_statuses[status] = phase.ingest_statuses.get(status, 0) + 1
        writer.close()

    workers = [asyncio.create_task(connection(r, w)) for r, w in opened]
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    for n in range(int(rate * seconds)):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        seq = seq_base + n
        queue.put_nowait((due, batch_body(seq, seq=seq, now_ms=now_ms)))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


async def _flood(
    url: str, rate: float, seconds: float, known_client: str
) -> dict[str, dict[int, int]]:
    """`rate` token requests and `rate` sign-ins a second for `seconds`, each from an
    address of its own, each sent when due whether or not earlier ones were answered; the
    answers' statuses by route."""
    statuses: dict[str, dict[int, int]] = {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        pending: list[asyncio.Task[None]] = []

        async def one(route: str, n: int) -> None:
            address = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            headers = {"x-forwarded-for": address}
            if route == "token":
                client_id = known_client if n % 2 == 0 else f"nobody-{uuid.uuid4().hex}"
                answer = await client.post(
                    "/oauth/token",
                    json={
                        "grant_type": "client_credentials",
                        "client_id": client_id,
                        "client_secret": f"wrong-{n}",
                        "audience": AUDIENCE,
                    },
                    headers=headers,
                )
            else:
                answer = await client.post(
                    "/ui/login",
                    data={"name": f"user-{n}", "password": f"wrong-{n}"},
                    headers=headers,
                )
            counts = statuses.setdefault(route, {})
            counts[answer.status_code] = counts.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one("token", n)))
            pending.append(asyncio.create_task(one("login", n)))
        await asyncio.gather(*pending, return_exceptions=True)
    return statuses


async def _phase(
    args: argparse.Namespace, server: ServerProcess, flood: bool, seq_base: int, known: str
) -> Phase:
    """One phase of ingest; with `flood`, the flood runs meanwhile in a process of its own
    (so that its client work does not delay the ingest client's), from 1 s before ingest
    starts (the checks' queue is full by then) to the end."""
    phase = Phase(flood=flood)
    flooding = None
    if flood:
        flooding = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--flood-only",
            json.dumps([server.url, args.flood_rate, args.phase + 1.0, known]),
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)
    await _ingest(
        server.port,
        phase,
        args.rate,
        args.phase,
        seq_base=seq_base,
        connections=args.connections,
    )
    if flooding is not None:
        out, _ = await flooding.communicate()
        phase.flood_statuses = json.loads(out)
    return phase


def _summary(phases: list[Phase]) -> dict[str, object]:
    out: dict[str, object] = {}
    for figure in ("p50_ms", "p90_ms", "p99_ms"):
        row: dict[str, object] = {}
        medians = {}
        for flood in (False, True):
            values = [p.figures()[figure] for p in phases if p.flood == flood]
            medians[flood] = statistics.median(values)
            row["with_flood" if flood else "without"] = {
                "median": medians[flood],
                "min": min(values),
                "max": max(values),
            }
        row["ratio_of_medians"] = round(medians[True] / medians[False], 2)
        out[figure] = row
    return out


async def _run(args: argparse.Namespace, server: ServerProcess, known: str) -> dict[str, object]:
    seq = 1
    # Warm-up, unmeasured.
    await _phase(argparse.Namespace(**{**vars(args), "phase": 3}), server, False, seq, known)
    seq += int(args.rate * 3)
    phases = []
    for _ in range(args.rounds):
        for flood in (False, True):
            phase = await _phase(args, server, flood, seq, known)
            seq += int(args.rate * args.phase)
            phases.append(phase)
            print(
                json.dumps(
                    {
                        "flood": flood,
                        **phase.figures(),
                        "ingest": phase.ingest_statuses,
                        "flood_answers": phase.flood_statuses,
                    }
                ),
                flush=True,
            )
    return {
        "ingest_batches_per_s": args.rate,
        "flood_requests_per_s_per_route": args.flood_rate,
        "phase_s": args.phase,
        "rounds": args.rounds,
        "summary": _summary(phases),
        "kindred_src": kindred_src(),
        "machine": machine(),
    }


def _cli(data_dir: Path, *args: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (kindred_src(), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-P", "-m", "kindred.cli", *args]
    command += ["--config", str(CONFIG), "--data-dir", str(data_dir)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


def _credential(data_dir: Path) -> str:
    """A credential with a hashed secret, made the way an operator makes one."""
    _cli(data_dir, "migrate")
    made = _cli(data_dir, "credentials", "create", "--workspace", "1")
    return str(json.loads(made)["client_id"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="phases of each kind")
    parser.add_argument("--phase", type=float, default=10, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=200, help="batches per second")
    parser.add_argument("--flood-rate", type=float, default=20, help="per route, per second")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--flood-only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_only:  # the flood's own process, started by a phase
        url, rate, seconds, known = json.loads(args.flood_only)
        print(json.dumps(uvloop.run(_flood(url, rate, seconds, known))), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="kindred-auth-flood-") as tmp:
        data_dir = Path(tmp)
        known = _credential(data_dir)
        server = ServerProcess(data_dir)
        server.start()
        try:
            result = uvloop.run(_run(args, server, known))
        finally:
            server.stop()
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
