"""The checks of loaded settings that their types cannot express; each refusal names the
key (`accounts[0].workspaces[0].inputs[1].api_secret: server inputs need a secret`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kindred.domain.credentials import CREDENTIAL_SCOPES, is_secret_hash
from kindred.domain.errors import ConfigError, refuse_duplicates
from kindred.domain.expiry import parse_rules
from kindred.domain.users import Role

if TYPE_CHECKING:
    from kindred.config import (
        AttemptLimitSettings,
        AudienceSettings,
        CredentialSettings,
        ForwardingSettings,
        InputSettings,
        OAuthSettings,
        PrivacySettings,
        Settings,
        UiSettings,
    )

__all__ = ["PLATFORM_TYPES", "validate"]

PLATFORM_TYPES = frozenset({"web", "ios", "android", "server"})
CLIENT_TYPES = frozenset({"web", "ios", "android"})


def validate(settings: Settings) -> None:
    """Refuse settings the schema alone cannot: duplicates, references and ranges, naming
    the key."""
    if not settings.accounts:
        raise ConfigError("accounts: at least one account is required")
    refuse_duplicates([a.id for a in settings.accounts], "accounts[].id")
    workspaces = [w for a in settings.accounts for w in a.workspaces]
    refuse_duplicates([w.id for w in workspaces], "accounts[].workspaces[].id")
    inputs = [i for w in workspaces for i in w.inputs]
    refuse_duplicates([i.name for i in inputs], "inputs[].name")
    refuse_duplicates([i.api_key for i in inputs], "inputs[].api_key")
    for a, account in enumerate(settings.accounts):
        for w, workspace in enumerate(account.workspaces):
            for i, inp in enumerate(workspace.inputs):
                _validate_input(inp, f"accounts[{a}].workspaces[{w}].inputs[{i}]")
            parse_rules(workspace.attribute_ttl, f"accounts[{a}].workspaces[{w}].attribute_ttl")
    known = {w.id for w in workspaces}
    refuse_duplicates([c.client_id for c in settings.credentials], "credentials[].client_id")
    for n, cred in enumerate(settings.credentials):
        _validate_credential(cred, known, f"credentials[{n}]")
    _validate_oauth(settings.oauth)
    _validate_ui(settings.ui)
    _validate_limit(settings.admin.key_attempts_per_key, "admin.key_attempts_per_key")
    _validate_limit(settings.admin.key_attempts_per_address, "admin.key_attempts_per_address")
    _validate_audiences(settings.audiences)
    if settings.retention.sweep_interval_s < 0 or settings.retention.sweep_chunk < 1:
        raise ConfigError("retention: sweep_interval_s must be >= 0 and sweep_chunk >= 1")
    if settings.retention.expiry_interval_s < 0:
        raise ConfigError("retention.expiry_interval_s: must be >= 0")
    _validate_forwarding(settings.forwarding)
    _validate_privacy(settings.privacy)
    if settings.server.workers < 1:
        raise ConfigError("server.workers: must be at least 1")
    if not settings.store.url.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise ConfigError("store.url: must start with sqlite:// or postgresql://")
    _validate_role(settings)


def _validate_role(settings: Settings) -> None:
    """Roles api and worker share the profiles through PostgreSQL and the batches through
    the batch log: an embedded SQLite file cannot be shared between machines."""
    role, stream = settings.server.role, settings.stream
    if role != "all" and settings.server.writer_process:
        raise ConfigError(
            f"server.writer_process: role {role} applies no batches of its own; the writer"
            " process is for role all"
        )
    if role != "all" and settings.store.url.startswith("sqlite://"):
        raise ConfigError(
            f"server.role: role {role} needs PostgreSQL as the store (store.url"
            " postgresql://...); the embedded SQLite store runs role all only"
        )
    if not 1 <= stream.partitions <= 4096:
        raise ConfigError("stream.partitions: from 1 to 4096")
    if stream.replicas not in (1, 3, 5):
        raise ConfigError("stream.replicas: 1, 3 or 5")
    if stream.max_backlog_bytes < 1 or stream.max_backlog_age_s <= 0:
        raise ConfigError("stream: max_backlog_bytes and max_backlog_age_s must be > 0")
    if stream.lease_s < 1 or stream.retry_after_s < 1 or stream.append_deadline_s <= 0:
        raise ConfigError("stream: lease_s >= 1, retry_after_s >= 1, append_deadline_s > 0")


def _validate_audiences(audiences: AudienceSettings) -> None:
    if audiences.backfill_interval_s < 0:
        raise ConfigError("audiences.backfill_interval_s: must be >= 0")
    if not 0 <= audiences.activation_processes <= 64:
        raise ConfigError("audiences.activation_processes: from 0 to 64")
    if not 1 <= audiences.standard_expiry_days <= 36_500:
        raise ConfigError("audiences.standard_expiry_days: from 1 to 36500")
    if not 10 <= audiences.estimate_sample <= 100_000:
        raise ConfigError("audiences.estimate_sample: from 10 to 100000")
    # A sample is used for 10 s at most (services/audiences/estimates.py: SAMPLE_KEPT_S):
    # refreshed every 5 s or more often, one is always there to use.
    if not 0 <= audiences.estimate_refresh_s <= 5:
        raise ConfigError("audiences.estimate_refresh_s: from 0 to 5")
    if audiences.schedule_interval_s < 0 or audiences.schedule_chunk < 1:
        raise ConfigError("audiences: schedule_interval_s must be >= 0 and schedule_chunk >= 1")


def _validate_forwarding(forwarding: ForwardingSettings) -> None:
    if forwarding.idle_s <= 0 or forwarding.lease_s <= 0:
        raise ConfigError("forwarding: idle_s and lease_s must be positive")
    retry = forwarding.retry
    if retry.base_s <= 0 or retry.max_delay_s < retry.base_s:
        raise ConfigError("forwarding.retry: base_s must be positive and at most max_delay_s")
    if retry.max_attempts < 1 or retry.max_failing_s <= 0:
        raise ConfigError("forwarding.retry: max_attempts and max_failing_s must be positive")


def _validate_input(inp: InputSettings, path: str) -> None:
    if inp.source_type in PLATFORM_TYPES and inp.protection != "create_update":
        raise ConfigError(f"{path}.protection: platform inputs are always create_update")
    if inp.source_type != "web" and not inp.api_secret:
        raise ConfigError(f"{path}.api_secret: {inp.source_type} inputs need a secret")
    if inp.rate_limit_per_s <= 0 or inp.rate_limit_burst < 1:
        raise ConfigError(f"{path}.rate_limit_per_s: must be positive")
    if not inp.api_key.strip():
        raise ConfigError(f"{path}.api_key: must not be empty")
    if inp.account_attributes and inp.source_type in CLIENT_TYPES:
        raise ConfigError(
            f"{path}.account_attributes: only server-side inputs write account-level"
            f" attributes ({inp.source_type} inputs' keys ship inside apps)"
        )


def _validate_credential(cred: CredentialSettings, known: set[int], path: str) -> None:
    if not cred.client_id.strip():
        raise ConfigError(f"{path}.client_id: must not be empty")
    if not cred.workspaces:
        raise ConfigError(f"{path}.workspaces: name at least one workspace")
    for ws in cred.workspaces:
        if ws not in known:
            raise ConfigError(f"{path}.workspaces: no workspace with id {ws}")
    unknown = sorted(set(cred.scopes) - CREDENTIAL_SCOPES)
    if unknown or not cred.scopes:
        raise ConfigError(
            f"{path}.scopes: one or more of {', '.join(sorted(CREDENTIAL_SCOPES))}"
            + (f"; not {unknown[0]!r}" if unknown else "")
        )
    given = [k for k in ("client_secret", "client_secret_hash") if getattr(cred, k)]
    if len(given) != 1:
        raise ConfigError(
            f"{path}: give exactly one of client_secret, client_secret_env, client_secret_hash"
        )
    if cred.client_secret_hash is not None and not is_secret_hash(cred.client_secret_hash):
        raise ConfigError(
            f"{path}.client_secret_hash: not a hash from `kindred credentials hash-secret`"
        )
    if cred.rate_limit_per_s <= 0 or cred.rate_limit_burst < 1:
        raise ConfigError(f"{path}.rate_limit_per_s: must be positive")


def _validate_oauth(oauth: OAuthSettings) -> None:
    if not oauth.audiences:
        raise ConfigError("oauth.audiences: name at least one audience")
    if oauth.token_ttl_s < 60:
        raise ConfigError("oauth.token_ttl_s: must be at least 60")
    _validate_limit(oauth.requests_per_client, "oauth.requests_per_client")
    _validate_limit(oauth.requests_per_address, "oauth.requests_per_address")


def _validate_limit(limit: AttemptLimitSettings, key: str) -> None:
    if not limit.per_minute > 0:
        raise ConfigError(f"{key}.per_minute: must be positive")
    if limit.burst < 1:
        raise ConfigError(f"{key}.burst: must be at least 1")


def _validate_ui(ui: UiSettings) -> None:
    refuse_duplicates([u.name for u in ui.users], "ui.users[].name")
    for n, user in enumerate(ui.users):
        if not user.name.strip():
            raise ConfigError(f"ui.users[{n}].name: must not be empty")
        if not is_secret_hash(user.password_hash):
            raise ConfigError(
                f"ui.users[{n}].password_hash: not a hash from `kindred ui hash-password`"
            )
        if user.role not in {r.value for r in Role}:
            raise ConfigError(f"ui.users[{n}].role: {user.role!r} is not admin, editor or viewer")
    if ui.session_ttl_s < 60:
        raise ConfigError("ui.session_ttl_s: must be at least 60")
    if ui.live_poll_interval_s <= 0:
        raise ConfigError("ui.live_poll_interval_s: must be positive")
    _validate_limit(ui.sign_ins_per_user, "ui.sign_ins_per_user")
    _validate_limit(ui.sign_ins_per_address, "ui.sign_ins_per_address")


def _validate_privacy(privacy: PrivacySettings) -> None:
    durations = ("waiting_period_days", "skip_waiting_period_hours", "results_days")
    for key in (*durations, "run_interval_s"):
        if getattr(privacy, key) < 0:
            raise ConfigError(f"privacy.{key}: must be >= 0")
    if not privacy.processor_domain.strip():
        raise ConfigError("privacy.processor_domain: must not be empty")
    public = privacy.public_url
    if public is not None and not public.startswith(("http://", "https://")):
        raise ConfigError("privacy.public_url: must start with http:// or https://")
