"""The composition root: Settings -> store, services, writer. The only place naming adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kindred.config import AccountSettings, InputSettings, Settings
from kindred.domain.errors import ConfigError
from kindred.domain.identities import DEFAULT_BLOCKLIST, DEFAULT_PRIORITY, canonical_identity_type
from kindred.domain.tenancy import (
    AccountPolicy,
    IdentityPolicy,
    InputDef,
    Protection,
    SourceType,
    Tenancy,
    WorkspaceDef,
)
from kindred.observability import PrometheusMetrics
from kindred.ports import Clock, MpidSource, Store
from kindred.services.ingest import IngestService, Outcome, WriterItem
from kindred.services.writer import GroupWriter
from kindred.system import SecureMpids, SystemClock

__all__ = ["Container", "build", "make_store", "tenancy_from"]


@dataclass
class Container:
    """Everything a running Kindred needs, wired once."""

    settings: Settings
    tenancy: Tenancy
    store: Store
    clock: Clock
    metrics: PrometheusMetrics
    ingest: IngestService
    writer: GroupWriter[WriterItem, Outcome]
    started: bool = field(default=False)

    def start(self) -> None:
        self.store.migrate()
        self.writer.start()
        self.started = True

    def close(self) -> None:
        """Drain the writer (everything submitted is committed), then close the store."""
        self.writer.stop()
        self.store.close()
        self.started = False


def build(
    settings: Settings, *, clock: Clock | None = None, mpids: MpidSource | None = None
) -> Container:
    store = make_store(settings)
    metrics = PrometheusMetrics()
    ingest = IngestService(store, mpids or SecureMpids(), metrics)
    writer: GroupWriter[WriterItem, Outcome] = GroupWriter(
        ingest.ingest, max_group=settings.store.group_max
    )
    return Container(
        settings=settings,
        tenancy=tenancy_from(settings),
        store=store,
        clock=clock or SystemClock(),
        metrics=metrics,
        ingest=ingest,
        writer=writer,
    )


def make_store(settings: Settings) -> Store:
    url = settings.store.url
    if url.startswith("sqlite://"):
        from kindred.storage.sqlite import SqliteStore  # noqa: PLC0415 - chosen by config

        return SqliteStore(
            _sqlite_path(url, settings.data_dir),
            synchronous=settings.store.sqlite_synchronous.upper(),
        )
    from kindred.storage.postgres import PostgresStore  # noqa: PLC0415 - chosen by config

    return PostgresStore(url, pool_size=settings.store.pool_size)


def _sqlite_path(url: str, data_dir: str) -> Path:
    """sqlite:///name.db lives in the data directory; sqlite:////abs/name.db where it says."""
    rest = url.removeprefix("sqlite://")
    if rest.startswith("//"):
        return Path(rest[1:])
    return Path(data_dir) / rest.lstrip("/")


def tenancy_from(settings: Settings) -> Tenancy:
    workspaces: dict[int, WorkspaceDef] = {}
    inputs: list[InputDef] = []
    for account in settings.accounts:
        policy = _account_policy(account)
        for ws in account.workspaces:
            workspace = WorkspaceDef(workspace_id=ws.id, name=ws.name, account=policy)
            workspaces[ws.id] = workspace
            inputs.extend(_input(i, workspace) for i in ws.inputs)
    return Tenancy(
        org_id=settings.org.id,
        workspaces=workspaces,
        inputs_by_key={i.api_key: i for i in inputs},
        inputs_by_name={i.name: i for i in inputs},
    )


def _account_policy(account: AccountSettings) -> AccountPolicy:
    ident = account.identity
    where = f"accounts[id={account.id}].identity"
    priority = tuple(_types(ident.priority, f"{where}.priority")) if ident.priority else None
    immutable = _types([ident.immutable], f"{where}.immutable")[0] if ident.immutable else None
    return AccountPolicy(
        account_id=account.id,
        identity_scope=account.identity_scope,
        identity=IdentityPolicy(
            strategy=ident.strategy,
            priority=priority or DEFAULT_PRIORITY,
            unique=frozenset(_types(ident.unique, f"{where}.unique")),
            login=frozenset(_types(ident.login, f"{where}.login")),
            immutable=immutable,
            blocklist=DEFAULT_BLOCKLIST | {v.strip().lower() for v in ident.blocklist_extra},
            max_profiles_per_identity={
                _types([k], f"{where}.max_profiles_per_identity")[0]: v
                for k, v in ident.max_profiles_per_identity.items()
            },
        ),
        guardrails=account.guardrails,
        retention_days=account.retention_days,
        profile_lifetime_days=(
            account.retention_days if account.lifetime_profiles else account.profile_lifetime_days
        ),
        lifetime_profiles=account.lifetime_profiles,
    )


def _types(names: list[str], key: str) -> list[str]:
    result = []
    for name in names:
        canonical = canonical_identity_type(name)
        if canonical is None:
            raise ConfigError(f"{key}: unknown identity type {name!r}")
        result.append(canonical)
    return result


def _input(inp: InputSettings, workspace: WorkspaceDef) -> InputDef:
    return InputDef(
        name=inp.name,
        workspace=workspace,
        source_type=SourceType(inp.source_type),
        api_key=inp.api_key,
        api_secret=inp.api_secret,
        protection=Protection(inp.protection),
        rate_limit_per_s=inp.rate_limit_per_s,
        rate_limit_burst=inp.rate_limit_burst,
    )
