"""Settings: the TOML file plus environment overrides. The only reader of `os.environ`.

Every key is documented in docs/configuration.md (a test keeps the two in step). Errors name
the key and the problem: `accounts[0].workspaces[0].inputs[1].source_type: Invalid enum
value 'sever'`.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from kindred.config.checks import validate
from kindred.domain.errors import ConfigError
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef
from kindred.domain.retry import RetryPolicy
from kindred.domain.tenancy import Guardrails

__all__ = [
    "AccountSettings",
    "AdminSettings",
    "AttemptLimitSettings",
    "AudienceSettings",
    "CredentialSettings",
    "ForwardingSettings",
    "IdentitySettings",
    "InputSettings",
    "MetricsSettings",
    "OAuthSettings",
    "PrivacySettings",
    "RetentionSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "StreamSettings",
    "UiSettings",
    "UiUserSettings",
    "WorkspaceSettings",
    "demo_config_text",
    "load_settings",
    "with_role",
    "with_writer_process",
]

SourceTypeName = Literal[
    "web",
    "ios",
    "android",
    "server",
    "custom_feed",
    "partner_feed",
    "csv_import",
    "warehouse_sync",
]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Unknown keys are refused so that a typo never silently falls back to a default."""


class ServerSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 262_144
    workers: int = 1
    # What this process does (docs/deployment.md): "all", everything in one process;
    # "api", the HTTP API, appending batches to the batch log ([stream]); "worker",
    # applying the batch log and running the background jobs. api and worker need
    # PostgreSQL ([store] url) and a JetStream ([stream] url).
    role: Literal["all", "api", "worker"] = "all"
    # The events API's batches applied by a process of their own, fed by the HTTP
    # processes over a Unix socket (docs/architecture.md); role all only.
    writer_process: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"


class StoreSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # sqlite:///relative/to/data_dir.db, sqlite:////absolute/path.db or postgresql://...
    url: str = "sqlite:///kindred.db"
    sqlite_synchronous: Literal["full", "normal"] = "full"
    # The most the SQLite database file may grow to, in MB (0: as far as the disk allows).
    sqlite_max_size_mb: int = 0
    group_max: int = 256
    pool_size: int = 8


StrategyName = Literal[
    "default", "profile_conversion", "profile_link", "profile_isolation", "best_match"
]


class IdentitySettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    strategy: StrategyName = "default"
    priority: list[str] | None = None
    # None: the strategy's own (customer_id; customer_id and email for profile link and
    # isolation; none for best match).
    unique: list[str] | None = None
    login: list[str] | None = None
    # Login (default and profile conversion strategies) folds the anonymous profile the
    # user browsed with into the known profile it resolves to: a merge, in the ledger.
    merge_anonymous_on_login: bool = True
    immutable: str | None = "customer_id"
    blocklist_extra: list[str] = msgspec.field(default_factory=list)
    max_profiles_per_identity: dict[str, int] = msgspec.field(
        default_factory=lambda: {"device_application_stamp": 20}
    )


class InputSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    source_type: SourceTypeName
    api_key: str
    api_secret: str | None = None
    api_secret_env: str | None = None
    protection: Literal["create_update", "update_only", "read_only"] = "create_update"
    rate_limit_per_s: float = 270.0
    rate_limit_burst: int = 540
    # The user attributes of its batches are account-level (PRF-4): one value for every
    # workspace of the account, ranked just below calculated attributes.
    account_attributes: bool = False


class WorkspaceSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: int
    name: str
    inputs: list[InputSettings] = msgspec.field(default_factory=list)
    # Per-attribute expiry (RET-4): attribute key or glob pattern (`*`, `?`) -> time to
    # live from when a batch set the value ("30d", "12h", "90m", "1d12h").
    attribute_ttl: dict[str, str] = msgspec.field(default_factory=dict)


class AccountSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: int
    name: str
    identity_scope: Literal["account", "workspace"] = "account"
    retention_days: int = 730
    profile_lifetime_days: int = 90
    lifetime_profiles: bool = False
    identity: IdentitySettings = msgspec.field(default_factory=IdentitySettings)
    guardrails: Guardrails = msgspec.field(default_factory=Guardrails)
    workspaces: list[WorkspaceSettings] = msgspec.field(default_factory=list)


class OrgSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: int
    name: str = ""


class CredentialSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    client_id: str
    name: str = ""
    client_secret: str | None = None
    client_secret_env: str | None = None
    # The output of `kindred credentials hash-secret`: keeps the secret itself out of the file.
    client_secret_hash: str | None = None
    workspaces: list[int] = msgspec.field(default_factory=list)
    rate_limit_per_s: float = 15.0
    rate_limit_burst: int = 30
    # "profiles" (the Profile API), "platform" (the Platform API's audience list).
    scopes: list[str] = msgspec.field(default_factory=lambda: ["profiles"])


class AttemptLimitSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # `burst` attempts at once, then `per_minute` (each server process counts its own).
    per_minute: float
    burst: int


# Each limit's defaults, key by key: a table that sets one of the two keeps the other's.
class LimitOf60After20(AttemptLimitSettings, frozen=True, kw_only=True):
    per_minute: float = 60
    burst: int = 20


class LimitOf120After40(AttemptLimitSettings, frozen=True, kw_only=True):
    per_minute: float = 120
    burst: int = 40


class LimitOf10After5(AttemptLimitSettings, frozen=True, kw_only=True):
    per_minute: float = 10
    burst: int = 5


class LimitOf30After10(AttemptLimitSettings, frozen=True, kw_only=True):
    per_minute: float = 30
    burst: int = 10


class OAuthSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Token requests must name one of these (the first is assumed when none is given). The
    # Profile API serves the first: it accepts only tokens issued for it.
    audiences: list[str] = msgspec.field(default_factory=lambda: ["https://api.mparticle.com"])
    token_ttl_s: int = 28800
    # Token requests per client id and per source address, before 429.
    requests_per_client: LimitOf60After20 = msgspec.field(default_factory=LimitOf60After20)
    requests_per_address: LimitOf120After40 = msgspec.field(default_factory=LimitOf120After40)


class AdminSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The bearer token of the admin HTTP API (/admin/v1/...); none: the admin API is off.
    token: str | None = None
    token_env: str | None = None
    # Attempts with an API key not yet verified (a wrong one, or the first use of a right
    # one in this process), per key id and per source address, before 429.
    key_attempts_per_key: LimitOf10After5 = msgspec.field(default_factory=LimitOf10After5)
    key_attempts_per_address: LimitOf30After10 = msgspec.field(default_factory=LimitOf30After10)


class MetricsSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The bearer token /metrics asks for; none: /metrics is open (as a scraper expects).
    token: str | None = None
    token_env: str | None = None


class SecuritySettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Key files (relative paths are in the data directory); see kindred.config.keys. The
    # environment (KINDRED_SECRETS_KEY, KINDRED_TOKEN_SIGNING_KEY, KINDRED_UI_SESSION_KEY)
    # wins over them.
    secrets_key_file: str | None = None
    token_signing_key_file: str | None = None
    ui_session_key_file: str | None = None


class AudienceSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # How often each server process re-evaluates the profiles whose memberships time alone
    # may have changed (AUD-5); 0 turns it off.
    schedule_interval_s: float = 5.0
    schedule_chunk: int = 500
    # How often each server process advances the backfills of activated or edited
    # audiences (a few thousand profiles a run); 0 turns it off.
    backfill_interval_s: float = 1.0
    # Processes of its own in which an activation over stored events computes its pages,
    # when a run has enough of them (a few thousand profiles) to be worth it: each is a
    # core at work (docs/audiences.md, "Activation"); 0 computes them in the server's
    # own process. An in-memory store always computes in its own process.
    activation_processes: int = 2
    # How many days a standard audience's calculation stays fresh when its definition
    # names no `expiry_days` (AUD-13); an expired one still counts, marked expired.
    standard_expiry_days: int = 30
    # Profiles per identity scope in the audience estimator's sample (AUD-7): more is
    # closer and slower (services/audiences/estimates.py: DEFAULT_SAMPLE).
    estimate_sample: int = 2_500
    # How often each server process reads the estimator's samples again in the background
    # (with their profiles' batches, decoded), so that no estimate waits for that read: an
    # estimate sees the profiles as they were this long ago at most (plus the read's
    # time); 0 turns it off (each estimate then reads a sample older than 10 s itself).
    estimate_refresh_s: float = 5.0


class UiUserSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    # The output of `kindred ui hash-password`: the password itself is never in the file.
    password_hash: str
    # What the user may do in the UI and with their API keys: admin, editor or viewer
    # (docs/security.md). Admin when absent, as before roles existed.
    role: str = "admin"


class UiSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Who may sign in to the web UI (/ui/); none: nobody can.
    users: list[UiUserSettings] = msgspec.field(default_factory=list)
    # How long a sign-in lasts.
    session_ttl_s: int = 43_200
    # Sign-in attempts per user name and per source address, before 429.
    sign_ins_per_user: LimitOf10After5 = msgspec.field(default_factory=LimitOf10After5)
    sign_ins_per_address: LimitOf30After10 = msgspec.field(default_factory=LimitOf30After10)
    # How often the Live Stream page asks for new batches.
    live_poll_interval_s: float = 2.0


class RetentionSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # How often each server process runs the lifetime sweep; 0 leaves it to `kindred sweep`.
    sweep_interval_s: float = 3600.0
    sweep_chunk: int = 500
    # How often each server process removes attribute values past their time to live
    # (`attribute_ttl` of a workspace; RET-4) when any workspace has rules; 0 leaves it to
    # `kindred retention run`. Reads leave expired values out at once either way, and the
    # audience scheduler ends the memberships of a profile written since at its expiry:
    # this is the backstop (profiles stored before a rule, merges), and reads every profile.
    expiry_interval_s: float = 3600.0


class PrivacySettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Data subject requests (OpenDSR, docs/privacy.md).
    # How long an erasure waits, cancellable, before it is done.
    waiting_period_days: float = 7.0
    # The wait of an erasure whose request sets skip_waiting_period.
    skip_waiting_period_hours: float = 0.0
    # How long the results of access and portability requests are kept (then 410).
    results_days: float = 7.0
    # How often each server process processes the requests due; 0: only `kindred dsr
    # run-due` does.
    run_interval_s: float = 60.0
    # The X-OpenDSR-Processor-Domain header of every answer.
    processor_domain: str = "opendsr.mparticle.com"
    # Where the server is reached, for `results_url` and `receipt_url` (default: the
    # address of the request that reads the status; status callbacks need it set to
    # carry them).
    public_url: str | None = None
    # The processor's RSA key and certificate (PEM, key then certificate): they sign
    # erasure receipts and status callbacks. A file (relative to the data directory), made
    # on first use; default: kept in the store (every process sharing it signs alike).
    processor_key_file: str | None = None
    # How long a status callback's receiver may take to answer.
    callback_timeout_s: float = 10.0


class ForwardingSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Each server process sends over every connection (one process at a time per
    # connection, by a lease); off: only `kindred deliver` sends.
    deliver_in_server: bool = True
    # How long a connection with nothing to send waits before it looks again.
    idle_s: float = 0.2
    # How long a process holds a connection without renewing it (a crashed process's
    # connections are taken over after this).
    lease_s: float = 30.0
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)


class StreamSettings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The batch log between API processes and workers (roles api and worker only).
    # NATS servers, comma-separated (every node of the JetStream cluster).
    url: str = "nats://127.0.0.1:4222"
    # The JetStream stream and the prefix of its subjects (one per partition).
    name: str = "KINDRED_BATCHES"
    subject_prefix: str = "kindred.batches"
    # Partitions: each is applied by one worker at a time, in order; more partitions than
    # workers lets workers be added. Fixed once batches were appended (a batch's
    # partition is a hash of its user's key modulo this).
    partitions: int = 16
    # Copies of the stream in the JetStream cluster (3 survives one node lost); set when
    # the stream is first made.
    replicas: int = 1
    # The backlog (appended, not yet applied) an API process accepts before it answers
    # 503 with Retry-After: in bytes, and the age of the oldest batch waiting.
    max_backlog_bytes: int = 1_073_741_824
    max_backlog_age_s: float = 3600.0
    retry_after_s: int = 5
    # How long a worker holds its partitions without renewing (a dead worker's
    # partitions are taken over after this).
    lease_s: float = 6.0
    # How long an API process keeps trying to append a batch (a JetStream leader
    # election) before it answers 503.
    append_deadline_s: float = 10.0


