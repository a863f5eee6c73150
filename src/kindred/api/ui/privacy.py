"""The Privacy page (RET-3): data subject requests with their status and, once processed,
what was removed or found in each part of the store (the request's receipt);
`templates/privacy.html` draws it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from kindred.api.ui.times import ms_text
from kindred.domain.dsr import DsrRequest

__all__ = ["privacy_view"]

_STATUS_FILTERS = ("", "pending", "in_progress", "completed", "cancelled", "failed")


def privacy_view(
    requests: Sequence[DsrRequest], workspace_names: Mapping[int, str], status: str
) -> dict[str, Any]:
    shown = [r for r in requests if not status or r.status == status]
    rows = [
        {
            "request": r,
            "workspace": workspace_names.get(r.workspace_id, str(r.workspace_id)),
            "subject": _subject(r),
            "counts": _receipt(r),
        }
        for r in shown
    ]
    choices = [(v, v.replace("_", " ") or "any status") for v in _STATUS_FILTERS]
    return {"rows": rows, "status": status, "status_choices": choices}


def _subject(request: DsrRequest) -> str:
    if request.mpid is not None:
        return f"mpid {request.mpid}"
    return ", ".join(f"{t} {v}" for t, v in sorted(request.identities.items()))


def _receipt(request: DsrRequest) -> str | list[tuple[str, object]]:
    """A line, or what was removed from each part of the store (name, count)."""
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
    return [(k.replace("_", " "), v) for k, v in counts.items()]
