"""The composition root: Settings -> store, services, writer. The only place naming adapters."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kindred.audiences.definition import AudienceDef
from kindred.config import AttemptLimitSettings, Settings
from kindred.config.credentials import credentials_from
from kindred.config.keys import (
    KEY_NAMES,
    KeySource,
    encode_key,
    generate_key,
    key_source,
    read_keys,
    read_pem_file,
    replace_private_file,
    write_key_file,
)
from kindred.config.references import resolve_output
from kindred.config.tenancy import tenancy_from
from kindred.domain.errors import ConfigError
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef
from kindred.domain.tenancy import Tenancy
from kindred.domain.users import UserRecord
from kindred.observability import PrometheusMetrics
from kindred.outputs import make_callback_sink, make_sink
from kindred.ports import (
    Clock,
    Metrics,
    MpidSource,
    Secrets,
    Store,
)
from kindred.roles import batch_log, partition_leases, process_name, roles
from kindred.services.access.attempts import AttemptLimit, SecretChecker
from kindred.services.access.credentials import CredentialRegistry, TokenLimits, TokenService
from kindred.services.access.server_keys import TOKEN_SIGNING_KEY, UI_SESSION_KEY, ServerKeys
from kindred.services.access.sessions import SignInLimits, UiSessions
from kindred.services.access.users import AdminCallers, KeyLimits, UserDirectory
from kindred.services.audiences.abtests import AbTestService
from kindred.services.audiences.admin import AudienceService
from kindred.services.audiences.connections import BulkConnections
from kindred.services.audiences.downloads import AudienceDownloads
from kindred.services.audiences.estimates import AudienceEstimator
from kindred.services.audiences.jobs import AudienceBackfill, AudienceScheduler
from kindred.services.audiences.platform import PlatformAudiences
from kindred.services.audiences.registry import AudienceRegistry
from kindred.services.audiences.shadows import ShadowEdits
from kindred.services.audiences.standard import StandardAudiences
from kindred.services.background import Periodic
from kindred.services.calculated.admin import CalculatedService
from kindred.services.calculated.jobs import CalculatedBackfill
from kindred.services.calculated.registry import CalculatedRegistry
from kindred.services.forwarding.abtests import AbTestBook
from kindred.services.forwarding.admin import DeliveryAdmin
from kindred.services.forwarding.catalog import OutputCatalog, OutputsAndConnections
from kindred.services.forwarding.delivery import DeliveryRunner, Lane, Renderer
from kindred.services.forwarding.router import Router
from kindred.services.forwarding.transactions import Transactions
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
    CALLBACK_CONNECTION,
    StatusCallbacks,
    callback_lane,
)
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.receipts import Receipts
from kindred.services.privacy.requests import DsrPolicy, DsrService
from kindred.services.privacy.retention import (
    AttributeExpirySweep,
    EventRetention,
    LifetimeSweep,
    Retention,
)
from kindred.services.privacy.signing import ProcessorKey, generate_bundle, split_certificates
from kindred.services.privacy.subjects import SubjectFinder
from kindred.services.profiles.activity import ActivityReader
from kindred.services.profiles.profile_api import ProfileApiService
from kindred.services.profiles.queries import ProfileQueries
from kindred.services.write_path import write_path
from kindred.services.writes.commands import (
    Accepted,
    BatchOutcome,
)
from kindred.services.writes.group_writer import GroupWriter
from kindred.services.writes.runner import CommandRunner
from kindred.system import FernetBox, FileOffsetClock, SecureMpids, SecureSecrets, SystemClock

__all__ = ["Container", "build", "make_store"]

# The keys `kindred keys` names that ServerKeys keeps (the secrets key is the SecretBox's).
_SERVER_KEY_NAMES = {"token-signing": TOKEN_SIGNING_KEY, "ui-session": UI_SESSION_KEY}


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
    partition_worker: PartitionWorker | None = None
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
        stored_as = _SERVER_KEY_NAMES[name]
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
        if self.role != "api":
            # Background jobs run where batches are applied: role all, or the workers.
            self._start_jobs()
        self._start_estimates()
        if self.partition_worker is not None:
            self.partition_worker.start()
        self.started = True

    def _start_jobs(self) -> None:
        interval = self.settings.retention.sweep_interval_s
        if interval > 0:
            # The first sweep soon after start, so that short-lived processes sweep too.
            sweeper = Periodic(
                "retention", interval, self.retention.run, first_after_s=min(interval, 60.0)
            )
            sweeper.start()
            self._background.append(sweeper)
        expiry_every = self.settings.retention.expiry_interval_s
        if expiry_every > 0 and self.tenancy.attribute_ttls:
            # The first run soon after start: a rule just configured reaches the profiles
            # stored before it.
            expiry = Periodic(
                "attribute-expiry",
                expiry_every,
                self.attribute_expiry.run,
                first_after_s=min(expiry_every, 60.0),
            )
            expiry.start()
            self._background.append(expiry)
        audiences = self.settings.audiences
        for name, every, task in (
            ("audience-schedule", audiences.schedule_interval_s, self.audience_schedule.run),
            ("audience-backfill", audiences.backfill_interval_s, self.audience_backfill.run),
            ("standard-audiences", audiences.backfill_interval_s, self.standard_audiences.run),
            ("audience-shadows", audiences.backfill_interval_s, self.audience_shadows.run),
            ("calculated-backfill", audiences.backfill_interval_s, self.calculated_backfill.run),
        ):
            if every > 0:
                periodic = Periodic(name, every, task)
                periodic.start()
                self._background.append(periodic)
        dsr_every = self.settings.privacy.run_interval_s
        if dsr_every > 0:
            requests = Periodic("dsr-requests", dsr_every, self.dsr.run_due)
            requests.start()
            self._background.append(requests)
        if self.settings.forwarding.deliver_in_server:
            self.delivery.reconcile()
            follow = Periodic("delivery-reconcile", 2.0, self.delivery.reconcile)
            follow.start()
            self._background.append(follow)

    def _start_estimates(self) -> None:
        """The estimator's samples are read by the process whose UI and admin API answer
        estimates: every role."""
        audiences = self.settings.audiences
        if audiences.estimate_refresh_s > 0:
            # The first run at once: the samples are warm for the first estimates.
            estimates = Periodic(
                "audience-estimates",
                audiences.estimate_refresh_s,
                self.estimates.refresh,
                first_after_s=0.0,
            )
            estimates.start()
            self._background.append(estimates)

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
        self.writer.stop()
        self.store.close()
        self.started = False


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    mpids: MpidSource | None = None,
    secrets: Secrets | None = None,
    store: Store | None = None,
) -> Container:
    """`store`: instead of the one the settings name (tests: a memory store)."""
    store = store or make_store(settings)
    metrics = PrometheusMetrics()
    tenancy = tenancy_from(settings)
    clock = clock or _clock(settings)
    secrets = secrets or SecureSecrets()
    box = _secret_box(settings)
    side = _write_side(settings, store, tenancy, metrics, mpids or SecureMpids(), box=box)
    audience_registry, calculated_registry = side.audiences, side.calculated
    catalog, transactions, commands, writer = (
        side.catalog,
        side.transactions,
        side.commands,
        side.writer,
    )
    server_keys = ServerKeys(store, secrets, _key_overrides(settings))
    # One thread checks secrets (token requests, UI sign-in) for the whole process.
    secret_checker = SecretChecker()
    registry, tokens = _tokens(
        settings, store, clock, secrets, keys=server_keys, checker=secret_checker
    )
    deliveries, delivery = _forwarding(
        settings,
        store,
        tenancy=tenancy,
        clock=clock,
        metrics=metrics,
        catalog=catalog,
        audiences=lambda: audience_registry.current().by_id,
        tests=side.tests,
    )
    users = UserDirectory(_configured_users(settings), store, clock, secrets)
    quarantine, rebuild, csv_import_direct = _in_caller_thread(store, tenancy, clock, commands)
    audiences = AudienceService(store, transactions, audience_registry, clock)
    schedule = AudienceScheduler(
        store,
        transactions,
        audience_registry,
        clock,
        chunk=settings.audiences.schedule_chunk,
        calculated=calculated_registry,
    )
    sweep = _sweep(settings, transactions, tenancy, clock, metrics)
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
    processor_key = _processor_key(settings, store)
    receipts = Receipts(store, processor_key, clock, settings.privacy.processor_domain)
    dsr = _dsr(settings, store, transactions, clock, receipts)
    dsr.on_change(StatusCallbacks(processor_key, clock, dsr.status_object).rows)
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
        ui_sessions=_ui_sessions(
            settings, users, store, clock, secrets, keys=server_keys, checker=secret_checker
        ),
        users=users,
        admin_callers=_admin_callers(settings, users, clock, secret_checker),
        profile_api=ProfileApiService(store, tenancy, clock, calculated_registry.current),
        profiles=ProfileQueries(store, tenancy, clock),
        activity=ActivityReader(store),
        ledger=MergeLedger(store),
        quarantine=quarantine,
        rebuild=rebuild,
        csv_import=CsvImporter(_through(writer), clock.now_ms),
        csv_import_direct=csv_import_direct,
        audiences=audiences,
        downloads=AudienceDownloads(store, audiences, clock, tests=side.tests.get),
        estimates=AudienceEstimator(
            store,
            audience_registry,
            clock,
            sample_size=settings.audiences.estimate_sample,
        ),
        bulk_connections=BulkConnections(catalog, audiences),
        abtests=AbTestService(side.tests, audiences, store, clock),
        platform_audiences=PlatformAudiences(audiences, catalog, tenancy),
        audience_registry=audience_registry,
        audience_schedule=schedule,
        audience_backfill=AudienceBackfill(store, transactions, audience_registry, clock),
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
        partition_worker=partition_worker,
    )


def _secret_box(settings: Settings) -> FernetBox:
    """Encryption of the output secrets kept in the store, with the secrets key (read, or
    its file made, when a secret is first sealed or opened)."""
    source = key_source(settings, "secrets")
    return FernetBox(lambda: read_keys(source), describe=f"the secrets key ({source.describe()})")


def _key_overrides(settings: Settings) -> dict[str, bytes]:
    """The signing keys given in the environment or a key file (else the store's)."""
    found = {}
    for name, stored_as in _SERVER_KEY_NAMES.items():
        source = key_source(settings, name)
        if source.kind != "store":
            found[stored_as] = read_keys(source)[0]
    return found


@dataclass(frozen=True)
class _WriteSide:
    audiences: AudienceRegistry
    calculated: CalculatedRegistry
    catalog: OutputCatalog
    transactions: Transactions
    commands: CommandRunner
    writer: GroupWriter
    tests: AbTestBook


def _write_side(
    settings: Settings,
    store: Store,
    tenancy: Tenancy,
    metrics: Metrics,
    mpids: MpidSource,
    *,
    box: FernetBox,
) -> _WriteSide:
    """The definitions the writes use, where write transactions open, the command
    runner and the group-commit writer."""
    audiences = AudienceRegistry(store, tenancy)
    calculated = CalculatedRegistry(store)
    catalog = OutputCatalog(store, tenancy, _declared(settings), box)
    tests = AbTestBook(store, catalog)
    catalog.check_variation = tests.check_connection
    router = Router(catalog, tenancy, lambda version: audiences.at(version).by_id, tests.at)
    # Every write transaction of the services: the outbox rows of what it changed are
    # written in it before it commits.
    transactions = Transactions(store, router)
    commands = write_path(
        store,
        mpids,
        metrics,
        tenancy.input_named,
        audiences,
        calculated=calculated,
        transactions=transactions,
    )
    writer = GroupWriter(commands.apply, max_group=settings.store.group_max)
    return _WriteSide(audiences, calculated, catalog, transactions, commands, writer, tests)


def _in_caller_thread(
    store: Store, tenancy: Tenancy, clock: Clock, commands: CommandRunner
) -> tuple[Quarantine, Rebuild, CsvImporter]:
    """The CLI's operations (quarantine replay, rebuild, CSV import): they apply batches in
    the caller's thread, as no writer runs in a command."""
    return (
        Quarantine(store, commands.run_all, tenancy.input_named, clock),
        Rebuild(store, tenancy),
        CsvImporter(commands.run_all, clock.now_ms),
    )


def _sweep(
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


# Where the store keeps the processor's key and certificate (PEM), and the certificates of
# keys rotated out.
_PROCESSOR_KEY = "opendsr-processor-key"
_PROCESSOR_RETIRED = "opendsr-processor-retired-certificates"


def _processor_key(settings: Settings, store: Store) -> ProcessorKey:
    """The processor's key: from `[privacy] processor_key_file` (made there on first use;
    rotated certificates beside it, in FILE.retired), else kept in the store."""
    name = settings.privacy.processor_domain

    def make() -> bytes:
        return generate_bundle(name)

    configured = settings.privacy.processor_key_file
    if configured:
        path = Path(settings.data_dir) / configured
        retired = path.with_name(path.name + ".retired")

        def rotate_file() -> None:
            old = split_certificates(read_pem_file(path, make))
            before = retired.read_bytes() if retired.exists() else b""
            replace_private_file(retired, before + "".join(old[:1]).encode())
            replace_private_file(path, make())

        return ProcessorKey(
            lambda: read_pem_file(path, make),
            retired=lambda: retired.read_bytes() if retired.exists() else b"",
            rotate=rotate_file,
            where=f"key file {path}",
        )

    def load() -> bytes:
        return store.server_secret(_PROCESSOR_KEY, make())

    def rotate_stored() -> None:
        old = split_certificates(load())
        before = store.server_secret(_PROCESSOR_RETIRED, b"")
        store.replace_server_secret(_PROCESSOR_RETIRED, before + "".join(old[:1]).encode())
        store.replace_server_secret(_PROCESSOR_KEY, make())

    return ProcessorKey(
        load,
        retired=lambda: store.server_secret(_PROCESSOR_RETIRED, b""),
        rotate=rotate_stored,
    )


def _dsr(
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


def _through(writer: GroupWriter) -> Callable[[Sequence[Accepted]], list[BatchOutcome]]:
    """Apply batches as the server applies them: each submitted to the group writer,
    then waited for."""

    def apply(items: Sequence[Accepted]) -> list[BatchOutcome]:
        futures = [writer.submit(item) for item in items]
        return [future.result() for future in futures]

    return apply


def _clock(settings: Settings) -> Clock:
    """The system clock, or one a file moves (tests drive time through it)."""
    return FileOffsetClock(settings.clock_file) if settings.clock_file else SystemClock()


def _tokens(
    settings: Settings,
    store: Store,
    clock: Clock,
    secrets: Secrets,
    *,
    keys: ServerKeys,
    checker: SecretChecker,
) -> tuple[CredentialRegistry, TokenService]:
    registry = CredentialRegistry(credentials_from(settings), store, clock, secrets)
    oauth = settings.oauth
    tokens = TokenService(
        registry,
        keys,
        clock,
        secrets,
        audiences=oauth.audiences,
        ttl_s=oauth.token_ttl_s,
        limits=TokenLimits(
            per_client=_limit(oauth.requests_per_client),
            per_address=_limit(oauth.requests_per_address),
        ),
        checker=checker,
    )
    return registry, tokens


def _configured_users(settings: Settings) -> list[UserRecord]:
    return [
        UserRecord(name=u.name, role=u.role, password_hash=u.password_hash, origin="config")
        for u in settings.ui.users
    ]


def _admin_callers(
    settings: Settings, users: UserDirectory, clock: Clock, checker: SecretChecker
) -> AdminCallers:
    admin = settings.admin
    return AdminCallers(
        users,
        admin.token,
        clock,
        limits=KeyLimits(
            per_key=_limit(admin.key_attempts_per_key),
            per_address=_limit(admin.key_attempts_per_address),
        ),
        checker=checker,
    )


def _ui_sessions(
    settings: Settings,
    users: UserDirectory,
    store: Store,
    clock: Clock,
    secrets: Secrets,
    *,
    keys: ServerKeys,
    checker: SecretChecker,
) -> UiSessions:
    ui = settings.ui
    return UiSessions(
        users,
        ui.session_ttl_s,
        store,
        keys,
        clock,
        secrets=secrets,
        limits=SignInLimits(
            per_user=_limit(ui.sign_ins_per_user), per_address=_limit(ui.sign_ins_per_address)
        ),
        checker=checker,
    )


def _limit(limit: AttemptLimitSettings) -> AttemptLimit:
    return AttemptLimit(per_minute=limit.per_minute, burst=limit.burst)


def _forwarding(
    settings: Settings,
    store: Store,
    *,
    tenancy: Tenancy,
    clock: Clock,
    metrics: PrometheusMetrics,
    catalog: OutputCatalog,
    audiences: Callable[[], Mapping[int, AudienceDef]],
    tests: AbTestBook,
) -> tuple[DeliveryAdmin, DeliveryRunner]:
    renderer = Renderer(store, tenancy, audiences, clock, tests=tests.current, retire=tests.retire)
    lanes = _lane_factory(settings, store, renderer, clock, metrics)
    runner = DeliveryRunner(
        catalog,
        lanes,
        idle_s=settings.forwarding.idle_s,
        fixed=[callback_lane(settings.privacy.callback_timeout_s)],
    )
    return DeliveryAdmin(store, catalog, clock), runner


def _declared(settings: Settings) -> OutputsAndConnections:
    return OutputsAndConnections(
        outputs=list(settings.outputs),
        event_connections=list(settings.event_connections),
        audience_connections=list(settings.audience_connections),
    )


def _lane_factory(
    settings: Settings, store: Store, renderer: Renderer, clock: Clock, metrics: PrometheusMetrics
) -> Callable[[EventConnection | AudienceConnection, OutputDef], Lane]:
    forwarding = settings.forwarding
    # Which process holds a connection's lease; unique per process start.
    owner = process_name()

    def make_lane(connection: EventConnection | AudienceConnection, output: OutputDef) -> Lane:
        callbacks = connection.name == CALLBACK_CONNECTION
        return Lane(
            store,
            renderer,
            connection,
            output,
            make_callback_sink(output.timeout_s)
            if callbacks
            else make_sink(output, resolve_output),
            policy=forwarding.retry,
            clock=clock,
            jitter=random.random,
            owner=owner,
            lease_ms=int(forwarding.lease_s * 1000),
            on_outcome=metrics.delivery,
            bury_on_give_up=callbacks,
        )

    return make_lane


def make_store(settings: Settings) -> Store:
    url = settings.store.url
    if url.startswith("sqlite://"):
        from kindred.storage.sqlite import SqliteStore  # noqa: PLC0415 - chosen by config

        return SqliteStore(
            _sqlite_path(url, settings.data_dir),
            synchronous=settings.store.sqlite_synchronous.upper(),
            max_size_mb=settings.store.sqlite_max_size_mb,
        )
    from kindred.storage.postgres import PostgresStore  # noqa: PLC0415 - chosen by config

    return PostgresStore(url, pool_size=settings.store.pool_size)


def missing_store(settings: Settings) -> Path | None:
    """The embedded store's file when it does not exist yet (None for PostgreSQL, whose
    database is made by its operator, and for a store that exists)."""
    url = settings.store.url
    if not url.startswith("sqlite://"):
        return None
    path = _sqlite_path(url, settings.data_dir)
    return None if path.exists() else path.resolve()


def _sqlite_path(url: str, data_dir: str) -> Path:
    """sqlite:///name.db lives in the data directory; sqlite:////abs/name.db where it says."""
    rest = url.removeprefix("sqlite://")
    if rest.startswith("//"):
        return Path(rest[1:])
    return Path(data_dir) / rest.lstrip("/")
