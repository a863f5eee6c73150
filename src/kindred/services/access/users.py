"""Users, their roles and their admin API keys (`domain.users`).

Users come from two places: the config file (`[[ui.users]]`, role `admin` unless it says)
and the store (`kindred users add`). The directory merges both, rebuilt when the store's
definitions version moves (`services.definitions`), so a removed user or a revoked key
stops working in every process as soon as it is committed. A name in both places is
refused: `add` refuses it, and a clash made by editing the config later leaves that name
unable to sign in or use a key until one of the two goes (`clashes` names it).

An API key is `kdk_<key id>_<secret>`; the store keeps the key id and an scrypt hash of the
secret (`domain.credentials.hash_secret`, as for Profile API credentials), shown once when
the key is created. `AdminCallers` tells who an admin API request comes from: the bootstrap
`admin.token` (the admin role) or a user's key (the user's role as it is now). A key not
yet seen is checked off the event loop (`attempts.SecretChecker`) within the attempts
allowed per key id and per source address; a key once verified is remembered, and is
looked up again on every request (a revocation counts at once).
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from kindred.domain.credentials import hash_secret
from kindred.domain.errors import AuthMissing, Conflict, InvalidBatch, NotFound
from kindred.domain.users import (
    ADMIN_TOKEN,
    Principal,
    Role,
    UserKeyRecord,
    UserRecord,
    check_user_name,
)
from kindred.ports import Clock, DefinitionsVersion, Secrets, UserStore
from kindred.services.access.attempts import AttemptLimit, AttemptLimiter, SecretChecker
from kindred.services.definitions import Versioned

__all__ = [
    "KEY_PREFIX",
    "AdminCallers",
    "IssuedKey",
    "KeyLimits",
    "UserDirectory",
    "parse_key",
]

log = logging.getLogger("kindred.users")

KEY_PREFIX = "kdk"
_VERIFIED_LIMIT = 10_000
_MIN_PASSWORD = 8


class IssuedKey(msgspec.Struct, frozen=True):
    """A newly created API key: the only time its secret is shown."""

    user: str
    key_id: str
    key: str


class _Users(UserStore, DefinitionsVersion, Protocol):
    """The stored users and keys, and the definitions' version."""


@dataclass(frozen=True)
class _Merged:
    users: dict[str, UserRecord]
    keys: dict[str, UserKeyRecord]
    clashes: tuple[str, ...]


