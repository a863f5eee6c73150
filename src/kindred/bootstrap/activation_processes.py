"""The processes a large activation computes its pages in (AUD-5): Python runs one thread of
Python at a time, so an activation's pass over a million profiles uses a second core only
from another process. Each process opens the same store, builds the audiences from its
definitions as the server does, and runs its share of a run's spans
(`ActivationPass.run_spans`): pages read and computed there, saved in short transactions
that check the versions read, synced to the disk before the share is reported done. The
server process keeps the cursor, as with a pass run in-process.

The processes start with the first activation large enough to use them and stay for the
next; `close` ends them."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from kindred.audiences.definition import AudienceDef
from kindred.bootstrap.collector import serving_collector
from kindred.bootstrap.security import secret_box
from kindred.bootstrap.stores import make_store
from kindred.bootstrap.write_side import clock_of, definitions_side
from kindred.config import Settings
from kindred.config.tenancy import tenancy_from
from kindred.ports import DeferredSync, Store
from kindred.services.audiences.activation import ActivationPass, Span

__all__ = [
    "ACTIVATION_WAL_BYTES",
    "NICENESS",
    "SHARES_PER_PROCESS",
    "ActivationProcesses",
    "activation_store",
    "shares",
]

# A run's spans go out in this many shares a process: a process that is done with one
# takes the next, so none waits long for the slowest at the run's end (each share is
# synced to the disk once).
SHARES_PER_PROCESS = 4

# How often an activation's process checks that the server that started it is alive.
PARENT_CHECK_S = 1.0

# An activation's processes yield the CPU to the server's own threads: live batches wait
# less behind an activation's computing (measured: ingest's median latency during one
# 0.65 of what it was, the activation no slower; bench/RESULTS.md).
NICENESS = 10

# On SQLite, the WAL size past which an activation process's own commits checkpoint it
# (the server's writers keep theirs, 16 MB). A pass at 1,000,000 profiles wrote ~140 MB/s
# to the disk (WAL and checkpoints): the WAL passed 16 MB every dozen or so page commits,
# and that commit copied it into the database and synced it while holding the store's
# writer, the other process waiting for it. Past this size the
# background checkpointer (CheckpointAhead) has copied most of it already. Measured at
# 1,000,000 profiles: the pass alone took 0.81 of the time (bench/RESULTS.md).
ACTIVATION_WAL_BYTES = 256 * 1024 * 1024

# This process's pass, when it is one of an activation's processes (set by `_start`).
_PASS: list[ActivationPass] = []


def _start(settings: Settings, page: int, parent: int) -> None:
    # A server killed outright leaves no process behind holding its store: each ends
    # itself once its parent is gone (the pool's pipes do not tell it). The parent's id
    # comes from the parent: one killed while this process was starting is gone already.
    threading.Thread(
        target=_end_with, args=(parent,), name="activation-parent-watch", daemon=True
    ).start()
    os.nice(NICENESS)
    store = activation_store(settings)
    tenancy = tenancy_from(settings)
    audiences, _, _, transactions = definitions_side(
        settings, store, tenancy, box=secret_box(settings)
    )
    durability = store if isinstance(store, DeferredSync) else None
    serving_collector()  # a long-lived process of the server's
    _PASS.append(
        ActivationPass(
            store, transactions, audiences, clock_of(settings), page=page, durability=durability
        )
    )


def activation_store(settings: Settings) -> Store:
    """The store as an activation's process opens it (see ACTIVATION_WAL_BYTES)."""
    return make_store(settings, wal_limit_bytes=ACTIVATION_WAL_BYTES)


def _end_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    # Mid-page is safe: a transaction not committed is rolled back by the store.
    os._exit(0)


def _run(
    audience_id: int, updated_ms: int, now_ms: int, scope: str, spans: Sequence[Span]
) -> list[int | None]:
    return _PASS[0].run_spans(audience_id, updated_ms, now_ms, scope, spans)


def shares(spans: Sequence[Span], count: int) -> list[list[Span]]:
    """The spans in `count` runs of neighbours (each read as a stretch of the store in
    order), as even as the count allows; no empty share."""
    size, extra = divmod(len(spans), count)
    found: list[list[Span]] = []
    at = 0
    for i in range(count):
        step = size + (1 if i < extra else 0)
        if step:
            found.append(list(spans[at : at + step]))
        at += step
    return found


class ActivationProcesses:
    """`services.audiences.activation.SpanRunner` over `processes` processes of their own."""

    def __init__(self, settings: Settings, *, page: int, processes: int) -> None:
        self._settings = settings
        self._page = page
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def run_spans(
        self, audience: AudienceDef, now_ms: int, scope: str, spans: Sequence[Span]
    ) -> list[int | None]:
        pool = self._started()
        counts: list[int | None] = []
        try:
            futures: list[Future[list[int | None]]] = [
                pool.submit(_run, audience.id, audience.updated_ms, now_ms, scope, share)
                for share in shares(spans, self._processes * SHARES_PER_PROCESS)
            ]
            for future in futures:
                counts.extend(future.result())
        except BrokenProcessPool:
            # One of them died (killed, out of memory): what it committed stays and is
            # done again harmlessly (the marks); the next run starts new processes.
            self._stopped(pool)
            return counts + [None] * (len(spans) - len(counts))
        return counts

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self._processes,
                    # Not forked: the server's threads and open connections stay its own.
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start,
                    initargs=(self._settings, self._page, os.getpid()),
                )
            return self._pool

    def _stopped(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
