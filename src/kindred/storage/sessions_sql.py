"""Web UI sessions in the SQL stores (table `ui_sessions`): the rows and the statements
both stores run, in the placeholder style of each (`?` or `%s`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kindred.domain.sessions import UiSession

__all__ = ["SESSION_COLUMNS", "session_of", "session_row", "session_statements"]

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


def session_statements(mark: str) -> tuple[str, str, str]:
    """(select by key, end by key, purge before) with `mark` as the placeholder."""
    return (
        f"SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE session_key = {mark}",
        f"UPDATE ui_sessions SET ended_ms = {mark} WHERE session_key = {mark} AND ended_ms IS NULL",
        f"DELETE FROM ui_sessions WHERE expires_ms < {mark} OR ended_ms < {mark}",
    )
