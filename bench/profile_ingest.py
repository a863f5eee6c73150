"""Batches sent to a server in the background while another benchmark measures it: the
open-loop load of bench/ingest.py (realistic batches at a fixed arrival rate, 70% from
returning users), on a thread of its own, with request ids and new users derived from a
run id no run before it used."""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Any

import uvloop

from bench.common import ServerProcess, percentile
from bench.ingest import RUN_SPAN, Tally, batches_by_status, drive

__all__ = ["IngestLoad"]


class IngestLoad:
    def __init__(self, server: ServerProcess, rate: float, duration_s: float, seeded: int):
        self._server = server
        self._args = argparse.Namespace(
            rate=rate, duration=duration_s, connections=64, returning=0.7
        )
        self._seeded = seeded
        self._tally = Tally()
        self._elapsed = 0.0
        self._thread = threading.Thread(target=self._run, name="ingest-load", daemon=True)
        self._counted: dict[str, int] = {}

    def start(self) -> None:
        if self._server.workers == 1:
            self._counted = batches_by_status(self._server)
        self._thread.start()
        # Connections are opened before the first batch is due; let the rate settle.
        time.sleep(0.5)

    def _run(self) -> None:
        seq_base = (secrets.randbelow(2**20) + 1) * RUN_SPAN
        coroutine = drive(self._args, self._server.port, self._seeded, self._tally, seq_base)
        self._elapsed = uvloop.run(coroutine)

    def finish(self) -> dict[str, Any]:
        """Waits for the last batch; what the load saw and what the server counted."""
        self._thread.join()
        counted: dict[str, int] | None = None
        if self._server.workers == 1:
            # With several workers each has its counters, and /metrics is one worker's.
            after = batches_by_status(self._server)
            counted = {k: v - self._counted.get(k, 0) for k, v in after.items()}
        latencies = sorted(self._tally.latencies)
        accepted = self._tally.statuses.get(202, 0)
        return {
            "offered_per_s": self._args.rate,
            "batches_per_s": round(accepted / max(self._elapsed, 1e-9)),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "statuses": self._tally.statuses,
            # the server's own counters over the load (one worker only: else None)
            "server_batches_by_status": counted,
        }
