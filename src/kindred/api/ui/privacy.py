"""The Privacy page (RET-3): data subject requests with their status and, once processed,
what was removed or found in each part of the store (the request's receipt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from kindred.api.ui.html import Html, h, join, ms_text
from kindred.api.ui.layout import section
from kindred.api.ui.profiles import table
from kindred.domain.dsr import DsrRequest

__all__ = ["privacy_body"]

_STATUS_FILTERS = ("", "pending", "in_progress", "completed", "cancelled", "failed")


def privacy_body(
    requests: Sequence[DsrRequest], workspace_names: Mapping[int, str], status: str
) -> Html:
    shown = [r for r in requests if not status or r.status == status]
    rows = [
        (
            workspace_names.get(r.workspace_id, str(r.workspace_id)),
            h("<code>{}</code>", r.request_id),
            r.request_type,
            r.regulation,
            _subject(r),
            _badge(r.status),
            ms_text(r.received_ms),
            ms_text(r.due_ms),
            ms_text(r.completed_ms) if r.completed_ms is not None else "—",
            _receipt(r),
        )
        for r in shown
    ]
    return h(
        "<h1>Privacy requests</h1>{form}{table}",
        form=_filter(status),
        table=section(
            "Data subject requests",
            table(
                (
                    "Workspace",
                    "Request",
                    "Type",
                    "Regulation",
                    "Subject",
                    "Status",
                    "Received",
                    "Due",
                    "Completed",
                    "Removed or found",
                ),
                rows,
                caption="Requests",
            ),
        ),
    )


def _filter(status: str) -> Html:
    options = join(
        h(
            '<option value="{v}"{s}>{t}</option>',
            v=value,
            s=Html(" selected") if value == status else Html(""),
            t=value.replace("_", " ") or "any status",
        )
        for value in _STATUS_FILTERS
    )
    return h(
        '<form class="filters" method="get" action="/ui/privacy">'
        '<label for="status">Status</label><select id="status" name="status">{}</select>'
        '<button type="submit">Filter</button></form>',
        options,
    )


def _subject(request: DsrRequest) -> str:
    if request.mpid is not None:
        return f"mpid {request.mpid}"
    return ", ".join(f"{t} {v}" for t, v in sorted(request.identities.items()))


def _badge(status: str) -> Html:
    return h('<span class="badge {s}">{t}</span>', s=status, t=status.replace("_", " "))


def _receipt(request: DsrRequest) -> Html | str:
    if request.failure:
        return request.failure
    if request.matched is not None and request.summary is None:  # access, portability
        if not request.matched:
            return "nothing matched"
        until = request.results_until_ms
        return f"data found; results kept until {ms_text(until)}" if until else "data found"
    if request.summary is None:
        return "—"
    counts = msgspec.to_builtins(request.summary)
    if not counts:
        return "nothing matched"
    return join(h("<div>{}: {}</div>", k.replace("_", " "), v) for k, v in counts.items())
