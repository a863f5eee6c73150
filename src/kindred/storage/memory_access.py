"""The memory store's credentials, server secrets, users and UI sessions."""

from __future__ import annotations

import threading
from collections.abc import Callable

import msgspec

from kindred.domain.credentials import ApiCredential
from kindred.domain.sessions import UiSession
from kindred.domain.users import UserKeyRecord, UserRecord
from kindred.storage.memory_state import MemoryState

__all__ = ["MemoryAccess"]


class MemoryAccess:
    """API credentials, server secrets, users, their keys and UI sessions."""

    _state: MemoryState
    _lock: threading.RLock
    # The store's: a change of credentials or users is a change of definitions.
    _definitions_changed: Callable[[], None]

    def save_credential(self, credential: ApiCredential) -> None:
        with self._lock:
            self._state.credentials[credential.client_id] = credential
            self._definitions_changed()

    def list_credentials(self) -> list[ApiCredential]:
        return sorted(self._state.credentials.values(), key=lambda c: (c.created_ms, c.client_id))

    def server_secret(self, name: str, candidate: bytes) -> bytes:
        with self._lock:
            return self._state.secrets.setdefault(name, candidate)

    def replace_server_secret(self, name: str, value: bytes) -> None:
        with self._lock:
            self._state.secrets[name] = value

    def save_user(self, user: UserRecord) -> None:
        with self._lock:
            self._state.users[user.name] = user
            self._definitions_changed()

    def remove_user(self, name: str) -> bool:
        with self._lock:
            keys = self._state.user_keys
            for key_id in [k for k, v in keys.items() if v.user == name]:
                del keys[key_id]
            self._definitions_changed()
            return self._state.users.pop(name, None) is not None

    def list_users(self) -> list[UserRecord]:
        return sorted(self._state.users.values(), key=lambda u: u.name)

    def save_user_key(self, key: UserKeyRecord) -> None:
        with self._lock:
            self._state.user_keys[key.key_id] = key
            self._definitions_changed()

    def list_user_keys(self) -> list[UserKeyRecord]:
        return sorted(self._state.user_keys.values(), key=lambda k: (k.created_ms, k.key_id))

    def save_session(self, session: UiSession) -> None:
        with self._lock:
            self._state.sessions[session.key] = session

    def get_session(self, key: str) -> UiSession | None:
        return self._state.sessions.get(key)

    def end_session(self, key: str, ended_ms: int) -> None:
        with self._lock:
            session = self._state.sessions.get(key)
            if session is not None and session.ended_ms is None:
                ended = msgspec.structs.replace(session, ended_ms=ended_ms)
                self._state.sessions[key] = ended

    def purge_sessions(self, before_ms: int) -> int:
        with self._lock:
            sessions = self._state.sessions
            gone = [
                k
                for k, s in sessions.items()
                if s.expires_ms < before_ms or (s.ended_ms is not None and s.ended_ms < before_ms)
            ]
            for key in gone:
                del sessions[key]
            return len(gone)
