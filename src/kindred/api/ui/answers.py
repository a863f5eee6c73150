"""The UI's HTML answers: a page with the security headers every UI answer carries, and a
page that only says something (a missing audience, a refused form)."""

from __future__ import annotations

from starlette.responses import HTMLResponse, Response

from kindred.api.ui.layout import page
from kindred.api.ui.render import Markup
from kindred.api.ui.session import Visitor

__all__ = ["SECURITY_HEADERS", "html", "message", "refusal"]

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def html(markup: Markup, status: int = 200) -> Response:
    return HTMLResponse(str(markup), status_code=status, headers=SECURITY_HEADERS)


def message(user: Visitor, title: str, active: str, text: str, status: int) -> Response:
    values = {"message": text, "alert": False, "search": None}
    return html(page("message.html", title, user=user, active=active, values=values), status)


def refusal(user: Visitor, text: str, back: str, status: int) -> Response:
    """A form post refused: why, and a link back to the page it came from."""
    values = {"alert": True, "message": text, "back": back}
    return html(page("message.html", "Refused", user=user, values=values), status)
