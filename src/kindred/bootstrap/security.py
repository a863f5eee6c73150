"""Credentials, sessions and keys as the settings and the store give them: the secret box,
the server keys, the processor key of signed receipts, tokens, admin callers and UI
sessions."""

from __future__ import annotations

from pathlib import Path

from kindred.config import AttemptLimitSettings, Settings
from kindred.config.credentials import credentials_from
from kindred.config.keys import (
    key_source,
    read_keys,
    read_pem_file,
    replace_private_file,
)
from kindred.domain.users import UserRecord
from kindred.ports import (
    Clock,
    Secrets,
    Store,
)
from kindred.services.access.attempts import AttemptLimit, SecretChecker
from kindred.services.access.credentials import CredentialRegistry, TokenLimits, TokenService
from kindred.services.access.server_keys import TOKEN_SIGNING_KEY, UI_SESSION_KEY, ServerKeys
from kindred.services.access.sessions import SignInLimits, UiSessions
from kindred.services.access.users import AdminCallers, KeyLimits, UserDirectory
from kindred.services.privacy.signing import ProcessorKey, generate_bundle, split_certificates
from kindred.system import FernetBox

__all__ = [
    "SERVER_KEY_NAMES",
    "admin_callers",
    "attempt_limit",
    "configured_users",
    "credentials_and_tokens",
    "key_overrides",
    "load_processor_key",
    "secret_box",
    "ui_sessions",
]

# The keys `kindred keys` names that ServerKeys keeps (the secrets key is the SecretBox's).
SERVER_KEY_NAMES = {"token-signing": TOKEN_SIGNING_KEY, "ui-session": UI_SESSION_KEY}


def secret_box(settings: Settings) -> FernetBox:
    """Encryption of the output secrets kept in the store, with the secrets key (read, or
    its file made, when a secret is first sealed or opened)."""
    source = key_source(settings, "secrets")
    return FernetBox(lambda: read_keys(source), describe=f"the secrets key ({source.describe()})")


def key_overrides(settings: Settings) -> dict[str, bytes]:
    """The signing keys given in the environment or a key file (else the store's)."""
    found = {}
    for name, stored_as in SERVER_KEY_NAMES.items():
        source = key_source(settings, name)
        if source.kind != "store":
            found[stored_as] = read_keys(source)[0]
    return found


# Where the store keeps the processor's key and certificate (PEM), and the certificates of
# keys rotated out.
_PROCESSOR_KEY = "opendsr-processor-key"
_PROCESSOR_RETIRED = "opendsr-processor-retired-certificates"


def load_processor_key(settings: Settings, store: Store) -> ProcessorKey:
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


def credentials_and_tokens(
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
            per_client=attempt_limit(oauth.requests_per_client),
            per_address=attempt_limit(oauth.requests_per_address),
        ),
        checker=checker,
    )
    return registry, tokens


def configured_users(settings: Settings) -> list[UserRecord]:
    return [
        UserRecord(name=u.name, role=u.role, password_hash=u.password_hash, origin="config")
        for u in settings.ui.users
    ]


def admin_callers(
    settings: Settings, users: UserDirectory, clock: Clock, checker: SecretChecker
) -> AdminCallers:
    admin = settings.admin
    return AdminCallers(
        users,
        admin.token,
        clock,
        limits=KeyLimits(
            per_key=attempt_limit(admin.key_attempts_per_key),
            per_address=attempt_limit(admin.key_attempts_per_address),
        ),
        checker=checker,
    )


def ui_sessions(
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
            per_user=attempt_limit(ui.sign_ins_per_user),
            per_address=attempt_limit(ui.sign_ins_per_address),
        ),
        checker=checker,
    )


def attempt_limit(limit: AttemptLimitSettings) -> AttemptLimit:
    return AttemptLimit(per_minute=limit.per_minute, burst=limit.burst)
