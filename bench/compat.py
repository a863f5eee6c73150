"""The write path as the in-process benchmarks drive it, for the code before and after the
write path became commands run by one handler table (issue: one visible write path), so
that the same benchmark scripts measure either source tree (`PYTHONPATH=<tree>/src`).

Before: `kindred.services.ingest` has `Accepted` and `observe`, `Container.ingest.ingest`
applies a group, the audience jobs (`kindred.services.audience_jobs`) take no
`Transactions`, the audience registry is told to reload after a direct store write, and a
unit of work's methods are flat (`uow.due_profiles`). After: `Accepted` in
`kindred.services.writes.commands`, `observe` in `kindred.wire.observe`,
`Container.commands.run_all`, the jobs (`kindred.services.audiences.jobs`) write through
`Transactions` (without a router: nothing forwarded, as the benchmarks' jobs never
forwarded before either), and a unit of work is in parts (`uow.profiles.due`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Sequence
from typing import Any, cast

from kindred.bootstrap import Container
from kindred.domain.profile import Profile
from kindred.domain.tenancy import InputDef
from kindred.ports import Clock

__all__ = [
    "LEGACY",
    "accepted",
    "audience_backfill",
    "audience_scheduler",
    "definitions_changed",
    "due_profiles",
    "run_all",
    "serving_gc_thresholds",
]

LEGACY = importlib.util.find_spec("kindred.services.writes") is None

if LEGACY:
    _ingest = importlib.import_module("kindred.services.ingest")
    _jobs: Any = importlib.import_module("kindred.services.audience_jobs")
else:
    from kindred.services.audiences.jobs import AudienceBackfill, AudienceScheduler
    from kindred.services.forwarding.transactions import Transactions
    from kindred.services.writes.commands import Accepted
    from kindred.wire.observe import observe


def accepted(source: InputDef, body: bytes, now_ms: int) -> Accepted:
    """The writer's item for a raw batch `body` from `source`, received at `now_ms`."""
    if LEGACY:
        item = _ingest.Accepted(source, _ingest.observe(body, source, now_ms), body)
        return cast("Accepted", item)
    return Accepted(source, observe(body, source, now_ms), body)


def run_all(container: Container, items: Sequence[Accepted]) -> list[str]:
    """Apply `items` as one group (one transaction), as the writer does; their statuses
    (`applied`, `duplicate`, ...)."""
    if LEGACY:
        legacy: Any = container
        return [str(outcome.status) for outcome in legacy.ingest.ingest(items)]
    return [outcome.status for outcome in container.commands.run_all(items)]


def audience_scheduler(container: Container, clock: Clock) -> AudienceScheduler:
    """The time-trigger scheduler over the container's store and audience registry."""
    if LEGACY:
        made = _jobs.AudienceScheduler(container.store, container.audience_registry, clock)
        return cast("AudienceScheduler", made)
    return AudienceScheduler(
        container.store, Transactions(container.store), container.audience_registry, clock
    )


def audience_backfill(
    container: Container, clock: Clock, chunks_per_run: int, *, processes: bool = True
) -> AudienceBackfill:
    """The audience backfill over the container's store and audience registry (without
    `processes`: every page computed in this process)."""
    if LEGACY:
        made = _jobs.AudienceBackfill(
            container.store, container.audience_registry, clock, chunks_per_run=chunks_per_run
        )
        return cast("AudienceBackfill", made)
    store = container.store
    # As the container builds it: on SQLite the activation's pages are synced once a run
    # (trees before that take no `durability`).
    extra: dict[str, Any] = {}
    if (
        hasattr(store, "deferred_sync")
        and "durability" in inspect.signature(AudienceBackfill).parameters
    ):
        extra["durability"] = store
    # As the container builds it: a large activation computes its pages in processes of
    # their own (trees before that have none).
    elsewhere = getattr(container, "activation_processes", None) if processes else None
    if elsewhere is not None:
        extra["elsewhere"] = elsewhere
    return AudienceBackfill(
        store,
        Transactions(store),
        container.audience_registry,
        clock,
        chunks_per_run=chunks_per_run,
        **extra,
    )


def definitions_changed(container: Container) -> None:
    """After audiences were written to the store directly: the code before reloads them
    only when told (the code after reads the definitions' version in every transaction)."""
    if LEGACY:
        registry: Any = container.audience_registry
        registry.invalidate()


def due_profiles(container: Container, now_ms: int) -> list[Profile]:
    """The profiles whose audience due time has come, read in a unit of work."""
    with container.store.unit_of_work() as uow:
        if LEGACY:
            flat: Any = uow
            return cast("list[Profile]", flat.due_profiles(now_ms, 10**9))
        return uow.profiles.due(now_ms, 10**9)


def serving_gc_thresholds() -> tuple[int, int, int] | None:
    """The collector thresholds `kindred serve` sets, None for a tree that sets none."""
    # Where a tree keeps them: its composition root, or (before) the serve command.
    for where in ("kindred.bootstrap.collector", "kindred.cli.serve"):
        try:
            found = getattr(importlib.import_module(where), "SERVING_GC_THRESHOLDS", None)
        except ImportError:
            continue
        if found is not None:
            return cast("tuple[int, int, int]", found)
    return None
