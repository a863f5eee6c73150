"""A web UI session as the server keeps it: one per sign-in, ended by signing out or by time.

The browser's cookie names the session; the server's copy decides whether it still stands,
so signing out ends it for every process sharing the store, whatever copies of the cookie
exist. The store keys a session by a hash of the id the cookie carries, never the id.
"""

from __future__ import annotations

import msgspec

__all__ = ["UiSession"]


class UiSession(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # a hash of the session id the cookie carries
    user: str
    created_ms: int
    expires_ms: int
    ended_ms: int | None = None  # when the user signed out

    def active(self, now_ms: int) -> bool:
        return self.ended_ms is None and now_ms < self.expires_ms
