"""Signing in to the web UI: users from the config file, a signed session cookie.

The cookie holds the user's name and when the session ends, signed with HMAC-SHA256 under
a key kept in the store (`services.server_keys`), so every server process sharing the store
accepts the same cookies and no session table is needed. A user removed from the config
loses their sessions at once; signing out clears the cookie.

Every form that changes something carries the session's CSRF token, an HMAC of the cookie
under the same key: a page of this UI can show it, another site cannot learn it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from dataclasses import dataclass

from kindred.config import UiSettings
from kindred.domain.credentials import hash_secret, verify_secret
from kindred.ports import Clock
from kindred.services.access.server_keys import UI_SESSION_KEY, ServerKeys

__all__ = ["COOKIE", "Sessions", "Visitor"]

COOKIE = "kindred_ui"
_KEY_NAME = UI_SESSION_KEY


@dataclass(frozen=True)
class Visitor:
    """A signed-in user, and the token their session's forms carry."""

    name: str
    csrf: str

    def may_post(self, token: str) -> bool:
        """Whether a form's token is this session's."""
        return hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, settings: UiSettings, keys: ServerKeys, clock: Clock) -> None:
        self._users = {u.name: u.password_hash for u in settings.users}
        self._ttl_ms = settings.session_ttl_s * 1000
        self._keys = keys
        self._clock = clock
        self._key: bytes | None = None
        # Checked against when the name is unknown, so that the answer takes as long.
        self._decoy = hash_secret("decoy", b"kindred-ui-decoy")

    @property
    def ttl_s(self) -> int:
        return self._ttl_ms // 1000

    async def sign_in(self, name: str, password: str) -> str | None:
        """A new session cookie value, or None when the name or password is wrong."""
        encoded = self._users.get(name, self._decoy)
        # scrypt takes ~0.1 s: off the event loop.
        valid = await asyncio.to_thread(verify_secret, password, encoded)
        if not valid or name not in self._users:
            return None
        return self._sign(name, self._clock.now_ms() + self._ttl_ms)

    def user_of(self, cookie: str | None) -> str | None:
        """The signed-in user the cookie stands for, or None."""
        if not cookie or cookie.count(".") != 2:
            return None
        encoded_name, expires, _ = cookie.split(".")
        try:
            name = _unb64(encoded_name).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not expires.isdigit() or not hmac.compare_digest(cookie, self._sign(name, int(expires))):
            return None
        if int(expires) <= self._clock.now_ms() or name not in self._users:
            return None
        return name

    def visitor_of(self, cookie: str | None) -> Visitor | None:
        """The signed-in user with their session's CSRF token, or None."""
        name = self.user_of(cookie)
        if name is None or cookie is None:
            return None
        digest = hmac.new(self._secret(), b"csrf." + cookie.encode(), hashlib.sha256).digest()
        return Visitor(name=name, csrf=_b64(digest))

    def _sign(self, name: str, expires_ms: int) -> str:
        payload = f"{_b64(name.encode())}.{expires_ms}"
        digest = hmac.new(self._secret(), payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(digest)}"

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = self._keys.key(_KEY_NAME)
        return self._key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
