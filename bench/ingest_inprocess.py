"""In-process ingest cost on SQLite: decode, apply and commit batches of 10 events for
returning users, in groups of 256 as the writer forms them, on a fresh store; no HTTP.

It creates `--users` users, warms up once, then times `--passes` passes of `--batches`
batches (request ids new to the store every pass) and prints microseconds per event:
the median and the spread of the passes. Run it against a source tree with
`PYTHONPATH=<tree>/src`:

    python bench/ingest_inprocess.py --users 20000 --batches 5000 --passes 5
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, batch_body, kindred_src, machine
from bench.compat import accepted, run_all
from kindred.bootstrap import Container, build
from kindred.config import load_settings

_GROUP = 256
_EVENTS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=5_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    container = build(load_settings(CONFIG, data_dir=tempfile.mkdtemp(), env={}))
    container.store.migrate()
    base = secrets.randbits(30) << 20  # request ids no store has seen
    _pass(container, args, seq0=base, user0=base)  # the users, created
    _pass(container, args, seq0=base + 10**7, user0=base)  # warm-up
    passes = [
        _pass(container, args, seq0=base + (k + 2) * 10**7, user0=base) for k in range(args.passes)
    ]
    container.close()
    print(
        json.dumps(
            {
                "kindred_src": kindred_src(),
                "machine": machine(),
                "us_per_event_median": round(statistics.median(passes), 2),
                "us_per_event_min": round(min(passes), 2),
                "us_per_event_max": round(max(passes), 2),
            }
        )
    )


def _pass(container: Container, args: argparse.Namespace, *, seq0: int, user0: int) -> float:
    """Microseconds per event over one pass; every batch must be applied."""
    source = container.tenancy.input_named("bench-server")
    assert source is not None
    now = container.clock.now_ms()
    bodies = [
        batch_body((user0 + n) * 7919 % args.users, seq=seq0 + n, now_ms=now)
        for n in range(args.batches)
    ]
    started = time.perf_counter()
    for first in range(0, args.batches, _GROUP):
        group = [accepted(source, body, now) for body in bodies[first : first + _GROUP]]
        statuses = run_all(container, group)
        if set(statuses) != {"applied"}:
            raise RuntimeError(f"not every batch applied: {sorted(set(statuses))}")
    events: int = args.batches * _EVENTS
    return (time.perf_counter() - started) / events * 1e6


if __name__ == "__main__":
    main()
