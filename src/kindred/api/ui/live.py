"""The Live Stream (UI-2): the newest batches of development data, as they arrive
(`templates/live.html`; each item from `templates/live_items.html`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kindred.api.ui.render import Markup, fragment
from kindred.services.profiles.activity import LiveFilter, LiveItem

__all__ = ["EVENT_TYPES", "live_items", "live_view"]

EVENT_TYPES = (
    "custom_event",
    "screen_view",
    "commerce_event",
    "session_start",
    "session_end",
    "crash_report",
    "opt_out",
    "first_run",
    "application_state_transition",
    "push_registration",
    "breadcrumb",
    "user_attribute_change",
    "user_identity_change",
)


def live_view(
    items: Sequence[LiveItem],
    live_filter: LiveFilter,
    inputs: Sequence[str],
    cursor: str,
    interval_ms: int,
) -> dict[str, Any]:
    filters = [
        ("input", "Input", [("", "all"), *((n, n) for n in inputs)], live_filter.input or ""),
        (
            "event_type",
            "Event type",
            [("", "all"), *((t, t) for t in EVENT_TYPES)],
            live_filter.event_type or "",
        ),
        (
            "environment",
            "Environment",
            [("development", "development"), ("all", "all")],
            live_filter.environment or "all",
        ),
    ]
    return {"items": items, "filters": filters, "cursor": cursor, "interval_ms": interval_ms}


def live_items(items: Sequence[LiveItem]) -> Markup:
    return fragment("live_items.html", "items", items)
