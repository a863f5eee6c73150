"""The Audiences pages (UI-3): the list with page metrics (AUD-6), tags and connected
outputs, and one audience's definition, size over time, membership history and connections
(with their faults and a Resume action, AUD-11). `templates/audiences.html` and
`templates/audience.html` draw them; this module gathers what they show."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from kindred.api.ui.charts import size_steps_chart
from kindred.api.ui.render import Markup, fragment, when
from kindred.api.ui.session import Visitor
from kindred.api.ui.times import ms_text
from kindred.audiences.definition import AudienceDef, MembershipChange
from kindred.domain.forwarding import AudienceConnection
from kindred.domain.users import Role
from kindred.services.audiences.admin import AudienceMetrics
from kindred.services.forwarding.admin import ConnectionView

__all__ = [
    "CriteriaNode",
    "audience_tabs",
    "audience_view",
    "audiences_view",
    "connections_by_audience",
    "connections_html",
    "criteria_html",
    "criteria_tree",
    "default_tab",
    "in_tab",
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


def audience_tabs(user: Visitor) -> list[tuple[str, str]]:
    """The list's tabs: the user's own audiences, others' they may see, and (admins) all."""
    tabs = [("mine", "Mine"), ("shared", "Shared with me")]
    return [*tabs, ("all", "All")] if user.role is Role.ADMIN else tabs


def default_tab(user: Visitor) -> str:
    if user.role is Role.ADMIN:
        return "all"
    return "mine" if user.may_edit else "shared"


def in_tab(audience: AudienceDef, tab: str, user: Visitor) -> bool:
    """Whether an audience the user may see belongs on the tab."""
    if tab == "all":
        return True
    mine = audience.created_by == user.name
    return mine if tab == "mine" else not mine


def audiences_view(
    rows: Sequence[tuple[AudienceDef, AudienceMetrics]],
    all_tags: Sequence[str],
    chosen: Sequence[str],
    connections: Mapping[int, Sequence[ConnectionView]],
) -> dict[str, Any]:
    listed = [(a, m, connections.get(a.id, ())) for a, m in rows]
    return {"rows": listed, "all_tags": all_tags, "chosen": list(chosen)}


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


def audience_view(
    audience: AudienceDef,
    metrics: AudienceMetrics,
    log: Sequence[MembershipChange],
    now_ms: int,
    workspace_names: Mapping[int, str],
    *,
    connections: Sequence[ConnectionView],
    resumed: str = "",
) -> dict[str, Any]:
    return {
        "audience": audience,
        "facts": _facts(audience, metrics, workspace_names),
        "criteria": criteria_tree(audience.criteria),
        "definition_json": json.dumps(msgspec.to_builtins(audience), indent=2, ensure_ascii=False),
        "size_chart": size_steps_chart(size_points(log), now_ms, "Audience size over time"),
        "history": list(reversed(log))[:100],
        "connections": connections,
        "resumed": resumed,
    }


def connections_html(
    audience_id: int, connections: Sequence[ConnectionView], visitor: Visitor
) -> Markup:
    """The audience's connections table (templates/audience_parts.html)."""
    return fragment("audience_parts.html", "connections", audience_id, connections, visitor)


def _volatility(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _facts(
    audience: AudienceDef, metrics: AudienceMetrics, names: Mapping[int, str]
) -> list[tuple[str, object]]:
    tags = fragment("audience_parts.html", "tags", audience.tags) if audience.tags else "—"
    return [
        ("Status", fragment("macros.html", "badge", audience.status)),
        ("Size", metrics.size),
        ("Adds (24 h)", metrics.adds_24h),
        ("Drops (24 h)", metrics.drops_24h),
        ("Volatility (24 h)", _volatility(metrics.volatility_24h)),
        ("Last updated", when(metrics.last_updated_ms)),
        ("External name", audience.external_name or "—"),
        ("Workspaces", ", ".join(names.get(w, str(w)) for w in audience.workspaces)),
        ("Inputs", ", ".join(audience.inputs) or "all"),
        ("Tags", tags),
        ("Lookback", f"{audience.lookback_days} days"),
        ("Created", f"{ms_text(audience.created_ms)} by {audience.created_by or '—'}"),
        ("Last changed by", audience.updated_by or audience.created_by or "—"),
        ("Access", fragment("audience_parts.html", "access", audience.access)),
        (
            "Backfill",
            f"running, {metrics.backfill_evaluated} evaluated"
            if metrics.backfill_running
            else f"{metrics.backfill_evaluated} profiles evaluated",
        ),
    ]


@dataclass(frozen=True, slots=True)
class CriteriaNode:
    """One node of the criteria as the page reads it: a group (`word` and `children`) or
    a sentence."""

    word: str = ""
    children: Sequence[CriteriaNode] | None = None
    sentence: str = ""


def criteria_tree(node: object) -> CriteriaNode:
    """The criteria tree as readable groups and sentences."""
    if not isinstance(node, dict):
        return CriteriaNode(sentence=json.dumps(node))
    for joiner, word in (("and", "All of"), ("or", "Any of")):
        if joiner in node and isinstance(node[joiner], list):
            return CriteriaNode(word=word, children=[criteria_tree(c) for c in node[joiner]])
    if "exclude" in node:
        return CriteriaNode(word="None of", children=[criteria_tree(node["exclude"])])
    return CriteriaNode(sentence=_sentence(node))


def criteria_html(node: object) -> Markup:
    return fragment("audience_parts.html", "criteria", criteria_tree(node))


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
