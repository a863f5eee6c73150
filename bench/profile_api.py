"""Profile API read benchmark: `wrk` (a separate load process) reads random stored profiles
from Kindred and, in the same sitting and interleaved, from its baseline.

The script starts `kindred serve` on an already seeded store (see bench/seed.py) and the
baseline, bench/bare_read.py (the same HTTP server doing the same point read, and nothing
else), gets a bearer token from `POST /oauth/token` with the bench credential (rate limit
raised in bench/kindred-bench.toml), writes a random sample of the stored MPIDs to a file,
and runs wrk with bench/profile-api.lua, which sends `GET /userprofile/v1/1/1/1/{mpid}?fields=...`
for a random MPID of the sample on each request. Each server gets an unmeasured warm-up,
then `--rounds` rounds each measure every server once, in turn (bare, Kindred, bare, ...).
`--before-src` adds a second Kindred, run from another source tree, to each round: before
and after in one sitting.

It reports, per run, requests/s, p50/p99/p99.9 latency (wrk's, closed loop: each
connection sends its next request when the last one is answered), non-2xx responses and
the CPU used by the server per read (all its processes; background tasks included) and by
wrk; then per server the median and spread over the rounds, and the ratio of the bare
server's CPU per read to each Kindred's (1.0: Kindred costs no more than the bare read),
pair by pair within a round.

`--granian` adds the bare server and Kindred on granian (its ASGI interface, same loop and
workers; `pip install granian` first: Kindred does not depend on it) to each round.

`--writer-process` adds Kindred with its writer process (`kindred serve --writer-process`)
to each round.

`--ingest-rate R` adds a phase: each Kindred is read while batches arrive at R per second
(open loop, bench/ingest.py's load, with request ids and users no run sent before);
it reports the read latency then, and the batches applied and answered as duplicates.

Needs wrk: `apt-get install -y wrk`.

    python bench/seed.py --data-dir bench/out/sqlite --profiles 1000000
    python bench/profile_api.py --data-dir bench/out/sqlite --workers 2 --duration 30
    python bench/profile_api.py --data-dir bench/out/postgres \\
        --store-url postgresql://postgres@127.0.0.1:5432/kindred_bench --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, ServerProcess, kindred_src, machine, spread
from bench.profile_ingest import IngestLoad
from bench.wrk import run_wrk, timed_wrk, wrk_parser

LUA_SCRIPT = Path(__file__).parent / "profile-api.lua"
BARE_SCRIPT = Path(__file__).parent / "bare_read.py"
CLIENT = ("bench-client", "bench-secret")
AUDIENCE = "https://api.mparticle.com"
ORG, ACCOUNT, WORKSPACE = 1, 1, 1
FIELDS = "device_identities,user_identities,user_attributes,audience_memberships,attribution"
RESULT_MARK = "PROFILE_API_RESULT "


@dataclass
class BareServer(ServerProcess):
    """bench/bare_read.py: the baseline, on the same store and port rules."""

    def command(self) -> list[str]:
        command = [sys.executable, str(BARE_SCRIPT), "--data-dir", str(self.data_dir)]
        if self.store_url:
            command += ["--store-url", self.store_url]
        return [*command, "--port", str(self.port), "--workers", str(self.workers)]


def granian_command(server: ServerProcess, target: str) -> list[str]:
    """granian (`pip install granian`: not a dependency of Kindred) serving an ASGI app
    factory with the same loop and workers as uvicorn is given."""
    return [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--factory"),
        *("--host", "127.0.0.1", "--port", str(server.port), "--workers", str(server.workers)),
        *("--loop", "uvloop", "--runtime-mode", "st", "--no-log", target),
    ]


@dataclass
class GranianKindred(ServerProcess):
    """Kindred's app (`kindred.cli.serve:worker_app`, settings from the environment) on
    granian instead of uvicorn."""

    def command(self) -> list[str]:
        return granian_command(self, "kindred.cli.serve:worker_app")


@dataclass
class GranianBare(ServerProcess):
    """bench/bare_read.py's app on granian."""

    def command(self) -> list[str]:
        return granian_command(self, "bench.bare_read:app")


