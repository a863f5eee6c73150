"""The User Activity View (UI-1): find a profile, then everything Kindred knows about it
(`templates/profile.html`); this module gathers what the page shows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kindred.api.ui.charts import day_bars_chart
from kindred.api.ui.render import Markup, path_part, when
from kindred.api.ui.times import query
from kindred.domain.calculated_entries import CALCULATED_SOURCE
from kindred.domain.identities import DEVICE_IDENTITY_TYPES, USER_IDENTITY_TYPES
from kindred.domain.profile import Profile, WorkspaceProfile
from kindred.services.profiles.activity import Timeline

__all__ = ["SEARCH_TYPES", "profile_view", "search_form"]

SEARCH_TYPES = ("mpid", *sorted(USER_IDENTITY_TYPES), *sorted(DEVICE_IDENTITY_TYPES))


def search_form(id_type: str = "customer_id", value: str = "") -> dict[str, Any]:
    """The search form's values (templates/search_form.html)."""
    choices = [(t, "MPID" if t == "mpid" else t) for t in SEARCH_TYPES]
    return {"choices": choices, "type": id_type, "value": value}


def profile_view(
    profile: Profile,
    *,
    expired: bool,
    workspace_names: Mapping[int, str],
    timeline: Timeline,
    event_type: str | None,
    variations: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """What the profile page shows; `variations`: the profile's variation in each audience
    with an A/B test."""
    chosen = variations or {}
    base = f"/ui/profiles/{path_part(profile.mpid)}"
    return {
        "expired": expired,
        "facts": _facts(profile),
        "user_identities": sorted(profile.user_identities.items()),
        "device_identities": [
            (t, v, key)
            for wp in profile.workspaces.values()
            for key, d in sorted(wp.devices.items())
            for t, v in sorted(d.identities.items())
        ],
        "workspaces": [
            _workspace(workspace_names.get(ws_id, str(ws_id)), ws_id, wp)
            for ws_id, wp in sorted(profile.workspaces.items())
        ],
        "calculated": _calculated(profile),
        "memberships": [
            (m, chosen.get(m.audience_id, "—"))
            for m in sorted(profile.memberships.values(), key=lambda m: m.since_ms)
        ],
        "timeline": timeline,
        "base": base,
        "event_type": event_type or "",
        "event_type_choices": [(t, t) for t in timeline.event_types],
        "day_bars": day_bars_chart(timeline.per_day, "Events per day over the last 30 days"),
        "newer": _page_link(base, timeline, timeline.page - 1, event_type),
        "older": _page_link(base, timeline, timeline.page + 1, event_type),
    }


def _facts(profile: Profile) -> list[tuple[str, object]]:
    seen = [(w.first_seen_ms, w.last_seen_ms) for w in profile.workspaces.values()]
    first = min((f for f, _ in seen), default=profile.created_ms)
    last = max((la for _, la in seen), default=profile.last_stored_ms)
    facts: list[tuple[str, object]] = [
        ("MPID", str(profile.mpid)),
        ("Identity scope", profile.scope),
        ("First seen", when(first)),
        ("Last seen", when(last)),
        ("IP", profile.ip or "—"),
        ("Opted out", "yes" if profile.is_opted_out else "no"),
        ("Limit ad tracking", _yes_no(profile.limit_ad_tracking)),
    ]
    if profile.merged_into is not None:
        link = Markup('<a href="/ui/profiles/{m}">{m}</a>').format(m=str(profile.merged_into))
        facts.append(("Merged into", link))
    return facts


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else "yes" if value else "no"


def _value_text(value: object) -> str:
    if value is None:
        return "(tag)"
    return value if isinstance(value, str) else json.dumps(value)


def _workspace(name: str, ws_id: int, wp: WorkspaceProfile) -> dict[str, Any]:
    consent: list[tuple[str, str, object]] = [("GDPR", p, c) for p, c in sorted(wp.gdpr.items())]
    if wp.ccpa:
        consent.append(("CCPA", "data sale opt-out", wp.ccpa))
    return {
        "name": name,
        "id": ws_id,
        "profile": wp,
        "attributes": [(k, e, _value_text(e.value)) for k, e in sorted(wp.attributes.items())],
        "consent": consent,
        "devices": [(k, d, _device_details(d.info)) for k, d in sorted(wp.devices.items())],
    }


def _device_details(info: Mapping[str, object]) -> str:
    shown = [
        f"{k}: {v}" for k, v in sorted(info.items()) if not k.endswith(("_id", "idfa", "idfv"))
    ]
    return ", ".join(shown[:6]) or "—"


def _calculated(profile: Profile) -> list[tuple[str, str]]:
    """The values the profile keeps (written by ingest and the scheduler)."""
    values = {
        name: entry.value
        for workspace in profile.workspaces.values()
        for name, entry in workspace.attributes.items()
        if entry.source == CALCULATED_SOURCE and name in workspace.calculated
    }
    return [(k, _value_text(v)) for k, v in sorted(values.items())]


def _page_link(base: str, timeline: Timeline, page: int, event_type: str | None) -> str:
    """The timeline page's address, or "" when there is no such page."""
    if page < 0 or page >= timeline.pages:
        return ""
    return base + query(event_type=event_type, page=page + 1)