class UserDirectory:
    def __init__(
        self, configured: Sequence[UserRecord], store: _Users, clock: Clock, secrets: Secrets
    ) -> None:
        self._configured = {u.name: u for u in configured}
        self._store = store
        self._clock = clock
        self._secrets = secrets
        self._merged = Versioned(store, self._load)

    # --- reading --------------------------------------------------------------------------

    def get(self, name: str) -> UserRecord | None:
        """The user of this name (None: no such user, or a name both the config and the
        store have)."""
        return self._merged.current().users.get(name)

    def all(self) -> list[UserRecord]:
        return sorted(self._merged.current().users.values(), key=lambda u: u.name)

    def clashes(self) -> tuple[str, ...]:
        """Names both the config file and the store have: neither may sign in."""
        return self._merged.current().clashes

    def keys(self, name: str) -> list[UserKeyRecord]:
        return [k for k in self._merged.current().keys.values() if k.user == name]

    def active_key(self, key_id: str) -> UserKeyRecord | None:
        key = self._merged.current().keys.get(key_id)
        return key if key is not None and key.active else None

    def password_hash(self, name: str) -> str | None:
        user = self.get(name)
        return None if user is None else user.password_hash

    def role_of(self, name: str) -> Role | None:
        user = self.get(name)
        return None if user is None else user.role_value

    # --- changing (the store's users; config users are changed in the config) ---------------

    def add(self, name: str, role: str, password: str) -> UserRecord:
        check_user_name(name)
        Role.parse(role)
        if len(password) < _MIN_PASSWORD:
            raise InvalidBatch(f"a password has at least {_MIN_PASSWORD} characters", "password")
        if name in self._configured:
            raise Conflict(f"user {name!r} is in the config file ([[ui.users]]); pick another name")
        if any(u.name == name for u in self._store.list_users()):
            raise Conflict(f"user {name!r} exists already")
        user = UserRecord(
            name=name,
            role=role,
            password_hash=hash_secret(password, self._secrets.token_bytes(16)),
            created_ms=self._clock.now_ms(),
        )
        self._store.save_user(user)
        return user

    def set_role(self, name: str, role: str) -> UserRecord:
        Role.parse(role)
        stored = self._stored(name)
        changed = msgspec.structs.replace(stored, role=role)
        self._store.save_user(changed)
        return changed

    def remove(self, name: str) -> UserRecord:
        stored = self._stored(name)
        self._store.remove_user(name)
        return stored

    def create_key(self, name: str) -> IssuedKey:
        if self.get(name) is None:
            raise NotFound(f"no user {name!r}")
        key_id = self._secrets.token_bytes(8).hex()
        secret = _b64(self._secrets.token_bytes(32))
        record = UserKeyRecord(
            key_id=key_id,
            user=name,
            secret_hash=hash_secret(secret, self._secrets.token_bytes(16)),
            created_ms=self._clock.now_ms(),
        )
        self._store.save_user_key(record)
        return IssuedKey(name, key_id, f"{KEY_PREFIX}_{key_id}_{secret}")

    def revoke_key(self, name: str, key_id: str) -> UserKeyRecord:
        key = self._merged.current().keys.get(key_id)
        if key is None or key.user != name:
            raise NotFound(f"user {name!r} has no key {key_id!r}")
        if not key.active:
            return key
        revoked = msgspec.structs.replace(key, revoked_ms=self._clock.now_ms())
        self._store.save_user_key(revoked)
        return revoked

    def _stored(self, name: str) -> UserRecord:
        if name in self._configured:
            raise Conflict(f"user {name!r} is in the config file ([[ui.users]]): change it there")
        found = next((u for u in self._store.list_users() if u.name == name), None)
        if found is None:
            raise NotFound(f"no user {name!r}")
        return found

    def _load(self) -> _Merged:
        stored = {u.name: u for u in self._store.list_users()}
        clashes = tuple(sorted(set(stored) & set(self._configured)))
        users = {**self._configured, **stored}
        for name in clashes:
            del users[name]
            log.error(
                "user %r is both in the config file and in the store: neither may sign in or"
                " use a key until one goes (kindred users remove, or the config)",
                name,
            )
        keys = {k.key_id: k for k in self._store.list_user_keys()}
        return _Merged(users, keys, clashes)


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a `kdk_<key id>_<secret>` key, or None for anything else."""
    prefix, _, rest = text.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret or len(text) > 200:
        return None
    return key_id, secret


@dataclass(frozen=True)
class KeyLimits:
    """Attempts with a key not yet verified allowed per key id and per source address."""

    per_key: AttemptLimit
    per_address: AttemptLimit


class AdminCallers:
    """Who an admin API request comes from."""

    def __init__(
        self,
        directory: UserDirectory,
        admin_token: str | None,
        clock: Clock,
        *,
        limits: KeyLimits,
        checker: SecretChecker,
    ) -> None:
        self._directory = directory
        self._token = None if admin_token is None else admin_token.encode()
        self._checker = checker
        self._per_key = AttemptLimiter("key", limits.per_key, clock)
        self._per_address = AttemptLimiter("address", limits.per_address, clock)
        # Keys already verified (key -> key id): the hot path skips the scrypt.
        self._verified: dict[str, str] = {}

    async def caller(self, authorization: str | None, address: str | None = None) -> Principal:
        """The principal behind `Authorization: Bearer ...`: AuthMissing (401) when there is
        none or it is unknown or revoked; RateLimited past the attempts allowed."""
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise AuthMissing("missing Authorization: Bearer <user API key or admin.token>")
        if self._token is not None and hmac.compare_digest(given.encode(), self._token):
            return Principal(ADMIN_TOKEN, Role.ADMIN, user=False)
        key_id = self._verified.get(given)
        if key_id is None:
            key_id = await self._verify(given, address)
        key = self._directory.active_key(key_id)
        role = None if key is None else self._directory.role_of(key.user)
        if key is None or role is None:
            self._verified.pop(given, None)
            raise AuthMissing("this API key was revoked or its user removed")
        return Principal(key.user, role)

    async def _verify(self, given: str, address: str | None) -> str:
        self._per_address.take(address or "")
        parsed = parse_key(given)
        key_id, secret = parsed if parsed is not None else ("", given)
        if parsed is not None:
            self._per_key.take(key_id)
        key = self._directory.active_key(key_id) if parsed is not None else None
        # An unknown key is checked against a decoy: the same time.
        encoded = None if key is None else key.secret_hash
        if not await self._checker.check(secret, encoded) or key is None:
            raise AuthMissing("unknown API key or admin token")
        if len(self._verified) >= _VERIFIED_LIMIT:
            self._verified.clear()
        self._verified[given] = key_id
        return key_id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
