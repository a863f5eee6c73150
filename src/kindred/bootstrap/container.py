"""The container: every service of one process, built from the settings (`build`), and
what it starts and stops."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

from kindred.bootstrap.activation_processes import ActivationProcesses
from kindred.bootstrap.forwarding import forwarding
from kindred.bootstrap.jobs import applying_jobs, estimate_jobs
from kindred.bootstrap.remote_writer import RemoteWriter
from kindred.bootstrap.security import (
    SERVER_KEY_NAMES,
    admin_callers,
    configured_users,
    credentials_and_tokens,
    key_overrides,
    load_processor_key,
    secret_box,
    ui_sessions,
)
from kindred.bootstrap.stores import make_store
from kindred.bootstrap.write_side import (
    clock_of,
    dsr_requests,
    in_caller_thread,
    lifetime_sweep,
    through,
    write_side,
)
from kindred.config import Settings
from kindred.config.keys import (
    KEY_NAMES,
    KeySource,
    encode_key,
    generate_key,
    key_source,
    read_keys,
    write_key_file,
)
from kindred.config.tenancy import tenancy_from
from kindred.domain.errors import ConfigError
from kindred.domain.tenancy import Tenancy
from kindred.observability import PrometheusMetrics
from kindred.ports import (
    Clock,
    DeferredSync,
    MpidSource,
    Secrets,
    Store,
)
from kindred.roles import batch_log, partition_leases, roles
from kindred.services.access.attempts import SecretChecker
from kindred.services.access.credentials import CredentialRegistry, TokenService
from kindred.services.access.server_keys import ServerKeys
from kindred.services.access.sessions import UiSessions
from kindred.services.access.users import AdminCallers, UserDirectory
from kindred.services.audiences.abtests import AbTestService
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.connections import BulkConnections
from kindred.services.audiences.downloads import AudienceDownloads
from kindred.services.audiences.estimates import REFRESH_PAUSE_S, AudienceEstimator
from kindred.services.audiences.jobs import BACKFILL_CHUNK, AudienceBackfill, AudienceScheduler
from kindred.services.audiences.platform import PlatformAudiences
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.audiences.shadows import ShadowEdits
from kindred.services.audiences.standard import StandardAudiences
from kindred.services.background import Periodic
from kindred.services.calculated.admin import CalculatedService
from kindred.services.calculated.jobs import CalculatedBackfill
from kindred.services.forwarding.admin import DeliveryAdmin
from kindred.services.forwarding.catalog import OutputCatalog
from kindred.services.forwarding.runner import DeliveryRunner
from kindred.services.identity.idsync import IdentityCalls
from kindred.services.identity.ledger import MergeLedger
from kindred.services.ingest.csv_import import CsvImporter
from kindred.services.ingest.quarantine import Quarantine
from kindred.services.ingest.rebuild import Rebuild
from kindred.services.partitions.appender import LogAppender
from kindred.services.partitions.status import LogStatus, read_status
from kindred.services.partitions.worker import PartitionWorker
from kindred.services.privacy.bulk import BulkDeletion
from kindred.services.privacy.callbacks import (
    StatusCallbacks,
)
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.requests import DsrService
from kindred.services.privacy.retention import (
    AttributeExpirySweep,
    EventRetention,
    LifetimeSweep,
    Retention,
)
from kindred.services.privacy.signing import ProcessorKey
from kindred.services.privacy.subjects import SubjectFinder
from kindred.services.profiles.activity import ActivityReader
from kindred.services.profiles.profile_api import ProfileApiService
from kindred.services.profiles.queries import ProfileQueries
from kindred.services.writes.group_writer import GroupWriter
from kindred.services.writes.runner import CommandRunner
from kindred.stream.writer_link import WriterLink
from kindred.system import FernetBox, SecureMpids, SecureSecrets

__all__ = ["Container", "build"]


@dataclass
class Container:
    """Everything a running Kindred needs, wired once. The API and the CLI use its services;
    the store is the composition root's (and tests') to reach."""

    settings: Settings
    tenancy: Tenancy
    store: Store
    clock: Clock
    metrics: PrometheusMetrics
    commands: CommandRunner
    identity_calls: IdentityCalls
    writer: GroupWriter
    credentials: CredentialRegistry
    tokens: TokenService
    server_keys: ServerKeys
    ui_sessions: UiSessions
    users: UserDirectory
    admin_callers: AdminCallers
    profile_api: ProfileApiService
    profiles: ProfileQueries
    activity: ActivityReader
    ledger: MergeLedger
    quarantine: Quarantine
    rebuild: Rebuild
    # The server's CSV import goes through its running writer; the CLI's applies in its
    # own thread, as no writer runs there.
    csv_import: CsvImporter
    csv_import_direct: CsvImporter
    sweep: LifetimeSweep
    attribute_expiry: AttributeExpirySweep
    retention: Retention
    audiences: AudienceService
    downloads: AudienceDownloads
    estimates: AudienceEstimator
    bulk_connections: BulkConnections
    abtests: AbTestService
    platform_audiences: PlatformAudiences
    audience_registry: AudienceRegistry
    audience_schedule: AudienceScheduler
    audience_backfill: AudienceBackfill
    standard_audiences: StandardAudiences
    audience_shadows: ShadowEdits
    calculated: CalculatedService
    calculated_backfill: CalculatedBackfill
    catalog: OutputCatalog
    deliveries: DeliveryAdmin
    delivery: DeliveryRunner
    secret_box: FernetBox
    dsr: DsrService
    bulk_delete: BulkDeletion
    processor_key: ProcessorKey
    receipts: Receipts
    # Role api: batches go to the batch log; role worker: its partitions applied here.
    appender: LogAppender | None = None
    # `kindred serve --writer-process`: the events API's batches go to the writer process.
    remote_writer: RemoteWriter | None = None
    partition_worker: PartitionWorker | None = None
    # Where a large activation computes its pages (None: in this process).
    activation_processes: ActivationProcesses | None = None
    started: bool = field(default=False)
    _background: list[Periodic] = field(default_factory=list)

    @property
    def role(self) -> str:
        return self.settings.server.role

    def jobs(self) -> list[str]:
        """The background jobs this process runs (role api: the estimator's refresh
        alone)."""
        return [task.name for task in self._background]

    def log_status(self) -> LogStatus:
        """The batch log's backlog and each partition's position and holder (`kindred
        stream status`)."""
        settings = self.settings
        leases = partition_leases(self.store)
        return read_status(lambda: batch_log(settings), leases, settings.stream.partitions)

    def migrate(self) -> int:
        """Bring the store's schema up to date (every command does before using it),
        encrypt output secrets an older version kept in plaintext, and stop or start over
        the initial syncs of the config file's audience connections disabled or enabled
        again; the schema version."""
        version = self.store.migrate()
        self.catalog.encrypt_stored()
        self.catalog.settle_syncs()
        return version

    def key_sources(self) -> list[KeySource]:
        """Where each of the server's keys comes from (`kindred keys list`)."""
        return [key_source(self.settings, name) for name in KEY_NAMES]

    def rotate_key(self, name: str) -> str:
        """Replace the key `name` with a new one (`kindred keys rotate`); what was done.

        A stored key is replaced in the store, a key file rewritten; a key from the
        environment cannot be rotated here, except the secrets key, whose stored secrets
        are encrypted again with the first of the variable's keys. Rotating the secrets
        key encrypts every stored output secret again under the new key."""
        source = key_source(self.settings, name)
        if name == "secrets":
            return self._rotate_secrets_key(source)
        stored_as = SERVER_KEY_NAMES[name]
        if source.kind == "env":
            raise ConfigError(
                f"the {name} key comes from {source.where}: set a new key there (kindred keys"
                " generate) and restart the servers"
            )
        if source.kind == "file":
            write_key_file(source.where, [generate_key()])
        else:
            self.server_keys.rotate(stored_as)
        return f"{name}: new key in {source.describe()}"

    def _rotate_secrets_key(self, source: KeySource) -> str:
        if source.kind == "file":
            old = [encode_key(k) for k in read_keys(source)]
            new = generate_key()
            # The old keys still decrypt while the secrets are encrypted again; a process
            # that reads the file meanwhile can read both.
            write_key_file(source.where, [new, *old])
            self.catalog.encrypt_stored(all_of_them=True)
            write_key_file(source.where, [new])
            self.secret_box.reload()
            done = f"new key in {source.describe()}"
        else:
            self.catalog.encrypt_stored(all_of_them=True)
            done = f"stored secrets encrypted with the first key of {source.where}"
        return f"secrets: {done}"

    def compact(self) -> tuple[int, int]:
        """Give back the store's free space (`kindred compact`); its size in bytes before
        and after."""
        return self.store.compact()

    def start(self) -> None:
        self.migrate()
        self.writer.start()
        jobs = estimate_jobs(self)
        if self.role != "api":
            # Background jobs run where batches are applied: role all, or the workers.
            if self.settings.forwarding.deliver_in_server:
                self.delivery.reconcile()
            jobs = applying_jobs(self) + jobs
        for job in jobs:
            job.start()
            self._background.append(job)
        if self.partition_worker is not None:
            self.partition_worker.start()
        self.started = True

    def close(self) -> None:
        """Stop background work, drain the writer (everything submitted is committed), then
        close the store. Also ends a container that was never started (the CLI's)."""
        if self.partition_worker is not None:
            # First: what it submits needs the writer and the store.
            self.partition_worker.stop()
        for task in self._background:
            task.stop()
        self._background.clear()
        self.delivery.stop()
        if self.activation_processes is not None:
            self.activation_processes.close()
        self.writer.stop()
        self.store.close()
        self.started = False


