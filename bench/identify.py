"""IDSync identify benchmark: `wrk` (a separate load process) sends `POST /v1/identify`.

The script starts `kindred serve` on an already seeded store (see bench/seed.py) and runs
wrk with bench/identify.lua, which builds each body per request: with probability
`--new-share` an identify of a new user (customer id and email
`bench-new-<run>-<thread>-<n>`, unique across runs), which creates a profile through the
single writer (group commit); otherwise an identify of a random seeded user (customer id
`user-N`, email `userN@example.com`, as bench/common.py batch_body seeds them), whose
identities are all linked already, so the readers answer it without the writer. Calls
are authenticated as the bench server input (HTTP Basic key:secret, bench/kindred-bench.toml).

Before the load, a few calls through httpx check the answers: a seeded user resolves to
the seeded profile twice (`is_logged_in` true, identities matched, its customer id linked
to that MPID in the store), and a new user gets a new stored MPID that a second call finds
again. A warm-up run goes first, unmeasured. It reports calls/s, p50/p90/p99/p99.9/max
latency (wrk's, closed loop: each connection sends its next call when the last one is
answered), answers other than 200, the profiles the run added (new users are kept: each
run grows the store), and the CPU used by the server, by wrk and by the rest of the
machine over the measured run.

Needs wrk: `apt-get install -y wrk`.

    python bench/seed.py --data-dir bench/out/sqlite --profiles 1000000
    python bench/identify.py --data-dir bench/out/sqlite --workers 2 --duration 30
    python bench/identify.py --data-dir bench/out/postgres \\
        --store-url postgresql://postgres@127.0.0.1:5432/kindred_bench --workers 2
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import shlex
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import AUTH, ServerProcess, kindred_src, machine
from bench.wrk import run_wrk, timed_wrk, wrk_parser
from kindred.domain.identities import canonical_identity_type

LUA_SCRIPT = Path(__file__).parent / "identify.lua"
RESULT_MARK = "IDENTIFY_RESULT "
PATHS = ("/v1/identify", "/identity/v1/identify")


def basic_header() -> str:
    return "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()


class Store:
    """Read-only questions to the store itself (the server need not run)."""

    def __init__(self, data_dir: Path, store_url: str | None) -> None:
        self.data_dir = data_dir
        self.store_url = store_url
        self.scope = ""  # the identity scope of the seeded profiles, once one was checked
        if not store_url and not (data_dir / "kindred.db").exists():
            raise SystemExit(f"{data_dir}/kindred.db: no SQLite store; seed one with bench/seed.py")

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self.store_url:
            with psycopg.connect(self.store_url) as pg:
                row = pg.execute(sql.replace("?", "%s"), params).fetchone()
        else:
            path = self.data_dir / "kindred.db"
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                row = conn.execute(sql, params).fetchone()
            finally:
                conn.close()
        return None if row is None else row[0]

    def count_profiles(self) -> int:
        return int(self._one("SELECT count(*) FROM profiles"))

    def linked(self, mpid: int, id_type: str, value: str) -> bool:
        """Whether the stored profile `mpid` exists and the identity links to it."""
        scope = self._one("SELECT scope FROM profiles WHERE mpid = ?", (mpid,))
        if scope is None:
            return False
        self.scope = str(scope)
        canonical = canonical_identity_type(id_type)
        found = self._one(
            "SELECT mpid FROM identities WHERE scope = ? AND id_type = ? AND id_value = ?"
            " AND mpid = ?",
            (scope, canonical, value, mpid),
        )
        return found is not None

    def count_created(self, run: str) -> int:
        """Profiles this run's new users made (their customer ids start `bench-new-<run>`);
        the store's profile count also moves with anything else writing to it."""
        prefix = f"bench-new-{run}"
        return int(
            self._one(
                "SELECT count(DISTINCT mpid) FROM identities WHERE scope = ? AND id_type = ?"
                " AND id_value >= ? AND id_value < ? AND substr(id_value, 1, ?) = ?",
                (
                    self.scope,
                    canonical_identity_type("customerid"),
                    prefix,
                    prefix + "\x7f",  # the range lets the primary key find them
                    len(prefix),
                    prefix,
                ),
            )
        )

    def created_ms(self, mpid: int) -> int | None:
        created = self._one("SELECT created_ms FROM profiles WHERE mpid = ?", (mpid,))
        return None if created is None else int(created)


def known_body(user: int) -> dict[str, Any]:
    return {
        "environment": "production",
        "known_identities": {"customerid": f"user-{user}", "email": f"user{user}@example.com"},
    }


