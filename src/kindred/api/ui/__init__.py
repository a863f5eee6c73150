"""The web UI (UI-1 … UI-3): server-rendered pages under /ui/, behind a sign-in."""

from kindred.api.ui.routes import ui_routes

__all__ = ["ui_routes"]
