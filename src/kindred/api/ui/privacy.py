"""The Privacy page (RET-3, BEY-6): data subject requests with their status and, once
processed, what was removed or found in each part of the store; the signed erasure
receipts (of requests and bulk deletions), each readable whole with what checks it, and
the processor certificate's fingerprint. `templates/privacy.html` and
`templates/receipt.html` draw them; this module gathers what they show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from kindred.api.ui.times import ms_text
from kindred.domain.dsr import DsrRequest
from kindred.domain.receipts import ReceiptRecord
from kindred.wire.dsr import receipt_body

__all__ = ["privacy_view", "receipt_view"]

_STATUS_FILTERS = ("", "pending", "in_progress", "completed", "cancelled", "failed")


def privacy_view(
    requests: Sequence[DsrRequest],
    workspace_names: Mapping[int, str],
    status: str,
    receipts: Sequence[ReceiptRecord] = (),
    fingerprint: str = "",
) -> dict[str, Any]:
    shown = [r for r in requests if not status or r.status == status]
    rows = [
        {
            "request": r,
            "workspace": workspace_names.get(r.workspace_id, str(r.workspace_id)),
            "subject": _subject(r),
            "counts": _receipt(r),
            "receipt_id": r.receipt_id,
        }
        for r in shown
    ]
    choices = [(v, v.replace("_", " ") or "any status") for v in _STATUS_FILTERS]
    return {
        "rows": rows,
        "status": status,
        "status_choices": choices,
        "receipts": [_receipt_row(r, workspace_names) for r in receipts],
        "fingerprint": fingerprint,
    }


def _receipt_row(record: ReceiptRecord, workspace_names: Mapping[int, str]) -> dict[str, Any]:
    receipt = record.signed.receipt()
    workspace = receipt.workspace_id
    return {
        "id": record.receipt_id,
        "origin": "request" if receipt.origin == "dsr" else "bulk deletion",
        "request_id": receipt.request_id,
        "workspace": "—" if workspace is None else workspace_names.get(workspace, str(workspace)),
        "erased_ms": receipt.erased_ms,
        "parts": [(p.part.replace("_", " "), p.count) for p in receipt.parts if p.count],
        "outputs": [(o.connection, o.rows) for o in receipt.outputs],
    }


def receipt_view(record: ReceiptRecord) -> dict[str, Any]:
    """One receipt whole: what was removed, and the signed text, signature and
    certificate an audit checks it with."""
    receipt = record.signed.receipt()
    shown = receipt_body(record.signed)
    return {
        "receipt_id": record.receipt_id,
        "erased_ms": receipt.erased_ms,
        "scope": receipt.scope,
        "parts": [
            (p.part.replace("_", " "), p.count, ", ".join(p.ids[:20])) for p in receipt.parts
        ],
        "signed_json": msgspec.json.format(msgspec.json.encode(shown)).decode(),
    }


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