def identify(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}{path}", json=body, headers={"Authorization": basic_header()}, timeout=10
    )
    if response.status_code != 200:
        raise SystemExit(f"POST {path}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def check_answers(base_url: str, store: Store, users: int, run: str) -> dict[str, Any]:
    """Identify calls through httpx before the load: a wrong setup fails loudly here.
    A seeded user must resolve to its seeded profile (created before the server started,
    its customer id linked to it in the store), the same twice; a new user must get a new
    stored profile, found again by a second call."""
    started_ms = int(time.time() * 1000)
    checked: dict[str, Any] = {}
    for user in (0, users - 1, random.Random(2).randrange(users)):
        first = identify(base_url, PATHS[0], known_body(user))
        second = identify(base_url, PATHS[1], known_body(user))
        expected = known_body(user)["known_identities"]
        mpid = int(first["mpid"])
        created = store.created_ms(mpid)
        problems = []
        if first["mpid"] != second["mpid"]:
            problems.append(f"MPID changed ({first['mpid']} then {second['mpid']})")
        if first.get("is_logged_in") is not True:
            problems.append("is_logged_in is not true")
        if first.get("is_ephemeral") is not False:
            problems.append("is_ephemeral is not false")
        if first.get("matched_identities") != expected:
            problems.append(f"matched_identities {first.get('matched_identities')}")
        if created is None or created >= started_ms:
            problems.append(f"MPID {mpid} is not a profile stored before this run")
        elif not store.linked(mpid, "customerid", f"user-{user}"):
            problems.append(f"the store does not link customerid user-{user} to MPID {mpid}")
        if problems:
            raise SystemExit(f"identify user-{user}: " + "; ".join(problems))
        checked[f"user-{user}"] = first["mpid"]
    new = {
        "environment": "production",
        "known_identities": {"customerid": f"bench-new-{run}-check", "email": f"{run}@example.com"},
    }
    created_answer = identify(base_url, PATHS[0], new)
    again = identify(base_url, PATHS[0], new)
    new_mpid = int(created_answer["mpid"])
    if (
        created_answer["mpid"] != again["mpid"]
        or created_answer["matched_identities"]
        or again["matched_identities"] != new["known_identities"]
        or not store.linked(new_mpid, "customerid", f"bench-new-{run}-check")
    ):
        raise SystemExit(f"identify of a new user: {created_answer} then {again}")
    checked["new user"] = created_answer["mpid"]
    return checked


def wrk_command(args: argparse.Namespace, url: str, users: int, prefix: str) -> list[str]:
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
        basic_header(),
        args.path,
        str(users),
        str(args.new_share),
        prefix,
        str(pause_ms(args)),
    ]


def pause_ms(args: argparse.Namespace) -> float:
    """With --rate: how long each connection waits between calls so that all of them
    together offer about that rate (the calls' own latency makes it a little less)."""
    return args.connections * 1000.0 / args.rate if args.rate else 0.0


def measure(args: argparse.Namespace, server: ServerProcess, store: Store) -> dict[str, Any]:
    run = f"{int(time.time()):x}{secrets.token_hex(3)}"  # unique to this run
    checked = check_answers(server.url, store, args.users, run)
    if args.warmup > 0:
        warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        run_wrk(wrk_command(warm, server.url, args.users, f"{run}w"), RESULT_MARK)
    command = wrk_command(args, server.url, args.users, run)
    timed = timed_wrk(command, RESULT_MARK, server)
    result = timed.result
    sent = result["known_sent"] + result["new_sent"]
    shown = ["AUTH" if part == basic_header() else part for part in command]
    return {
        "store": "postgresql" if args.store_url else "sqlite",
        "server_workers": args.workers,
        "profiles_before": args.profiles_before,
        "seeded_users_drawn_from": args.users,
        "new_share": args.new_share,
        "offered_rate": args.rate or None,
        "path": args.path,
        "connections": args.connections,
        "wrk_threads": args.threads,
        **timed.report(),
        # calls generated by the script (a few more than answered: the last in flight)
        "known_calls_sent": result["known_sent"],
        "new_calls_sent": result["new_sent"],
        "new_share_sent": round(result["new_sent"] / max(sent, 1), 4),
        "non_200": result["non_200"],
        "non_200_by_status": result["statuses"],
        "server_peak_rss_mb": round(server.rss_mb()[1], 1),
        "checked": checked,
        "run_prefix": run,
        "kindred_src": kindred_src(),
        "machine": machine(),
        "command": shlex.join(["python", *sys.argv]),
        "wrk_command": shlex.join(shown),
    }


def main() -> None:
    parser = wrk_parser(__doc__)
    parser.add_argument(
        "--new-share", type=float, default=0.1, help="share of calls for new users (0..1)"
    )
    parser.add_argument(
        "--users", type=int, default=1_000_000, help="seeded users user-0 .. user-(N-1)"
    )
    parser.add_argument("--path", default=PATHS[0], choices=PATHS, help="the identify route")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offer about this many calls/s (paced connections); 0: as fast as answered",
    )
    args = parser.parse_args()
    if not shutil.which(args.wrk):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    if not 0 <= args.new_share <= 1:
        raise SystemExit("--new-share must be between 0 and 1")

    data_dir = Path(args.data_dir)
    store = Store(data_dir, args.store_url)
    args.profiles_before = store.count_profiles()
    if args.profiles_before < args.users:
        raise SystemExit(
            f"the store holds {args.profiles_before} profiles, fewer than --users {args.users}:"
            " seed it with bench/seed.py"
        )
    server = ServerProcess(data_dir, args.store_url, workers=args.workers)
    server.start()
    try:
        result = measure(args, server, store)
    finally:
        server.stop()
    result["profiles_after"] = store.count_profiles()
    # made by this run (checks, warm-up, measured run); profiles_after - profiles_before
    # is larger when something else wrote to the store meanwhile
    result["profiles_added"] = store.count_created(result["run_prefix"])
    print(json.dumps(result, indent=2), flush=True)
    if result["other_cpu_cores"] > 0.2:
        print(
            f"warning: other processes used {result['other_cpu_cores']} cores during the run;"
            " the figures are not those of a quiet machine",
            file=sys.stderr,
        )
    if result["non_200"]:
        print(f"warning: {result['non_200']} answers were not 200", file=sys.stderr)


if __name__ == "__main__":
    main()
