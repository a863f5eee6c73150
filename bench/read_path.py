"""In-process cost of one Profile API read on SQLite: the bearer token's check (its
credential looked up), the workspace check, one point read, the projection and the JSON
encoding, through the same handler the HTTP fast path calls (no HTTP, no rate limit).

It seeds `--profiles` profiles into a temporary store, then times `--rounds` passes over
all of them and prints the median and the spread of the per-read time. Run it against a
source tree with `PYTHONPATH=<tree>/src`:

    python bench/read_path.py --profiles 2000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, kindred_src, machine
from bench.compat import accepted, run_all
from kindred.api.profile_api import ProfileReadApi
from kindred.bootstrap import build
from kindred.config import load_settings
from kindred.domain.credentials import ApiCredential
from kindred.domain.identities import IdentityKey

_FIELDS = b"fields=user_identities,user_attributes,audience_memberships"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    container = build(load_settings(CONFIG, data_dir=tempfile.mkdtemp(), env={}))
    container.store.migrate()
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    now = container.clock.now_ms()
    batches = [
        msgspec.json.encode(
            {"user_identities": {"customer_id": f"read-{n}"}, "user_attributes": {"n": n}}
        )
        for n in range(args.profiles)
    ]
    assert set(run_all(container, [accepted(source, b, now) for b in batches])) == {"applied"}
    scope = source.workspace.identity_scope
    mpids = [
        container.store.find_profiles(scope, IdentityKey("customer_id", f"read-{n}"))[0]
        for n in range(args.profiles)
    ]
    paths = [f"/userprofile/v1/1/1/1/{mpid}" for mpid in mpids]
    issued: Any = container.tokens.issue(
        "client_credentials", "bench-client", "bench-secret", "https://api.mparticle.com"
    )
    # A coroutine since token requests check secrets off the event loop; a str before.
    token = asyncio.run(issued) if inspect.iscoroutine(issued) else issued
    api = ProfileReadApi(container)
    api._limit = _unlimited  # type: ignore[method-assign, assignment]  # no bucket
    runs = [_pass(api, paths, f"Bearer {token}") for _ in range(args.rounds)]
    container.close()
    print(
        json.dumps(
            {
                "kindred_src": kindred_src(),
                "machine": machine(),
                "reads_per_round": len(paths),
                "us_per_read_median": round(statistics.median(runs), 2),
                "us_per_read_min": round(min(runs), 2),
                "us_per_read_max": round(max(runs), 2),
            }
        )
    )


def _unlimited(_credential: ApiCredential) -> None:
    """No rate limit."""


def _pass(api: ProfileReadApi, paths: list[str], authorization: str) -> float:
    started = time.perf_counter()
    for path in paths:
        api.handle("profile", path, _FIELDS, authorization, b"")
    return (time.perf_counter() - started) / len(paths) * 1e6


if __name__ == "__main__":
    main()
