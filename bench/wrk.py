"""Running `wrk` (a separate C load process) for the HTTP benchmarks: its Lua script's
result line, and where the machine's CPU went meanwhile."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ServerProcess

__all__ = [
    "WrkRun",
    "machine_busy_seconds",
    "postgres_cpu_seconds",
    "process_cpu_seconds",
    "run_wrk",
    "timed_wrk",
    "wrk_parser",
]


def wrk_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every wrk benchmark takes: the store, the server, the load."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=str(Path(__file__).parent / "out" / "sqlite"),
        help="the seeded store's data dir (as given to bench/seed.py)",
    )
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, default=30, help="seconds, measured")
    parser.add_argument("--warmup", type=int, default=5, help="seconds, unmeasured")
    parser.add_argument("--timeout", type=int, default=2, help="wrk's request timeout, s")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary")
    return parser


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """User + system CPU time so far of every PostgreSQL server process on the machine
    (0 without one; a process that ended meanwhile drops out of the sum)."""
    return process_cpu_seconds("postgres")


def process_cpu_seconds(wanted: str) -> float:
    """User + system CPU time so far of every process named `wanted` on the machine."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(" (")[2].rpartition(")")
        if name == wanted:
            fields = rest.split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(command: list[str], mark: str) -> dict[str, Any]:
    """Run wrk; returns the JSON its Lua done() callback printed after `mark`."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(mark):
            result: dict[str, Any] = json.loads(line[len(mark) :])
            return result
    raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@dataclass(frozen=True)
class WrkRun:
    result: dict[str, Any]
    wall_s: float
    server_cpu_s: float
    wrk_cpu_s: float
    postgres_cpu_s: float
    other_cpu_s: float

    def report(self) -> dict[str, Any]:
        """What every HTTP benchmark reports: rate, latency, errors, CPU by who used it."""
        seconds = self.result["duration_us"] / 1e6
        latency = self.result["latency_us"]
        requests = self.result["requests"]
        return {
            "duration_s": round(seconds, 1),
            "requests": requests,
            "requests_per_s": round(requests / seconds),
            **{f"{p}_ms": _ms(latency[p]) for p in ("p50", "p90", "p99", "p999", "max", "mean")},
            "socket_errors": {k: v for k, v in self.result["errors"].items() if k != "status"},
            "response_kb": round(self.result["bytes"] / max(requests, 1) / 1024, 2),
            "server_cpu_cores": round(self.server_cpu_s / self.wall_s, 2),
            "wrk_cpu_cores": round(self.wrk_cpu_s / self.wall_s, 2),
            "postgres_cpu_cores": round(self.postgres_cpu_s / self.wall_s, 2),
            # everything else on the machine meanwhile (kernel work for the sockets
            # included): well above ~0.1 means something else competed for the cores
            "other_cpu_cores": round(self.other_cpu_s / self.wall_s, 2),
        }


def timed_wrk(command: list[str], mark: str, server: ServerProcess) -> WrkRun:
    """One measured wrk run, with the CPU each party used meanwhile."""
    server_cpu, busy, postgres = (
        server.cpu_seconds(),
        machine_busy_seconds(),
        postgres_cpu_seconds(),
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    result = run_wrk(command, mark)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = server.cpu_seconds() - server_cpu
    postgres = postgres_cpu_seconds() - postgres
    wrk_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    other = max(machine_busy_seconds() - busy - server_cpu - wrk_cpu - postgres, 0.0)
    return WrkRun(result, wall, server_cpu, wrk_cpu, postgres, other)


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000, 2)
