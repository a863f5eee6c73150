"""The page shell (`templates/base.html`: landmarks, a skip link, the navigation, one
stylesheet) and the values every page template is given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kindred.api.ui.render import Markup, render
from kindred.api.ui.session import Visitor

__all__ = ["NAV", "page"]

NAV = (
    ("profiles", "/ui/profiles", "User activity"),
    ("live", "/ui/live", "Live stream"),
    ("audiences", "/ui/audiences", "Audiences"),
    ("privacy", "/ui/privacy", "Privacy"),
    ("calculated", "/ui/calculated", "Calculated attributes"),
    ("forwarding", "/ui/connections", "Forwarding"),
)


def page(
    template: str,
    title: str,
    *,
    user: Visitor | None,
    active: str = "",
    values: Mapping[str, Any] | None = None,
) -> Markup:
    """A whole page: `template` (which extends base.html) filled with `values` and what
    the shell needs."""
    shell = {"title": title, "user": user, "active": active, "nav": NAV}
    return render(template, {**shell, **(values or {})})
