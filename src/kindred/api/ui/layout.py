"""The page shell: landmarks, a skip link, the navigation, one stylesheet."""

from __future__ import annotations

from kindred.api.ui.html import Html, h, join
from kindred.api.ui.session import Visitor

__all__ = ["NAV", "csrf_field", "page", "section"]

_NONE = Html("")
NAV = (
    ("profiles", "/ui/profiles", "User activity"),
    ("live", "/ui/live", "Live stream"),
    ("audiences", "/ui/audiences", "Audiences"),
    ("privacy", "/ui/privacy", "Privacy"),
)


def page(
    title: str, body: Html, *, user: Visitor | None, active: str = "", scripts: Html = _NONE
) -> Html:
    return h(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Kindred</title>
<link rel="stylesheet" href="/ui/static/ui.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<span class="brand">Kindred</span>
{nav}
</header>
<main id="main" tabindex="-1">
<h1>{title}</h1>
{body}
</main>
{scripts}
</body>
</html>
""",
        title=title,
        nav=_nav(user, active),
        body=body,
        scripts=scripts,
    )


def csrf_field(user: Visitor) -> Html:
    """The hidden field every form that changes something carries."""
    return h('<input type="hidden" name="csrf" value="{}">', user.csrf)


def _nav(user: Visitor | None, active: str) -> Html:
    if user is None:
        return Html("")
    links = join(
        h(
            '<li><a href="{href}"{current}>{label}</a></li>',
            href=href,
            label=label,
            current=Html(' aria-current="page"') if key == active else Html(""),
        )
        for key, href, label in NAV
    )
    return h(
        '<nav aria-label="Main"><ul>{links}</ul></nav>'
        '<form class="signout" method="post" action="/ui/logout">{csrf}'
        '<span class="who">{user}</span> <button type="submit">Sign out</button></form>',
        links=links,
        csrf=csrf_field(user),
        user=user.name,
    )


def section(title: str, body: Html, *, id_: str = "") -> Html:
    """A titled part of a page (a landmark named by its heading)."""
    anchor = id_ or title.lower().replace(" ", "-")
    return h(
        '<section aria-labelledby="{anchor}-h"><h2 id="{anchor}-h">{title}</h2>{body}</section>',
        anchor=anchor,
        title=title,
        body=body,
    )
