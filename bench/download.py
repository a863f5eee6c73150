"""An audience download (AUD-9) of a large audience on SQLite: its time and peak memory.

Seeds `--profiles` profiles through the real ingest pipeline (bench/seed.py; a data
directory seeded before is reused), makes an audience every one of them joins (`newsletter`
is true in every seeded profile), backfills it, then, in a fresh process each, downloads it
with two identity types (customer_id and email: two rows per member) in full and as a
sample, writing the ZIP to a file. Each download reports its wall time, rows, ZIP size, and
the process's resident memory before the download, its peak while the container was
built, and its peak during the download (VmHWM, reset before the download).

    python bench/download.py --data-dir bench/out/download --profiles 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, machine
from bench.seed import seed
from kindred.audiences.definition import AudienceDef
from kindred.bootstrap import build
from kindred.config import load_settings


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(data_dir: str, profiles: int) -> int:
    seed(data_dir, profiles, None)
    container = build(load_settings(CONFIG, data_dir=data_dir, env={}))
    try:
        existing = [a for a in container.audiences.all() if a.name == "Everyone (bench)"]
        if existing:
            return existing[0].id
        made = container.audiences.create(
            AudienceDef(
                name="Everyone (bench)",
                workspaces=[1],
                criteria={"attribute": "newsletter", "op": "is_true"},
            )
        )
        container.audiences.set_status(made.id, "active")
        started = time.perf_counter()
        while container.audience_backfill.run():
            pass
        print(f"backfill: {time.perf_counter() - started:.1f} s", flush=True)
        return made.id
    finally:
        container.close()


def download(data_dir: str, audience_id: int, sample: int | None, out: str) -> dict[str, object]:
    container = build(load_settings(CONFIG, data_dir=data_dir, env={}))
    before = _status_mb("VmRSS")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Linux: the peak resident size (VmHWM) starts over here, so that the peak read after
    # is the download's, not the container's start (which reads the store's definitions).
    Path("/proc/self/clear_refs").write_text("5")
    started = time.perf_counter()
    prepared = container.downloads.prepare([audience_id], ["customer_id", "email"], sample)
    size = 0
    with open(out, "wb") as file:
        for chunk in prepared.chunks():
            size += len(chunk)
            file.write(chunk)
    elapsed = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    container.close()
    assert prepared.manifest is not None
    return {
        "sample": sample,
        "seconds": round(elapsed, 2),
        "users": prepared.manifest["files"][0]["total_users"],  # type: ignore[index]
        "rows": prepared.manifest["total_rows"],
        "zip_mb": round(size / 2**20, 1),
        "rss_before_mb": round(before, 1),
        "start_peak_mb": round(peak_before, 1),
        "download_peak_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one download, JSON out
    args = parser.parse_args()
    if args.one:
        audience_id, sample = json.loads(args.one)
        out = str(Path(args.data_dir) / "download.zip")
        print(json.dumps(download(args.data_dir, audience_id, sample, out)))
        return
    audience_id = prepare(args.data_dir, args.profiles)
    print(machine())
    for sample in (None, args.sample):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--data-dir",
                args.data_dir,
                "--one",
                json.dumps([audience_id, sample]),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(child.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
