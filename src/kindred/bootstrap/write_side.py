"""The write side: the group writer and the command runner over the store, the sweeps
that run in the caller's thread, the data subject requests, and the clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kindred.bootstrap.forwarding import declared
from kindred.config import Settings
from kindred.domain.tenancy import Tenancy
from kindred.observability import PrometheusMetrics
from kindred.ports import (
    Clock,
    DeferredSync,
    Metrics,
    MpidSource,
    Store,
)
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.abtests import AbTestBook
from kindred.services.forwarding.catalog import OutputCatalog
from kindred.services.forwarding.router import Router
from kindred.services.forwarding.transactions import Transactions
from kindred.services.ingest.csv_import import CsvImporter
from kindred.services.ingest.quarantine import Quarantine
from kindred.services.ingest.rebuild import Rebuild
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.requests import DsrPolicy, DsrService
from kindred.services.privacy.retention import (
    LifetimeSweep,
)
from kindred.services.privacy.subjects import SubjectFinder
from kindred.services.write_path import write_path
from kindred.services.writes.commands import (
    Accepted,
    BatchOutcome,
)
from kindred.services.writes.group_writer import GroupWriter
from kindred.services.writes.runner import CommandRunner
from kindred.system import FernetBox, FileOffsetClock, SystemClock

__all__ = [
    "WriteSide",
    "clock_of",
    "definitions_side",
    "dsr_requests",
    "in_caller_thread",
    "lifetime_sweep",
    "through",
    "write_side",
]


@dataclass(frozen=True)
class WriteSide:
    audiences: AudienceRegistry
    calculated: CalculatedRegistry
    catalog: OutputCatalog
    transactions: Transactions
    commands: CommandRunner
    writer: GroupWriter
    tests: AbTestBook


def definitions_side(
    settings: Settings, store: Store, tenancy: Tenancy, *, box: FernetBox
) -> tuple[AudienceRegistry, OutputCatalog, AbTestBook, Transactions]:
    """The audiences, the outputs and their tests, and where write transactions open (the
    outbox rows of what each changed are written in it before it commits): what a
    process needs to write memberships, as an activation's processes do."""
    audiences = AudienceRegistry(store, tenancy)
    catalog = OutputCatalog(store, tenancy, declared(settings), box)
    tests = AbTestBook(store, catalog)
    catalog.check_variation = tests.check_connection
    router = Router(catalog, tenancy, lambda version: audiences.at(version).by_id, tests.at)
    return audiences, catalog, tests, Transactions(store, router)


def write_side(
    settings: Settings,
    store: Store,
    tenancy: Tenancy,
    metrics: Metrics,
    mpids: MpidSource,
    *,
    box: FernetBox,
) -> WriteSide:
    """The definitions the writes use, where write transactions open, the command
    runner and the group-commit writer."""
    audiences, catalog, tests, transactions = definitions_side(settings, store, tenancy, box=box)
    calculated = CalculatedRegistry(store)
    commands = write_path(
        store,
        mpids,
        metrics,
        tenancy.input_named,
        audiences,
        calculated=calculated,
        transactions=transactions,
    )
    # On SQLite a group's fsync overlaps the next group's work (GroupWriter, CommitSync).
    durability = store if isinstance(store, DeferredSync) else None
    writer = GroupWriter(commands.apply, max_group=settings.store.group_max, durability=durability)
    return WriteSide(audiences, calculated, catalog, transactions, commands, writer, tests)


def in_caller_thread(
    store: Store, tenancy: Tenancy, clock: Clock, commands: CommandRunner
) -> tuple[Quarantine, Rebuild, CsvImporter]:
    """The CLI's operations (quarantine replay, rebuild, CSV import): they apply batches in
    the caller's thread, as no writer runs in a command."""
    return (
        Quarantine(store, commands.run_all, tenancy.input_named, clock),
        Rebuild(store, tenancy),
        CsvImporter(commands.run_all, clock.now_ms),
    )


def lifetime_sweep(
    settings: Settings,
    transactions: Transactions,
    tenancy: Tenancy,
    clock: Clock,
    metrics: PrometheusMetrics,
) -> LifetimeSweep:
    return LifetimeSweep(
        transactions,
        tenancy,
        clock,
        chunk=settings.retention.sweep_chunk,
        on_deleted=metrics.profiles_expired.inc,
        on_exits=metrics.expired_exits.inc,
    )


def dsr_requests(
    settings: Settings, store: Store, transactions: Transactions, clock: Clock, receipts: Receipts
) -> DsrService:
    privacy = settings.privacy
    day_ms = 86_400_000
    subjects = SubjectFinder(store)
    policy = DsrPolicy(
        waiting_period_ms=int(privacy.waiting_period_days * day_ms),
        skip_waiting_ms=int(privacy.skip_waiting_period_hours * 3_600_000),
        results_kept_ms=int(privacy.results_days * day_ms),
        run_interval_ms=int(privacy.run_interval_s * 1000),
        public_url=privacy.public_url,
    )
    return DsrService(
        store, Erasure(subjects, transactions, clock), subjects, clock, policy, receipts=receipts
    )


def through(writer: GroupWriter) -> Callable[[Sequence[Accepted]], list[BatchOutcome]]:
    """Apply batches as the server applies them: each submitted to the group writer,
    then waited for."""

    def apply(items: Sequence[Accepted]) -> list[BatchOutcome]:
        futures = [writer.submit(item) for item in items]
        return [future.result() for future in futures]

    return apply


def clock_of(settings: Settings) -> Clock:
    """The system clock, or one a file moves (tests drive time through it)."""
    return FileOffsetClock(settings.clock_file) if settings.clock_file else SystemClock()
