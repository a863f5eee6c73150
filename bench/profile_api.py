"""Profile API read benchmark: `wrk` (a separate load process) reads random stored profiles.

The script starts `kindred serve` on an already seeded store (see bench/seed.py), gets a
bearer token from `POST /oauth/token` with the bench credential (rate limit raised in
bench/kindred-bench.toml), writes a random sample of the stored MPIDs to a file, and runs
wrk with bench/profile-api.lua, which sends `GET /userprofile/v1/1/1/1/{mpid}?fields=...`
for a random MPID of the sample on each request. A warm-up run goes first, unmeasured.
It reports requests/s, p50/p99/p99.9 latency (wrk's, closed loop: each connection sends
its next request when the last one is answered), non-2xx responses, and the CPU used by
the server and by wrk over the measured run.

Needs wrk: `apt-get install -y wrk`.

    python bench/seed.py --data-dir bench/out/sqlite --profiles 1000000
    python bench/profile_api.py --data-dir bench/out/sqlite --workers 2 --duration 30
    python bench/profile_api.py --data-dir bench/out/postgres \\
        --store-url postgresql://postgres@127.0.0.1:5432/kindred_bench --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ServerProcess, machine
from bench.wrk import run_wrk, timed_wrk, wrk_parser

LUA_SCRIPT = Path(__file__).parent / "profile-api.lua"
CLIENT = ("bench-client", "bench-secret")
AUDIENCE = "https://api.mparticle.com"
ORG, ACCOUNT, WORKSPACE = 1, 1, 1
FIELDS = "device_identities,user_identities,user_attributes,audience_memberships,attribution"
RESULT_MARK = "PROFILE_API_RESULT "


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


def measure(args: argparse.Namespace, server: ServerProcess, mpids: list[int]) -> dict[str, Any]:
    token = fetch_token(server.url)
    check_one(server.url, token, mpids[0])
    with tempfile.TemporaryDirectory(prefix="kindred-profile-bench-") as tmp:
        mpid_file = Path(tmp) / "mpids.txt"
        mpid_file.write_text("".join(f"{m}\n" for m in mpids))
        if args.warmup > 0:
            warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
            run_wrk(wrk_command(warm, server.url, token, mpid_file), RESULT_MARK)
        command = wrk_command(args, server.url, token, mpid_file)
        run = timed_wrk(command, RESULT_MARK, server)
    shown = ["TOKEN" if part == token else part for part in command]
    return {
        "store": "postgresql" if args.store_url else "sqlite",
        "server_workers": args.workers,
        "profiles_stored": args.profiles_stored,
        "mpids_sampled": len(mpids),
        "connections": args.connections,
        "wrk_threads": args.threads,
        **run.report(),
        # wrk counts responses with a status over 399; socket errors apart
        "non_2xx": run.result["errors"]["status"],
        "server_peak_rss_mb": round(server.rss_mb()[1], 1),
        "machine": machine(),
        "command": shlex.join(["python", *sys.argv]),
        "wrk_command": shlex.join(shown),
    }


def main() -> None:
    parser = wrk_parser(__doc__)
    parser.add_argument("--sample", type=int, default=200_000, help="MPIDs read at random")
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
    server = ServerProcess(data_dir, args.store_url, workers=args.workers)
    server.start()
    try:
        result = measure(args, server, mpids)
    finally:
        server.stop()
    print(json.dumps(result, indent=2), flush=True)
    if result["other_cpu_cores"] > 0.2 and not args.store_url:
        print(
            f"warning: other processes used {result['other_cpu_cores']} cores during the run;"
            " the figures are not those of a quiet machine",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
