"""The Privacy page (RET-3, BEY-6): data subject requests with their status and, once
processed, what was removed or found in each part of the store; the signed erasure
receipts (of requests and bulk deletions), each readable whole with what checks it, and
the processor certificate's fingerprint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from kindred.api.ui.html import Html, h, join, ms_text
from kindred.api.ui.layout import section
from kindred.api.ui.profiles import table
from kindred.domain.dsr import DsrRequest
from kindred.domain.receipts import ReceiptRecord
from kindred.wire.dsr import receipt_body

__all__ = ["privacy_body", "receipt_page_body"]

_STATUS_FILTERS = ("", "pending", "in_progress", "completed", "cancelled", "failed")


def privacy_body(
    requests: Sequence[DsrRequest],
    workspace_names: Mapping[int, str],
    status: str,
    receipts: Sequence[ReceiptRecord] = (),
    fingerprint: str = "",
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
        "<h1>Privacy requests</h1>{form}{table}{receipts}",
        form=_filter(status),
        receipts=_receipts(receipts, workspace_names, fingerprint),
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


def _receipts(
    receipts: Sequence[ReceiptRecord], workspace_names: Mapping[int, str], fingerprint: str
) -> Html:
    rows = []
    for record in receipts:
        receipt = record.signed.receipt()
        workspace = receipt.workspace_id
        rows.append(
            (
                h(
                    '<a href="/ui/privacy/receipts/{id}"><code>{id}</code></a>',
                    id=record.receipt_id,
                ),
                "request" if receipt.origin == "dsr" else "bulk deletion",
                h("<code>{}</code>", receipt.request_id) if receipt.request_id else "—",
                workspace_names.get(workspace, str(workspace)) if workspace is not None else "—",
                ms_text(receipt.erased_ms),
                join(
                    h("<div>{}: {}</div>", p.part.replace("_", " "), p.count)
                    for p in receipt.parts
                    if p.count
                ),
                join(h("<div>{}: {}</div>", o.connection, o.rows) for o in receipt.outputs) or "—",
            )
        )
    heads = ("Receipt", "Of", "Request", "Workspace", "Erased", "Removed", "Removals sent")
    return section(
        "Erasure receipts",
        h(
            '<p class="muted">Signed RSA-SHA256 by the processor certificate'
            " <code>{}</code> (SHA-256); <code>kindred dsr verify ID</code> checks one.</p>{}",
            fingerprint,
            table(heads, rows, caption="Receipts"),
        ),
    )


def receipt_page_body(record: ReceiptRecord) -> Html:
    """One receipt whole: what was removed, and the signed text, signature and
    certificate an audit checks it with."""
    shown = receipt_body(record.signed)
    receipt = record.signed.receipt()
    parts = [
        (p.part.replace("_", " "), p.count, h("<code>{}</code>", ", ".join(p.ids[:20])))
        for p in receipt.parts
    ]
    return h(
        "<h1>Erasure receipt <code>{id}</code></h1><p>Erased {when}; scope {scope}.</p>"
        "{parts}<details><summary>Signed receipt (JSON)</summary><pre>{json}</pre></details>",
        id=record.receipt_id,
        when=ms_text(receipt.erased_ms),
        scope=receipt.scope,
        parts=section("Removed", table(("Part", "Rows", "Ids"), parts, caption="Parts")),
        json=msgspec.json.format(msgspec.json.encode(shown)).decode(),
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
    link = (
        h(
            '<div><a href="/ui/privacy/receipts/{id}">signed receipt</a></div>',
            id=request.receipt_id,
        )
        if request.receipt_id
        else Html("")
    )
    if not counts:
        return h("nothing matched{}", link)
    return h(
        "{}{}",
        join(h("<div>{}: {}</div>", k.replace("_", " "), v) for k, v in counts.items()),
        link,
    )