class Settings(_Section, frozen=True, kw_only=True, forbid_unknown_fields=True):
    org: OrgSettings
    accounts: list[AccountSettings]
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    credentials: list[CredentialSettings] = msgspec.field(default_factory=list)
    oauth: OAuthSettings = msgspec.field(default_factory=OAuthSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    admin: AdminSettings = msgspec.field(default_factory=AdminSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    audiences: AudienceSettings = msgspec.field(default_factory=AudienceSettings)
    forwarding: ForwardingSettings = msgspec.field(default_factory=ForwardingSettings)
    privacy: PrivacySettings = msgspec.field(default_factory=PrivacySettings)
    stream: StreamSettings = msgspec.field(default_factory=StreamSettings)
    outputs: list[OutputDef] = msgspec.field(default_factory=list)
    event_connections: list[EventConnection] = msgspec.field(default_factory=list)
    audience_connections: list[AudienceConnection] = msgspec.field(default_factory=list)
    ui: UiSettings = msgspec.field(default_factory=UiSettings)
    # Not from the file: where the embedded store and other local files live.
    data_dir: str = "data"
    source: str = "<demo>"
    # Not from the file: KINDRED_CLOCK_FILE, a file holding milliseconds to add to the
    # system clock, for testing time-dependent behaviour (token expiry, profile lifetime).
    clock_file: str | None = None


def demo_config_text() -> str:
    return resources.files("kindred.demo").joinpath("kindred.toml").read_text()


def load_settings(
    path: Path | str | None = None,
    *,
    data_dir: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Read the config file (the demo config when none is given) and apply overrides:
    KINDRED_CONFIG, KINDRED_DATA_DIR, KINDRED_STORE_URL, KINDRED_ROLE,
    KINDRED_WRITER_PROCESS (1: on), and `*_env` secret references.
    (Worker processes of `kindred serve --workers N` find their settings this way.)"""
    environ = dict(os.environ) if env is None else env
    path = path or environ.get("KINDRED_CONFIG") or None
    text = Path(path).read_text() if path else demo_config_text()
    settings = _decode(text, str(path or "<demo>"))
    updates: dict[str, object] = {"source": str(path or "<demo>")}
    updates["data_dir"] = data_dir or environ.get("KINDRED_DATA_DIR") or settings.data_dir
    if environ.get("KINDRED_CLOCK_FILE"):
        updates["clock_file"] = environ["KINDRED_CLOCK_FILE"]
    server = settings.server
    if environ.get("KINDRED_ROLE"):
        server = msgspec.structs.replace(server, role=_role(environ["KINDRED_ROLE"]))
    if environ.get("KINDRED_WRITER_PROCESS") == "1":
        server = msgspec.structs.replace(server, writer_process=True)
    updates["server"] = server
    if environ.get("KINDRED_STORE_URL"):
        updates["store"] = msgspec.structs.replace(settings.store, url=environ["KINDRED_STORE_URL"])
    settings = msgspec.structs.replace(settings, **updates)
    settings = _resolve_secrets(settings, environ)
    validate(settings)
    return settings


def with_role(settings: Settings, role: str) -> Settings:
    """The settings with `server.role` given on the command line, checked again."""
    server = msgspec.structs.replace(settings.server, role=_role(role))
    changed = msgspec.structs.replace(settings, server=server)
    validate(changed)
    return changed


def with_writer_process(settings: Settings) -> Settings:
    """The settings with `server.writer_process` on (`kindred serve --writer-process`),
    checked again."""
    server = msgspec.structs.replace(settings.server, writer_process=True)
    changed = msgspec.structs.replace(settings, server=server)
    validate(changed)
    return changed


def _role(value: str) -> Literal["all", "api", "worker"]:
    if value not in ("all", "api", "worker"):
        raise ConfigError(f"KINDRED_ROLE: {value!r} is not one of all, api, worker")
    return value  # type: ignore[return-value]


def _decode(text: str, source: str) -> Settings:
    try:
        return msgspec.toml.decode(text, type=Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_pathed(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def _pathed(message: str) -> str:
    """`Expected int - at `$.org.id`` -> `org.id: Expected int`."""
    match = re.match(r"(.*) - at `\$\.?(.*)`$", message)
    if not match:
        return message
    return f"{match.group(2) or '(top level)'}: {match.group(1)}"


def _resolve_secrets(settings: Settings, environ: dict[str, str]) -> Settings:
    accounts = []
    for a, account in enumerate(settings.accounts):
        workspaces = []
        for w, workspace in enumerate(account.workspaces):
            inputs = []
            for i, inp in enumerate(workspace.inputs):
                key = f"accounts[{a}].workspaces[{w}].inputs[{i}].api_secret_env"
                secret = _secret(inp.api_secret, inp.api_secret_env, environ, key)
                inputs.append(msgspec.structs.replace(inp, api_secret=secret))
            workspaces.append(msgspec.structs.replace(workspace, inputs=inputs))
        accounts.append(msgspec.structs.replace(account, workspaces=workspaces))
    credentials = [
        msgspec.structs.replace(
            c,
            client_secret=_secret(
                c.client_secret, c.client_secret_env, environ, f"credentials[{n}].client_secret_env"
            ),
        )
        for n, c in enumerate(settings.credentials)
    ]
    admin = msgspec.structs.replace(
        settings.admin,
        token=_secret(settings.admin.token, settings.admin.token_env, environ, "admin.token_env"),
    )
    metrics = msgspec.structs.replace(
        settings.metrics,
        token=_secret(
            settings.metrics.token, settings.metrics.token_env, environ, "metrics.token_env"
        ),
    )
    return msgspec.structs.replace(
        settings, accounts=accounts, credentials=credentials, admin=admin, metrics=metrics
    )


def _secret(
    value: str | None, env_name: str | None, environ: dict[str, str], key: str
) -> str | None:
    if env_name is None:
        return value
    if env_name not in environ:
        raise ConfigError(f"{key}: environment variable {env_name} is not set")
    return environ[env_name]
