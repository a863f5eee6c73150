"""The web UI's session cookie. The sessions themselves (signing in, the server's copy of
each session, signing out, CSRF tokens) are `services.access.sessions.UiSessions`, built
once per process as `Container.ui_sessions`."""

from __future__ import annotations

from kindred.services.access.sessions import UiSessions, Visitor

__all__ = ["COOKIE", "UiSessions", "Visitor"]

COOKIE = "kindred_ui"