def granian_contenders(args: argparse.Namespace, data_dir: Path) -> list[Contender]:
    """The bare server and Kindred on granian, their settings through the environment
    (as `kindred serve --workers N` hands them to its workers)."""
    os.environ.update(
        KINDRED_CONFIG=str(CONFIG),
        KINDRED_DATA_DIR=str(data_dir),
        KINDRED_STORE_URL=args.store_url or "",
        BARE_READ_DATA_DIR=str(data_dir),
        BARE_READ_STORE_URL=args.store_url or "",
        # bench.bare_read imported by the workers
        PYTHONPATH=os.pathsep.join(
            p for p in (str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH")) if p
        ),
    )
    workers = args.workers
    return [
        Contender("bare_granian", GranianBare(data_dir, args.store_url, workers), False),
        Contender("kindred_granian", GranianKindred(data_dir, args.store_url, workers)),
    ]


@dataclass
class Contender:
    """One server of the sitting and what its runs measured."""

    name: str
    server: ServerProcess
    is_kindred: bool = True
    token: str = "none"
    runs: list[dict[str, Any]] = field(default_factory=list)
    under_ingest: list[dict[str, Any]] = field(default_factory=list)


def stored_mpids(data_dir: Path, store_url: str | None) -> list[int]:
    """Every MPID in the store, read straight from it (the server need not run)."""
    if store_url:
        with psycopg.connect(store_url) as pg:
            return [row[0] for row in pg.execute("SELECT mpid FROM profiles")]
    path = data_dir / "kindred.db"
    if not path.exists():
        raise SystemExit(f"{path}: no SQLite store here; seed one with bench/seed.py")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        # SQLite answers this from the smallest covering index, not from the profile pages.
        return [row[0] for row in conn.execute("SELECT mpid FROM profiles")]
    finally:
        conn.close()


def fetch_token(base_url: str) -> str:
    response = httpx.post(
        f"{base_url}/oauth/token",
        json={
            "client_id": CLIENT[0],
            "client_secret": CLIENT[1],
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def profile_path(mpid: int | str) -> str:
    return f"/userprofile/v1/{ORG}/{ACCOUNT}/{WORKSPACE}/{mpid}"


def check_one(base_url: str, token: str, mpid: int) -> None:
    """One read through httpx before the load: a wrong setup fails loudly here."""
    response = httpx.get(
        f"{base_url}{profile_path(mpid)}",
        params={"fields": FIELDS},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if response.status_code != 200:
        raise SystemExit(f"GET {profile_path(mpid)}: {response.status_code} {response.text}")


def wrk_command(args: argparse.Namespace, url: str, token: str, mpid_file: Path) -> list[str]:
    return [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        f"--timeout={args.timeout}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        token,
        str(mpid_file),
        profile_path(""),
        f"?fields={FIELDS}",
    ]


def measured(args: argparse.Namespace, who: Contender, mpid_file: Path) -> dict[str, Any]:
    """One measured wrk run against one server."""
    command = wrk_command(args, who.server.url, who.token, mpid_file)
    run = timed_wrk(command, RESULT_MARK, who.server)
    report = run.report()
    return {
        **report,
        "server_cpu_us_per_read": round(run.server_cpu_s / max(report["requests"], 1) * 1e6, 1),
        # wrk counts responses with a status over 399; socket errors apart
        "non_2xx": run.result["errors"]["status"],
    }


def sitting(args: argparse.Namespace, contenders: list[Contender], mpids: list[int]) -> None:
    """Warm-up for each server, then the rounds, each server once a round, in turn."""
    with tempfile.TemporaryDirectory(prefix="kindred-profile-bench-") as tmp:
        mpid_file = Path(tmp) / "mpids.txt"
        mpid_file.write_text("".join(f"{m}\n" for m in mpids))
        for who in contenders:
            if who.is_kindred:
                who.token = fetch_token(who.server.url)
            check_one(who.server.url, who.token, mpids[0])
            if args.warmup > 0:
                warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
                run_wrk(wrk_command(warm, who.server.url, who.token, mpid_file), RESULT_MARK)
        for round_ in range(args.rounds):
            for who in contenders:
                who.runs.append(measured(args, who, mpid_file))
                print(f"round {round_ + 1} {who.name}: {_brief(who.runs[-1])}", file=sys.stderr)
        if args.ingest_rate > 0:
            readers = [c for c in contenders if c.is_kindred]
            for round_ in range(args.rounds):
                for who in readers:
                    who.under_ingest.append(_under_ingest(args, who, mpid_file))
                    print(
                        f"ingest round {round_ + 1} {who.name}: {_brief(who.under_ingest[-1])}",
                        file=sys.stderr,
                    )


def _under_ingest(args: argparse.Namespace, who: Contender, mpid_file: Path) -> dict[str, Any]:
    load = IngestLoad(who.server, args.ingest_rate, args.duration + 2, args.profiles_stored)
    load.start()
    try:
        reads = measured(args, who, mpid_file)
    finally:
        ingest = load.finish()
    return {**reads, "ingest": ingest}


def _brief(run: dict[str, Any]) -> str:
    text = (
        f"{run['requests_per_s']}/s p99 {run['p99_ms']} ms,"
        f" {run['server_cpu_us_per_read']} us CPU/read, other {run['other_cpu_cores']} cores"
    )
    if "ingest" in run:
        ingest = run["ingest"]
        text += f"; ingest {ingest['batches_per_s']}/s p99 {ingest['p99_ms']} ms"
    return text


def summary(contenders: list[Contender]) -> dict[str, Any]:
    """Per server: medians and spread over the rounds; per Kindred: the ratios to the
    bare server's run of the same round."""
    bare = contenders[0]
    out: dict[str, Any] = {}
    for who in contenders:
        figures = {
            key: spread([r[key] for r in who.runs], 2)
            for key in ("requests_per_s", "p99_ms", "server_cpu_us_per_read", "other_cpu_cores")
        }
        if who is not bare:
            pairs = list(zip(bare.runs, who.runs, strict=True))
            cpu = [b["server_cpu_us_per_read"] / k["server_cpu_us_per_read"] for b, k in pairs]
            rate = [k["requests_per_s"] / b["requests_per_s"] for b, k in pairs]
            figures["cpu_ratio_bare_over_this"] = spread(cpu, 2)
            figures["throughput_ratio_this_over_bare"] = spread(rate, 2)
        if who.under_ingest:
            figures["under_ingest_p99_ms"] = spread([r["p99_ms"] for r in who.under_ingest], 2)
            figures["under_ingest_requests_per_s"] = spread(
                [r["requests_per_s"] for r in who.under_ingest], 2
            )
        out[who.name] = figures
    return out


def main() -> None:
    parser = wrk_parser(__doc__)
    parser.add_argument("--sample", type=int, default=200_000, help="MPIDs read at random")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs of each server")
    parser.add_argument("--before-src", help="also run Kindred from this source tree")
    parser.add_argument(
        "--ingest-rate", type=float, default=0, help="batches/s sent during an extra phase"
    )
    parser.add_argument(
        "--granian", action="store_true", help="also the bare server and Kindred on granian"
    )
    parser.add_argument(
        "--writer-process",
        action="store_true",
        help="also Kindred with its writer process (kindred serve --writer-process)",
    )
    args = parser.parse_args()
    if not shutil.which(args.wrk):
        raise SystemExit("wrk not found: apt-get install -y wrk")

    data_dir = Path(args.data_dir)
    everything = stored_mpids(data_dir, args.store_url)
    if not everything:
        raise SystemExit("the store has no profiles; seed it with bench/seed.py")
    args.profiles_stored = len(everything)
    mpids = random.Random(1).sample(everything, min(args.sample, len(everything)))
    del everything
    contenders = [
        Contender("bare", BareServer(data_dir, args.store_url, workers=args.workers), False),
        Contender("kindred", ServerProcess(data_dir, args.store_url, workers=args.workers)),
    ]
    if args.before_src:
        before = ServerProcess(data_dir, args.store_url, workers=args.workers, src=args.before_src)
        contenders.insert(1, Contender("kindred_before", before))
    if args.writer_process:
        env = {"KINDRED_WRITER_PROCESS": "1"}
        split = ServerProcess(data_dir, args.store_url, workers=args.workers, env=env)
        contenders.append(Contender("kindred_writer_process", split))
    if args.granian:
        contenders += granian_contenders(args, data_dir)
    try:
        for who in contenders:
            who.server.start()
        sitting(args, contenders, mpids)
    finally:
        for who in contenders:
            who.server.stop()
    result = {
        "store": "postgresql" if args.store_url else "sqlite",
        "server_workers": args.workers,
        "profiles_stored": args.profiles_stored,
        "mpids_sampled": len(mpids),
        "connections": args.connections,
        "kindred_src": kindred_src(),
        "before_src": args.before_src,
        "summary": summary(contenders),
        "runs": {who.name: who.runs for who in contenders},
        "under_ingest": {who.name: who.under_ingest for who in contenders if who.under_ingest},
        "machine": machine(),
        "command": shlex.join(["python", *sys.argv]),
    }
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()
