"""The cyclic collector as a long-lived process of the server sets it."""

from __future__ import annotations

import gc

__all__ = ["SERVING_GC_THRESHOLDS", "serving_collector"]

# The cyclic collector's thresholds while serving: a young generation of 50,000 objects
# rather than 700, and older generations collected far more rarely. Nearly everything a
# batch allocates dies by reference counting; with the default thresholds what was
# merely alive at a collection (a group's profiles, a request's decoded batch) was
# promoted and then walked again by full collections, each holding the GIL for tens of
# ms and finding nothing: ~11% of the server's CPU under ingest, and its worst latencies
# (bench/RESULTS.md, "SQLite ingest, 3x").
SERVING_GC_THRESHOLDS = (50_000, 20, 100)


def serving_collector() -> None:
    """What start-up built lives as long as the process: no collection walks it again;
    then the serving thresholds."""
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