def activation_processes_of(settings: Settings) -> ActivationProcesses | None:
    processes = settings.audiences.activation_processes
    if not processes:
        return None
    return ActivationProcesses(settings, page=BACKFILL_CHUNK, processes=processes)


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    mpids: MpidSource | None = None,
    secrets: Secrets | None = None,
    store: Store | None = None,
    writer_socket: str | None = None,
) -> Container:
    """`store`: instead of the one the settings name (tests: a memory store).
    `writer_socket`: where the writer process listens, in an HTTP process of `kindred
    serve --writer-process`."""
    # Only a store the settings name can be opened by an activation's own processes.
    activation_processes = activation_processes_of(settings) if store is None else None
    store = store or make_store(settings)
    metrics = PrometheusMetrics()
    tenancy = tenancy_from(settings)
    clock = clock or clock_of(settings)
    secrets = secrets or SecureSecrets()
    box = secret_box(settings)
    side = write_side(settings, store, tenancy, metrics, mpids or SecureMpids(), box=box)
    audience_registry, calculated_registry = side.audiences, side.calculated
    catalog, transactions, commands, writer = (
        side.catalog,
        side.transactions,
        side.commands,
        side.writer,
    )
    server_keys = ServerKeys(store, secrets, key_overrides(settings))
    # One thread checks secrets (token requests, UI sign-in) for the whole process.
    secret_checker = SecretChecker()
    registry, tokens = credentials_and_tokens(
        settings, store, clock, secrets, keys=server_keys, checker=secret_checker
    )
    deliveries, delivery = forwarding(
        settings,
        store,
        tenancy=tenancy,
        clock=clock,
        metrics=metrics,
        catalog=catalog,
        audiences=lambda: audience_registry.current().by_id,
        tests=side.tests,
    )
    users = UserDirectory(configured_users(settings), store, clock, secrets)
    quarantine, rebuild, csv_import_direct = in_caller_thread(store, tenancy, clock, commands)
    audiences = AudienceService(store, transactions, audience_registry, clock)
    schedule = AudienceScheduler(
        store,
        transactions,
        audience_registry,
        clock,
        chunk=settings.audiences.schedule_chunk,
        calculated=calculated_registry,
    )
    sweep = lifetime_sweep(settings, transactions, tenancy, clock, metrics)
    attribute_expiry = AttributeExpirySweep(
        transactions,
        audience_registry,
        tenancy,
        clock,
        calculated=calculated_registry,
        chunk=settings.retention.sweep_chunk,
        on_removed=metrics.attributes_expired.inc,
        on_exits=metrics.attribute_expiry_exits.inc,
    )
    processor_key = load_processor_key(settings, store)
    receipts = Receipts(store, processor_key, clock, settings.privacy.processor_domain)
    dsr = dsr_requests(settings, store, transactions, clock, receipts)
    dsr.on_change(StatusCallbacks(processor_key, clock, dsr.status_object))
    appender, partition_worker = roles(
        settings, store, tenancy=tenancy, clock=clock, metrics=metrics, writer=writer
    )
    return Container(
        settings=settings,
        tenancy=tenancy,
        store=store,
        clock=clock,
        metrics=metrics,
        commands=commands,
        identity_calls=IdentityCalls(store),
        writer=writer,
        credentials=registry,
        tokens=tokens,
        server_keys=server_keys,
        ui_sessions=ui_sessions(
            settings, users, store, clock, secrets, keys=server_keys, checker=secret_checker
        ),
        users=users,
        admin_callers=admin_callers(settings, users, clock, secret_checker),
        profile_api=ProfileApiService(store, tenancy, clock, calculated_registry.current),
        profiles=ProfileQueries(store, tenancy, clock),
        activity=ActivityReader(store),
        ledger=MergeLedger(store),
        quarantine=quarantine,
        rebuild=rebuild,
        csv_import=CsvImporter(through(writer), clock.now_ms),
        csv_import_direct=csv_import_direct,
        audiences=audiences,
        downloads=AudienceDownloads(store, audiences, clock, tests=side.tests.get),
        estimates=AudienceEstimator(
            store,
            audience_registry,
            clock,
            sample_size=settings.audiences.estimate_sample,
            pause=functools.partial(time.sleep, REFRESH_PAUSE_S),
        ),
        bulk_connections=BulkConnections(catalog, audiences),
        abtests=AbTestService(side.tests, audiences, store, clock),
        platform_audiences=PlatformAudiences(audiences, catalog, tenancy),
        audience_registry=audience_registry,
        audience_schedule=schedule,
        audience_backfill=AudienceBackfill(
            store,
            transactions,
            audience_registry,
            clock,
            chunk=BACKFILL_CHUNK,
            durability=store if isinstance(store, DeferredSync) else None,
            elsewhere=activation_processes,
        ),
        standard_audiences=StandardAudiences(
            store,
            transactions,
            audience_registry,
            clock,
            expiry_days=settings.audiences.standard_expiry_days,
        ),
        audience_shadows=ShadowEdits(store, transactions, audience_registry, audiences, clock),
        calculated=CalculatedService(store, transactions, calculated_registry, tenancy, clock),
        calculated_backfill=CalculatedBackfill(store, transactions, tenancy.input_named, clock),
        catalog=catalog,
        deliveries=deliveries,
        delivery=delivery,
        secret_box=box,
        sweep=sweep,
        attribute_expiry=attribute_expiry,
        retention=Retention(
            sweep,
            EventRetention(
                transactions,
                store,
                SubjectFinder(store),
                calculated_registry,
                tenancy,
                clock=clock,
                chunk=settings.retention.sweep_chunk,
                on_pruned=metrics.events_pruned.inc,
                on_recomputed=metrics.retention_recomputed.inc,
            ),
            attribute_expiry,
        ),
        dsr=dsr,
        bulk_delete=BulkDeletion(
            Erasure(SubjectFinder(store), transactions, clock),
            store,
            tenancy,
            on_deleted=metrics.profiles_deleted.inc,
            receipts=receipts,
        ),
        processor_key=processor_key,
        receipts=receipts,
        appender=appender,
        remote_writer=RemoteWriter(WriterLink(writer_socket), metrics) if writer_socket else None,
        activation_processes=activation_processes,
        partition_worker=partition_worker,
    )
