"""Seed a store with N profiles through the real ingest pipeline, in-process and fast.

python bench/seed.py --data-dir bench/out/sqlite --profiles 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, batch_body
from bench.compat import accepted, run_all
from kindred.bootstrap import build
from kindred.config import load_settings


def seed(data_dir: str, profiles: int, store_url: str | None, group: int = 2000) -> None:
    env = {"KINDRED_STORE_URL": store_url} if store_url else {}
    settings = load_settings(CONFIG, data_dir=data_dir, env=env)
    container = build(settings)
    container.store.migrate()
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    have = container.store.count_profiles()
    started = time.perf_counter()
    now = container.clock.now_ms()
    for first in range(have, profiles, group):
        items = []
        for user in range(first, min(first + group, profiles)):
            body = batch_body(user, seq=user, now_ms=now, events=1)
            items.append(accepted(source, body, now))
        run_all(container, items)
        done = min(first + group, profiles)
        if done % 100_000 < group:
            rate = (done - have) / (time.perf_counter() - started)
            print(f"seeded {done} profiles ({rate:,.0f}/s)", flush=True)
    container.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--store-url", help="a postgresql:// URL (default: SQLite in data dir)")
    args = parser.parse_args()
    seed(args.data_dir, args.profiles, args.store_url)


if __name__ == "__main__":
    main()
