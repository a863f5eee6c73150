"""Signing in to the web UI: users from the config file, sessions kept in the store.

Signing in checks the password off the event loop (`attempts.SecretChecker`; an unknown
name against a decoy hash, so that it takes as long), within the attempts allowed per user
name and per source address, then saves a session (`domain.sessions`) and answers a cookie
naming it: a random session id signed with itsdangerous under the key `ui-session-key`
(ServerKeys), so every process sharing the store accepts it. The store keeps a hash of the
id, never the id.

Every signed-in request reads the session back by its key (one point read, no cache):
signing out ends it in the store, so a copy of the cookie stops working at once in every
process. A user taken out of the config or the store loses their sessions at once too,
and a changed role counts from the next request (the role is read on every request).

Every form that changes something carries the session's CSRF token, an HMAC of the session
id under the same key: a page of this UI can show it, another site cannot learn it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from itsdangerous import BadSignature, URLSafeSerializer

from kindred.domain.sessions import UiSession
from kindred.domain.users import Principal, Role
from kindred.ports import Clock, Secrets, SessionStore
from kindred.services.access.attempts import AttemptLimit, AttemptLimiter, SecretChecker
from kindred.services.access.server_keys import UI_SESSION_KEY, ServerKeys

__all__ = ["SignInLimits", "UiSessions", "UiUsers", "Visitor"]

_KEY_NAME = UI_SESSION_KEY
_SALT = "kindred-ui-session"
_ID_BYTES = 24
# Past this many sign-ins since the last purge, the next one deletes the sessions that ended.
_PURGE_EVERY = 64


@dataclass(frozen=True)
class Visitor:
    """A signed-in user, and the token their session's forms carry."""

    name: str
    csrf: str
    role: Role = Role.VIEWER

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role)

    def may(self, needed: Role) -> bool:
        return self.role.covers(needed)

    @property
    def may_edit(self) -> bool:
        """Whether the pages offer this user their buttons that change things."""
        return self.role.covers(Role.EDITOR)

    def may_post(self, token: str) -> bool:
        """Whether a form's token is this session's."""
        return hmac.compare_digest(token.encode(), self.csrf.encode())


@dataclass(frozen=True)
class SignInLimits:
    """Sign-in attempts allowed per user name and per source address."""

    per_user: AttemptLimit
    per_address: AttemptLimit


class UiUsers(Protocol):
    """Who may sign in (`services.access.users.UserDirectory`)."""

    def password_hash(self, name: str) -> str | None: ...

    def role_of(self, name: str) -> Role | None: ...


class UiSessions:
    def __init__(
        self,
        users: UiUsers,
        ttl_s: int,
        store: SessionStore,
        keys: ServerKeys,
        clock: Clock,
        *,
        secrets: Secrets,
        limits: SignInLimits,
        checker: SecretChecker,
    ) -> None:
        """`users`: the config file's and the store's."""
        self._users = users
        self._ttl_ms = ttl_s * 1000
        self._store = store
        self._keys = keys
        self._clock = clock
        self._secrets = secrets
        self._checker = checker
        self._per_user = AttemptLimiter("user", limits.per_user, clock)
        self._per_address = AttemptLimiter("address", limits.per_address, clock)
        self._serializer: URLSafeSerializer | None = None
        self._key: bytes | None = None
        self._since_purge = _PURGE_EVERY

    @property
    def ttl_s(self) -> int:
        return self._ttl_ms // 1000

    async def sign_in(self, name: str, password: str, address: str | None = None) -> str | None:
        """A new session's cookie value, or None when the name or password is wrong;
        RateLimited past the attempts allowed to the name or the source `address`."""
        self._per_address.take(address or "")
        self._per_user.take(name)
        if not await self._checker.check(password, self._users.password_hash(name)):
            return None
        now = self._clock.now_ms()
        session_id = _b64(self._secrets.token_bytes(_ID_BYTES))
        session = UiSession(
            key=_key(session_id), user=name, created_ms=now, expires_ms=now + self._ttl_ms
        )
        # A write may wait for the store's writer: off the event loop.
        await asyncio.to_thread(self._save, session)
        return str(self._signer().dumps(session_id))

    def visitor_of(self, cookie: str | None) -> Visitor | None:
        """The signed-in user the cookie stands for, with their session's CSRF token, or
        None (no cookie, a forged or changed one, a session ended or expired, a user no
        longer there)."""
        session_id = self._session_id(cookie)
        if session_id is None:
            return None
        session = self._store.get_session(_key(session_id))
        if session is None or not session.active(self._clock.now_ms()):
            return None
        role = self._users.role_of(session.user)
        if role is None:
            return None
        digest = hmac.new(self._secret(), b"csrf." + session_id.encode(), hashlib.sha256)
        return Visitor(name=session.user, csrf=_b64(digest.digest()), role=role)

    async def sign_out(self, cookie: str | None) -> None:
        """End the cookie's session in the store: no process accepts it any more."""
        session_id = self._session_id(cookie)
        if session_id is not None:
            ended = self._clock.now_ms()
            await asyncio.to_thread(self._store.end_session, _key(session_id), ended)

    def _session_id(self, cookie: str | None) -> str | None:
        """The session id a cookie of this server carries, spelled exactly as this server
        spells it (base64 decoding is lenient; another spelling of it is not its cookie)."""
        if not cookie or len(cookie) > 256:
            return None
        signer = self._signer()
        try:
            session_id = signer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(session_id, str) or not hmac.compare_digest(
            str(signer.dumps(session_id)).encode(), cookie.encode()
        ):
            return None
        return session_id

    def _save(self, session: UiSession) -> None:
        """Save a new session; every so often first delete those that ended."""
        self._since_purge += 1
        if self._since_purge >= _PURGE_EVERY:
            self._since_purge = 0
            self._store.purge_sessions(session.created_ms)
        self._store.save_session(session)

    def _signer(self) -> URLSafeSerializer:
        if self._serializer is None:
            self._serializer = URLSafeSerializer(
                self._secret(), salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
            )
        return self._serializer

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = self._keys.key(_KEY_NAME)
        return self._key


def _key(session_id: str) -> str:
    """What the store keeps of a session id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
