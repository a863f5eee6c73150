"""Keys the server keeps in its store (the web UI's session key), so that every process
sharing the store signs and checks with the same one, and no key is configured by hand."""

from __future__ import annotations

from typing import Protocol

from kindred.ports import Secrets

__all__ = ["ServerKeys"]

_KEY_BYTES = 32


class _KeyStore(Protocol):
    def server_secret(self, name: str, candidate: bytes) -> bytes: ...


class ServerKeys:
    def __init__(self, store: _KeyStore, secrets: Secrets) -> None:
        self._store = store
        self._secrets = secrets

    def key(self, name: str) -> bytes:
        """The key stored under `name`: random, made by the first process to ask for it."""
        return self._store.server_secret(name, self._secrets.token_bytes(_KEY_BYTES))
