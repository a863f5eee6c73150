"""Shared pieces of the benchmarks: batches that look like real traffic, a server process,
memory sampling, percentiles."""

from __future__ import annotations

import base64
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

import kindred

BENCH_DIR = Path(__file__).parent
CONFIG = BENCH_DIR / "kindred-bench.toml"
AUTH = ("bench-key", "bench-secret")
# The head of a POST /v2/events request with the bench input's credentials, up to its
# Content-Length (the load generators write requests on raw connections).
EVENTS_HEAD = (
    b"POST /v2/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Authorization: Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()) + b"\r\n"
)

_EVENT = (
    '{"event_type":"custom_event","data":{"event_name":"%(name)s","custom_event_type":"navigation",'
    '"timestamp_unixtime_ms":%(ts)d,"source_message_id":"%(mid)s","session_uuid":"%(sess)s",'
    '"custom_attributes":{"song":"track-%(n)d","genre":"jazz","length_s":%(len)d,"liked":true}}}'
)
_SCREEN = (
    '{"event_type":"screen_view","data":{"screen_name":"%(name)s","timestamp_unixtime_ms":%(ts)d,'
    '"source_message_id":"%(mid)s","session_uuid":"%(sess)s","custom_attributes":{"tab":"home"}}}'
)
_BATCH = (
    '{"environment":"production","source_request_id":"%(rid)s","ip":"203.0.113.%(ip)d",'
    '"user_identities":{"customerid":"user-%(user)d","email":"user%(user)d@example.com"},'
    '"device_info":{"platform":"iOS","os_version":"17.4","device_model":"iPhone15,2",'
    '"ios_idfv":"%(idfv)s","att_authorization_status":"authorized"},'
    '"application_info":{"application_name":"Bench","application_version":"4.2.0"},'
    '"user_attributes":{"$FirstName":"User%(user)d","tier":"%(tier)s","visits":%(visits)d,'
    '"favorite_genres":["jazz","soul"],"newsletter":true},'
    '"consent_state":{"gdpr":{"marketing":{"consented":true,"document":"v2",'
    '"timestamp_unixtime_ms":%(ts)d}}},'
    '"events":[%(events)s]}'
)
_TIERS = ("bronze", "silver", "gold")


def batch_body(user: int, seq: int, now_ms: int, events: int = 10, vocabulary: int = 0) -> bytes:
    """A ~2 KB batch of `events` events for `user`; `seq` makes its ids unique. Custom
    events are named Play, Search and Share, or with `vocabulary` one of that many names
    (`Action 0` ...), a different few in each batch."""
    session = f"{user:08x}-0000-4000-8000-{seq:012x}"
    parts = []
    for n in range(events):
        template = _SCREEN if n % 4 == 3 else _EVENT
        name = ("Play", "Search", "Share", "Home")[n % 4]
        if vocabulary and n % 4 != 3:
            name = f"Action {(seq + n * 7) % vocabulary}"
        parts.append(
            template
            % {
                "name": name,
                "ts": now_ms - (events - n) * 1000,
                "mid": f"{seq:016x}-{n:04x}",
                "sess": session,
                "n": n,
                "len": 120 + n,
            }
        )
    return (
        _BATCH
        % {
            "rid": f"{seq:016x}-{user:016x}",
            "ip": user % 250 + 1,
            "user": user,
            "idfv": str(uuid.UUID(int=user + 1)),
            "tier": _TIERS[user % 3],
            "visits": seq % 1000,
            "ts": now_ms,
            "events": ",".join(parts),
        }
    ).encode()


def kindred_src() -> str:
    """The source tree of the Kindred code under test: the one this process imported
    (`PYTHONPATH=<tree>/src` picks it), which the server processes run too."""
    return str(Path(kindred.__file__).resolve().parent.parent)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    store_url: str | None = None
    workers: int = 1
    port: int = field(default_factory=free_port)
    config: Path = CONFIG
    process: subprocess.Popen[bytes] | None = None
    # the Kindred source tree the server runs (default: the one this process imported)
    src: str | None = None
    # Set in the server's environment (e.g. KINDRED_ROLE).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, **self.env}
        if self.store_url:
            env["KINDRED_STORE_URL"] = self.store_url
        # The server runs the code this process imported: that tree first on its path, and
        # `-P` keeps the working directory off it (`-m` would put it first).
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (self.src or kindred_src(), os.environ.get("PYTHONPATH")) if p
        )
        self.process = subprocess.Popen(self.command(), env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        self._wait_until_idle(deadline)

    def command(self) -> list[str]:
        """The server's command line: `kindred serve` on the data dir and port."""
        return [
            sys.executable,
            "-P",
            "-m",
            "kindred.cli",
            "serve",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]

    def _wait_until_idle(self, deadline: float) -> None:
        """/healthz answers as soon as one worker is up; the others may still be starting,
        and connections opened meanwhile would all land on the first. Wait until every
        process has started and the whole tree has been idle for a second."""
        assert self.process is not None
        last, quiet = -1.0, 0
        while time.monotonic() < deadline:
            # one process, or a supervisor with its workers (and a resource tracker)
            started = len(process_tree(self.process.pid)) >= (
                1 if self.workers == 1 else 1 + self.workers
            )
            now = self.cpu_seconds()
            quiet = quiet + 1 if started and now - last < 0.02 else 0
            if quiet >= 4:
                return
            last = now
            time.sleep(0.25)
        raise RuntimeError("server workers did not settle")

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server and all its worker processes."""
        assert self.process is not None
        ticks = 0
        for pid in process_tree(self.process.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory in MB of the server and all its worker processes,
        summed (the peak is the sum of each process's own peak: an upper bound)."""
        assert self.process is not None
        current = peak = 0.0
        for pid in process_tree(self.process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            current += int(fields["VmRSS"].split()[0]) / 1024
            peak += int(fields["VmHWM"].split()[0]) / 1024
        return current, peak

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(60)


def process_tree(root: int) -> list[int]:
    found, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        found += [int(c) for c in children]
        frontier += [int(c) for c in children]
    return found


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def serve_bare(app: str, port: int, workers: int, *, factory: bool = False) -> None:
    """A baseline server (bench/bare_*.py): uvicorn with the loop, parser and workers
    `kindred serve` runs with."""
    import uvicorn  # noqa: PLC0415 - only the baseline servers run it

    uvicorn.run(
        app,
        factory=factory,
        host="127.0.0.1",
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
    )


async def answer_lifespan(receive: Any, send: Any) -> None:
    """A baseline server's ASGI lifespan: started at once, stopped when told."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_database(name: str, *, fresh: bool = False) -> str:
    """The URL of the benchmark's own PostgreSQL database `name`, created when missing
    (dropped first with `fresh`)."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    """The median and the range of a run's figures, as the benchmarks print them."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }
