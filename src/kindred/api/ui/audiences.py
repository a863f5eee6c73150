"""The Audiences pages (UI-3): the list with page metrics (AUD-6), tags and connected
outputs, and one audience's definition, size over time, membership history and connections
(with their faults and a Resume action, AUD-11)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import msgspec

from kindred.api.ui.charts import size_steps
from kindred.api.ui.html import Html, h, join, ms_text, path_part, when
from kindred.api.ui.layout import csrf_field, section
from kindred.api.ui.profiles import table
from kindred.api.ui.session import Visitor
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.domain.forwarding import AudienceConnection
from kindred.services.audiences.admin import AudienceMetrics
from kindred.services.forwarding.admin import ConnectionView, SyncView

__all__ = [
    "audience_body",
    "audiences_body",
    "connections_by_audience",
    "connections_html",
    "criteria_html",
    "size_points",
]


def connections_by_audience(
    connections: Sequence[AudienceConnection], views: Sequence[ConnectionView]
) -> dict[int, list[ConnectionView]]:
    """Each audience's connections with their status, in the order they are declared."""
    audience_of = {c.name: c.audience_id for c in connections}
    found: dict[int, list[ConnectionView]] = {}
    for view in views:
        if view.kind == "audience" and view.name in audience_of:
            found.setdefault(audience_of[view.name], []).append(view)
    return found


def _outputs(views: Sequence[ConnectionView]) -> Html:
    """Each connection's output; a status worth a look (not `sending`) beside it."""
    if not views:
        return h('<span class="muted">{}</span>', "none")
    return join(
        h(
            '<span class="output">{o}{s}</span>',
            o=v.output,
            s=Html("") if v.status == "sending" else h(" {}", _status(v.status)),
        )
        for v in views
    )


def _status(status: str) -> Html:
    return h('<span class="badge {s}">{s}</span>', s=status)


def audiences_body(
    rows: Sequence[tuple[AudienceDef, AudienceMetrics]],
    all_tags: Sequence[str],
    chosen: Sequence[str],
    connections: Mapping[int, Sequence[ConnectionView]],
) -> Html:
    boxes = join(
        h(
            '<label class="tag-choice">'
            '<input type="checkbox" name="tag" value="{t}"{c}> {t}</label>',
            t=tag,
            c=Html(" checked") if tag in chosen else Html(""),
        )
        for tag in all_tags
    )
    form = h(
        '<form class="inline" method="get" action="/ui/audiences">'
        "<fieldset><legend>Tags (audiences with all of them)</legend>{boxes}</fieldset>"
        '<button type="submit">Filter</button></form>',
        boxes=boxes or h('<span class="muted">{}</span>', "no tags yet"),
    )
    listing = table(
        [
            "Audience",
            "Status",
            "Size",
            "Adds 24 h",
            "Drops 24 h",
            "Volatility",
            "Connected outputs",
            "Tags",
            "Last updated",
        ],
        (
            (
                h('<a href="/ui/audiences/{}">{}</a>', path_part(a.id), a.name),
                h('<span class="badge {s}">{s}</span>', s=a.status),
                m.size,
                m.adds_24h,
                m.drops_24h,
                _volatility(m.volatility_24h),
                _outputs(connections.get(a.id, ())),
                join(h('<span class="tag">{}</span>', t) for t in a.tags),
                when(m.last_updated_ms),
            )
            for a, m in rows
        ),
        caption="Audiences",
    )
    return h("{}{}", form, listing)


def _volatility(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def size_points(log: Sequence[MembershipChange]) -> list[tuple[int, int]]:
    """(instant, size after it) from the membership log, oldest first."""
    inside: set[int] = set()
    points: list[tuple[int, int]] = []
    for change in log:
        if change.entered:
            inside.add(change.mpid)
        else:
            inside.discard(change.mpid)
        if points and points[-1][0] == change.at_ms:
            points[-1] = (change.at_ms, len(inside))
        else:
            points.append((change.at_ms, len(inside)))
    return points


def audience_body(
    audience: AudienceDef,
    metrics: AudienceMetrics,
    log: Sequence[MembershipChange],
    now_ms: int,
    workspace_names: Mapping[int, str],
    *,
    connections: Sequence[ConnectionView],
    visitor: Visitor,
) -> Html:
    history = table(
        ["Time", "Profile", "Change", "Reason"],
        (
            (
                when(c.at_ms),
                h('<a href="/ui/profiles/{}">{}</a>', path_part(c.mpid), str(c.mpid)),
                "entered" if c.entered else "left",
                c.reason,
            )
            for c in list(reversed(log))[:100]
        ),
        caption="Membership changes",
    )
    definition = h(
        '<div class="criteria">{}</div>'
        "<details><summary>Definition as JSON</summary><pre>{}</pre></details>",
        criteria_html(audience.criteria),
        json.dumps(msgspec.to_builtins(audience), indent=2, ensure_ascii=False),
    )
    return join(
        [
            _facts(audience, metrics, workspace_names),
            section("Definition", definition),
            section(
                "Size over time",
                h(
                    '<figure class="picture">{}<figcaption>Members over time,'
                    " from the membership log</figcaption></figure>",
                    size_steps(size_points(log), now_ms, "Audience size over time"),
                ),
            ),
            section(
                "Membership history",
                h('<p class="muted">{}</p>{}', "The newest 100 changes.", history),
            ),
            section("Connections", connections_html(audience.id, connections, visitor)),
        ]
    )


def connections_html(
    audience_id: int, connections: Sequence[ConnectionView], visitor: Visitor
) -> Html:
    """The audience's connections: output, status, the initial sync's progress, pending
    rows, the last error, when it faulted, and a Resume button for a faulted one."""
    if not connections:
        return h(
            '<p class="muted" id="connections-none">{}</p><p class="muted">{}</p>',
            "No connections are configured for this audience.",
            "Connect it to an output with [[audience_connections]] in the config file or "
            "through the admin API (docs/forwarding.md).",
        )
    return table(
        [
            "Connection",
            "Output",
            "Status",
            "Initial sync",
            "Pending",
            "Delivered",
            "Last error",
            "Faulted",
            "",
        ],
        (
            (
                h('<span class="nowrap">{}</span>', c.name),
                h('<span class="nowrap">{}</span>', c.output),
                _status(c.status),
                _sync(c.initial_sync),
                c.pending,
                c.delivered,
                h('<span class="failure">{}</span>', c.last_error) if c.last_error else "—",
                when(c.faulted_ms),
                _resume_form(audience_id, c.name, visitor) if c.status == "faulted" else "",
            )
            for c in connections
        ),
        caption="Connections",
    )


def _sync(sync: SyncView | None) -> Html:
    """How far the initial sync is: the members sent of the audience's size as it began."""
    if sync is None:
        return Html("—")
    if sync.status == "running":
        return h(
            '<span class="nowrap">running</span> <progress value="{d}" max="{t}"></progress>'
            ' <span class="nowrap">{d} of {t} members</span>',
            d=sync.members_done,
            t=max(sync.members_total, sync.members_done),
        )
    if sync.status == "done" and sync.finished_ms is not None:
        return h(
            '<span class="nowrap">done: {} members</span> {}',
            sync.members_done,
            when(sync.finished_ms),
        )
    return h('<span class="muted">{}</span>', sync.status)


def _resume_form(audience_id: int, name: str, visitor: Visitor) -> Html:
    return h(
        '<form class="resume" method="post" action="/ui/audiences/{a}/connections/{n}/resume">'
        '{csrf}<button type="submit" aria-label="Resume {name}">Resume</button></form>',
        a=path_part(audience_id),
        n=path_part(name),
        csrf=csrf_field(visitor),
        name=name,
    )


def _facts(audience: AudienceDef, metrics: AudienceMetrics, names: Mapping[int, str]) -> Html:
    facts: list[tuple[str, object]] = [
        ("Status", h('<span class="badge {s}">{s}</span>', s=audience.status)),
        ("Size", metrics.size),
        ("Adds (24 h)", metrics.adds_24h),
        ("Drops (24 h)", metrics.drops_24h),
        ("Volatility (24 h)", _volatility(metrics.volatility_24h)),
        ("Last updated", when(metrics.last_updated_ms)),
        ("External name", audience.external_name or "—"),
        ("Workspaces", ", ".join(names.get(w, str(w)) for w in audience.workspaces)),
        ("Inputs", ", ".join(audience.inputs) or "all"),
        ("Tags", join(h('<span class="tag">{}</span>', t) for t in audience.tags) or "—"),
        ("Lookback", f"{audience.lookback_days} days"),
        ("Created", f"{ms_text(audience.created_ms)} by {audience.created_by or '—'}"),
        (
            "Backfill",
            f"running, {metrics.backfill_evaluated} evaluated"
            if metrics.backfill_running
            else f"{metrics.backfill_evaluated} profiles evaluated",
        ),
    ]
    return h(
        '<dl class="facts">{}</dl>',
        join(h("<div><dt>{}</dt><dd>{}</dd></div>", k, v) for k, v in facts),
    )


def criteria_html(node: object) -> Html:
    """The criteria tree as nested lists of readable sentences."""
    if not isinstance(node, dict):
        return h("<code>{}</code>", json.dumps(node))
    for joiner, word in (("and", "All of"), ("or", "Any of")):
        if joiner in node and isinstance(node[joiner], list):
            items = join(h("<li>{}</li>", criteria_html(child)) for child in node[joiner])
            return h(
                '<div class="group"><span class="joiner">{}</span><ul>{}</ul></div>', word, items
            )
    if "exclude" in node:
        return h(
            '<div class="group"><span class="joiner">{}</span><ul><li>{}</li></ul></div>',
            "None of",
            criteria_html(node["exclude"]),
        )
    return h("<span>{}</span>", _sentence(node))


def _sentence(node: Mapping[str, object]) -> str:
    for key, phrase in _PHRASES.items():
        if key in node:
            return phrase(node)
    return json.dumps(node)


def _compare(subject: str, node: Mapping[str, object], op_key: str = "op") -> str:
    op = str(node.get(op_key, "")).replace("_", " ")
    value = _shown(node["value"]) if "value" in node else ""
    return " ".join(part for part in (subject, op, value) if part)


def _consent_sentence(node: Mapping[str, object]) -> str:
    purpose = f" for {node['purpose']}" if "purpose" in node else ""
    state = str(node.get("state", "")).replace("_", " ")
    return f"{str(node['consent']).upper()} consent{purpose}: {state}"


def _nested_sentence(node: Mapping[str, object]) -> str:
    member = "a member" if node.get("member", True) else "not a member"
    return f"{member} of audience {node['audience']}"


def _event_sentence(node: Mapping[str, object]) -> str:
    name = f" {_shown(node['name'])}" if "name" in node else ""
    count = "at least 1"
    for key in ("at_least", "at_most", "exactly"):
        if key in node:
            count = f"{key.replace('_', ' ')} {node[key]}"
    window = f" within the last {node['within_days']} days" if "within_days" in node else ""
    return f"{count} {node['event']}{name} event(s){window}"


def _shown(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


_PHRASES: dict[str, Callable[[Mapping[str, object]], str]] = {
    "attribute": lambda n: _compare(f"attribute {n['attribute']}", n),
    "identity": lambda n: _compare(f"identity {n['identity']}", n),
    "device": lambda n: _compare(f"a device's {n['device']}", n),
    "attribution": lambda n: _compare(f"install attribution {n['attribution']}", n),
    "first_seen": lambda n: _compare("first seen", n, "first_seen"),
    "audience": _nested_sentence,
    "consent": _consent_sentence,
    "event": _event_sentence,
}
