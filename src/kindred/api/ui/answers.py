"""What the UI's page modules answer with: an HTML page with the UI's security headers, a
page that only says something, and the guards a page module's routes go through (the
session, its CSRF token and the role a post needs: `routes.UiPages`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from kindred.api.ui.layout import page
from kindred.api.ui.render import Markup
from kindred.api.ui.session import Visitor
from kindred.domain.users import Role

__all__ = [
    "SECURITY_HEADERS",
    "ActionHandler",
    "Form",
    "Guards",
    "Handler",
    "UserHandler",
    "first",
    "html",
    "message",
    "refusal",
]

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

Handler = Callable[[Request], Awaitable[Response]]
UserHandler = Callable[[Request, Visitor], Awaitable[Response]]
Form = dict[str, list[str]]
ActionHandler = Callable[[Request, Visitor, Form], Awaitable[Response]]


class Guards(Protocol):
    """A page needs a session; a form post also its CSRF token and the role `needs`."""

    def page(self, handler: UserHandler) -> Handler: ...

    def action(
        self, handler: ActionHandler, back: Callable[[Request], str], needs: Role = ...
    ) -> Handler: ...


def first(form: Form, key: str) -> str:
    """A form's first value of `key` ("" when it has none)."""
    return form.get(key, [""])[0]


def html(markup: Markup, status: int = 200) -> Response:
    return HTMLResponse(str(markup), status_code=status, headers=SECURITY_HEADERS)


def message(user: Visitor, title: str, active: str, text: str, status: int) -> Response:
    values = {"message": text, "alert": False, "search": None}
    return html(page("message.html", title, user=user, active=active, values=values), status)


def refusal(user: Visitor, text: str, back: str, status: int) -> Response:
    """A form post refused: why, and a link back to the page it came from."""
    values = {"alert": True, "message": text, "back": back}
    return html(page("message.html", "Refused", user=user, values=values), status)
