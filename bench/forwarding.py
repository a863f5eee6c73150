"""Forwarding benchmark: batches sent over HTTP to a Kindred server are forwarded, enriched
from the stored profile and filtered, to a local webhook receiver (a process of its own),
end to end.

The load (bench/ingest.py's generator) sends realistic batches (10 events, ~3.6 KB) at a
fixed arrival rate, open loop, for a number of users drawn at random; the server's event
connection blocks one event name (2 of every 10 events), one custom-attribute key and the
IP, and gates on a consent purpose every user has given. The output is a webhook with
`batch_size` rows a request. Reported: enriched events/s arriving at the receiver while the
load runs and over the whole run (first batch sent to last event received), how long the
outbox took to drain after the load stopped, and the lag from the server's receipt to
arrival.

    python bench/forwarding.py --rate 1500 --duration 30
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CONFIG, ServerProcess, free_port, machine, percentile
from bench.ingest import Tally, batches_by_status, check_applied, drive

FORWARDED_PER_BATCH = 8  # "Share" is blocked: 2 of the 10 events of every batch


def config_text(receiver_port: int, batch_size: int) -> str:
    return (
        CONFIG.read_text()
        + f"""
[forwarding]
idle_s = 0.05

[[outputs]]
name = "receiver"
kind = "webhook"
url = "http://127.0.0.1:{receiver_port}/hook"
auth_header = "Authorization: Bearer bench"
batch_size = {batch_size}

[[event_connections]]
name = "bench-to-receiver"
input = "bench-server"
output = "receiver"
event_names_block = ["Share"]
attributes_block = ["liked"]
enrich_ip = false
consent_purpose = "marketing"
"""
    )


def receive(port: int, events: Synchronized[int], lags: Any, ready: Any) -> None:
    """The receiver process: counts enriched events and keeps each message's lag."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            now_ms = time.time() * 1000
            messages = json.loads(body)
            count = sum(len(m["events"]) for m in messages)
            with events.get_lock():
                events.value += count
            lags.put([now_ms - m["timestamp_unixtime_ms"] for m in messages])
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1500, help="batches a second offered")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100, help="rows a webhook request")
    args = parser.parse_args()
    args.returning = 1.0  # every batch from one of the `users` (bench.ingest's generator)

    work = Path(tempfile.mkdtemp(prefix="kindred-forwarding-"))
    receiver_port = free_port()
    config = work / "kindred.toml"
    config.write_text(config_text(receiver_port, args.batch_size))
    events: Synchronized[int] = multiprocessing.Value("q", 0)
    lags: Any = multiprocessing.Queue()
    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(
        target=receive, args=(receiver_port, events, lags, ready), daemon=True
    )
    receiver.start()
    ready.wait(10)
    server = ServerProcess(data_dir=work / "data", config=config)
    server.start()
    try:
        report = run(args, server, events, lags)
    finally:
        server.stop()
        receiver.terminate()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    by_status = report["server_batches_by_status"]
    assert isinstance(by_status, dict)
    check_applied(by_status)


def run(
    args: argparse.Namespace, server: ServerProcess, events: Synchronized[int], lags: Any
) -> dict[str, object]:
    tally = Tally()
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    sent_s = uvloop.run(drive(args, server.port, args.users, tally, seq_base=0))
    during = events.value
    accepted = tally.statuses.get(202, 0)
    expected = accepted * FORWARDED_PER_BATCH
    deadline = time.perf_counter() + 300
    while events.value < expected and time.perf_counter() < deadline:
        time.sleep(0.05)
    finished = time.perf_counter()
    all_lags: list[float] = []
    while not lags.empty():
        all_lags += lags.get()
    all_lags.sort()
    return {
        "machine": machine(),
        "offered_batches_per_s": args.rate,
        "duration_s": round(sent_s, 1),
        "batches_accepted": accepted,
        "statuses": tally.statuses,
        "events_forwarded": events.value,
        "events_expected": expected,
        "forwarded_events_per_s_during_load": round(during / sent_s),
        "forwarded_events_per_s_overall": round(events.value / (finished - started)),
        "drain_after_load_s": round(finished - started - sent_s, 2),
        "lag_ms": {
            "p50": round(percentile(all_lags, 0.5), 1),
            "p99": round(percentile(all_lags, 0.99), 1),
            "max": round(all_lags[-1], 1) if all_lags else None,
        },
        "server_cpu_s_per_1000_events": round(
            (server.cpu_seconds() - cpu_before) / max(events.value, 1) * 1000, 3
        ),
        "webhook_batch_size": args.batch_size,
        # The store is new each run, so no request id can have been seen: the server's own
        # count says so (bench/ingest.py's check).
        "server_batches_by_status": batches_by_status(server),
    }


if __name__ == "__main__":
    main()
