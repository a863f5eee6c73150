"""Web UI sessions in the SQL stores (table `ui_sessions`): the rows both stores read and
write (the statements are in access_sql.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kindred.domain.sessions import UiSession

__all__ = ["SESSION_COLUMNS", "session_of", "session_row"]

SESSION_COLUMNS = "session_key, user_name, created_ms, expires_ms, ended_ms"


def session_row(session: UiSession) -> tuple[object, ...]:
    return (session.key, session.user, session.created_ms, session.expires_ms, session.ended_ms)


def session_of(row: Sequence[Any]) -> UiSession:
    key, user, created, expires, ended = row
    return UiSession(
        key=str(key),
        user=str(user),
        created_ms=int(created),
        expires_ms=int(expires),
        ended_ms=None if ended is None else int(ended),
    )
