"""The Live Stream (UI-2): the newest batches of development data, as they arrive."""

from __future__ import annotations

from collections.abc import Sequence

from kindred.api.ui.html import Html, h, join, path_part, when
from kindred.services.profiles.activity import LiveFilter, LiveItem

__all__ = ["EVENT_TYPES", "live_body", "live_items"]

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


def live_body(
    items: Sequence[LiveItem], live_filter: LiveFilter, inputs: Sequence[str], cursor: str
) -> Html:
    return h(
        '<p class="muted">The newest batches of development data (batches sent with'
        ' <code>"environment": "development"</code>) and every refused or quarantined batch;'
        " new ones appear at the top as they arrive.</p>"
        "{form}"
        '<p id="live-status" class="muted" role="status" aria-live="polite"></p>'
        '<ol id="live-list" class="live" data-cursor="{cursor}">{items}</ol>'
        '<p class="muted" id="live-empty"{hidden}>No batches yet.</p>',
        form=_filter_form(live_filter, inputs),
        cursor=cursor,
        items=live_items(items),
        hidden=Html(" hidden") if items else Html(""),
    )


def _select(name: str, label: str, choices: Sequence[tuple[str, str]], chosen: str) -> Html:
    options = join(
        h(
            '<option value="{v}"{sel}>{t}</option>',
            v=v,
            t=t,
            sel=Html(" selected") if v == chosen else Html(""),
        )
        for v, t in choices
    )
    return h(
        '<label for="f-{n}">{l}</label><select id="f-{n}" name="{n}">{o}</select>',
        n=name,
        l=label,
        o=options,
    )


def _filter_form(live_filter: LiveFilter, inputs: Sequence[str]) -> Html:
    return h(
        '<form id="live-filter" class="inline" method="get" action="/ui/live">{i}{e}{env}'
        '<button type="submit">Apply</button></form>',
        i=_select(
            "input", "Input", [("", "all"), *((n, n) for n in inputs)], live_filter.input or ""
        ),
        e=_select(
            "event_type",
            "Event type",
            [("", "all"), *((t, t) for t in EVENT_TYPES)],
            live_filter.event_type or "",
        ),
        env=_select(
            "environment",
            "Environment",
            [("development", "development"), ("all", "all")],
            live_filter.environment or "all",
        ),
    )


def live_items(items: Sequence[LiveItem]) -> Html:
    return join(_item(i) for i in items)


def _item(item: LiveItem) -> Html:
    user = (
        h(
            '<a class="user" href="/ui/profiles/{}">MPID {}</a>',
            path_part(item.mpid),
            str(item.mpid),
        )
        if item.mpid is not None
        else h('<span class="muted">{}</span>', "no profile")
    )
    reason = h('<p class="reason">{}</p>', item.reason) if item.reason else Html("")
    types = ", ".join(sorted(set(item.event_types))) or "no events"
    return h(
        '<li class="item {kind}" data-kind="{kind}">'
        '<div class="line"><span class="badge {status}">{status}</span>'
        "{time}<span>input <b>{input}</b></span><span>{types}</span>{user}</div>"
        "{reason}"
        "<details><summary>Batch JSON</summary><pre>{body}</pre></details></li>",
        kind=item.kind,
        status=item.status,
        time=when(item.received_ms),
        input=item.input,
        types=types,
        user=user,
        reason=reason,
        body=item.body_text,
    )
