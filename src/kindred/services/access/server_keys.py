"""The server's signing keys (Profile API bearer tokens, the web UI's session cookie).

Each comes from the environment or a key file when the operator gives one (the composition
root reads them: `overrides`), else from the store, where the first process to ask makes
it, so that every process sharing the store signs and checks with the same key and no key
has to be configured by hand. Rotating a stored key replaces it in the store: what was
signed with the old one no longer verifies once a process reads the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from kindred.domain.errors import ConfigError
from kindred.ports import Secrets

__all__ = ["TOKEN_SIGNING_KEY", "UI_SESSION_KEY", "ServerKeys"]

_KEY_BYTES = 32
# The names the keys are kept under in the store.
TOKEN_SIGNING_KEY = "profile-api-token-signing-key"
UI_SESSION_KEY = "ui-session-key"


class _KeyStore(Protocol):
    def server_secret(self, name: str, candidate: bytes) -> bytes: ...

    def replace_server_secret(self, name: str, value: bytes) -> None: ...


class ServerKeys:
    def __init__(
        self, store: _KeyStore, secrets: Secrets, overrides: Mapping[str, bytes] | None = None
    ) -> None:
        """`overrides`: keys by name given from outside the store (environment, key file)."""
        self._store = store
        self._secrets = secrets
        self._overrides = dict(overrides or {})

    def key(self, name: str) -> bytes:
        """The key named `name`: the one given from outside the store, else the stored
        one (random, made by the first process to ask for it)."""
        given = self._overrides.get(name)
        if given is not None:
            return given
        return self._store.server_secret(name, self._secrets.token_bytes(_KEY_BYTES))

    def is_stored(self, name: str) -> bool:
        """Whether the key is the store's (not given from the environment or a file)."""
        return name not in self._overrides

    def rotate(self, name: str) -> None:
        """Replace the stored key `name` with a new random one."""
        if not self.is_stored(name):
            raise ConfigError(f"the key {name!r} is not kept in the store")
        self._store.replace_server_secret(name, self._secrets.token_bytes(_KEY_BYTES))
