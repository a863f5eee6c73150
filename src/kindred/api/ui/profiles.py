"""The User Activity View (UI-1): find a profile, then everything Kindred knows about it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from kindred.api.ui.charts import day_bars
from kindred.api.ui.html import Html, h, join, path_part, query, when
from kindred.api.ui.layout import section
from kindred.domain.calculated_entries import CALCULATED_SOURCE
from kindred.domain.identities import DEVICE_IDENTITY_TYPES, USER_IDENTITY_TYPES
from kindred.domain.observation import ConsentFact
from kindred.domain.profile import Profile, WorkspaceProfile
from kindred.services.profiles.activity import Timeline

__all__ = ["SEARCH_TYPES", "missing_profile", "profile_body", "search_form", "table"]

SEARCH_TYPES = ("mpid", *sorted(USER_IDENTITY_TYPES), *sorted(DEVICE_IDENTITY_TYPES))


def search_form(id_type: str = "customer_id", value: str = "") -> Html:
    options = join(
        h(
            '<option value="{v}"{sel}>{label}</option>',
            v=t,
            sel=Html(" selected") if t == id_type else Html(""),
            label="MPID" if t == "mpid" else t,
        )
        for t in SEARCH_TYPES
    )
    return h(
        '<form class="search" method="get" action="/ui/profiles" role="search">'
        '<label for="search-type">Find by</label>'
        '<select id="search-type" name="type">{options}</select>'
        '<label for="search-value" class="visually-hidden">Value</label>'
        '<input id="search-value" name="q" value="{value}" required placeholder="value"'
        ' autocomplete="off">'
        '<button type="submit">Search</button></form>',
        options=options,
        value=value,
    )


def missing_profile(message: str) -> Html:
    return h('<p class="notice" role="status">{}</p>', message)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, caption: str = "") -> Html:
    body = join(h("<tr>{}</tr>", join(h("<td>{}</td>", cell) for cell in row)) for row in rows)
    if not body:
        return h('<p class="muted">{}</p>', f"No {caption.lower() or 'entries'}.")
    return h(
        '<div class="scroll"><table>{cap}<thead><tr>{heads}</tr></thead><tbody>{body}</tbody>'
        "</table></div>",
        cap=h('<caption class="visually-hidden">{}</caption>', caption) if caption else Html(""),
        heads=join(h('<th scope="col">{}</th>', x) for x in headers),
        body=body,
    )


def profile_body(
    profile: Profile,
    *,
    expired: bool,
    workspace_names: Mapping[int, str],
    timeline: Timeline,
    event_type: str | None,
    variations: Mapping[int, str] | None = None,
) -> Html:
    """`variations`: the profile's variation in each audience with an A/B test."""
    parts = [
        h(
            '<p class="notice" role="status">{}</p>',
            "This profile has expired: it is past "
            "its account's profile lifetime and will be deleted by the next sweep.",
        )
        if expired
        else Html(""),
        _summary(profile),
        section("Identities", _identities(profile)),
        *(
            _workspace(workspace_names.get(ws_id, str(ws_id)), ws_id, wp)
            for ws_id, wp in sorted(profile.workspaces.items())
        ),
        section("Calculated attributes", _calculated(profile)),
        section("Audience memberships", _memberships(profile, variations or {})),
        section("Event timeline", _timeline(profile.mpid, timeline, event_type)),
    ]
    return join(parts)


def _summary(profile: Profile) -> Html:
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
        facts.append(
            (
                "Merged into",
                h('<a href="/ui/profiles/{m}">{m}</a>', m=str(profile.merged_into)),
            )
        )
    return h(
        '<dl class="facts">{}</dl>',
        join(h("<div><dt>{}</dt><dd>{}</dd></div>", k, v) for k, v in facts),
    )


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else "yes" if value else "no"


def _identities(profile: Profile) -> Html:
    users = table(
        ["Type", "Value", "First seen", "Last seen"],
        (
            (t, e.value, when(e.first_seen_ms), when(e.last_seen_ms))
            for t, e in sorted(profile.user_identities.items())
        ),
        caption="User identities",
    )
    devices = table(
        ["Type", "Value", "Device"],
        (
            (t, v, key)
            for wp in profile.workspaces.values()
            for key, d in sorted(wp.devices.items())
            for t, v in sorted(d.identities.items())
        ),
        caption="Device identities",
    )
    return h("<h3>User identities</h3>{}<h3>Device identities</h3>{}", users, devices)


def _value_text(value: object) -> str:
    if value is None:
        return "(tag)"
    return value if isinstance(value, str) else json.dumps(value)


def _workspace(name: str, ws_id: int, wp: WorkspaceProfile) -> Html:
    attributes = table(
        ["Attribute", "Value", "Source", "Written"],
        (
            (
                key,
                h('<s title="removed">{}</s>', "removed") if e.deleted else _value_text(e.value),
                e.source,
                when(e.ts_ms),
            )
            for key, e in sorted(wp.attributes.items())
        ),
        caption="User attributes",
    )
    consent = table(
        ["Regulation", "Purpose", "State", "Time", "Document"],
        [
            *(("GDPR", p, *_consent(c)) for p, c in sorted(wp.gdpr.items())),
            *((("CCPA", "data sale opt-out", *_consent(wp.ccpa)),) if wp.ccpa else ()),
        ],
        caption="Consent",
    )
    devices = table(
        ["Device", "Platform", "First seen", "Last seen", "Details"],
        (
            (
                key,
                d.platform or "—",
                when(d.first_seen_ms),
                when(d.last_seen_ms),
                _device_details(d.info),
            )
            for key, d in sorted(wp.devices.items())
        ),
        caption="Devices",
    )
    times = h(
        '<p class="muted">First seen {} · last seen {}</p>',
        when(wp.first_seen_ms),
        when(wp.last_seen_ms),
    )
    return section(
        f"Workspace {name}",
        h(
            "{}<h3>User attributes</h3>{}<h3>Consent</h3>{}<h3>Devices</h3>{}",
            times,
            attributes,
            consent,
            devices,
        ),
        id_=f"workspace-{ws_id}",
    )


def _consent(fact: ConsentFact) -> tuple[str, str, str]:
    state = "consented" if fact.consented else "not consented"
    return state, when(fact.timestamp_ms), fact.document or "—"


def _device_details(info: Mapping[str, object]) -> str:
    shown = [
        f"{k}: {v}" for k, v in sorted(info.items()) if not k.endswith(("_id", "idfa", "idfv"))
    ]
    return ", ".join(shown[:6]) or "—"


def _calculated(profile: Profile) -> Html:
    """The values the profile keeps (written by ingest and the scheduler)."""
    values = {
        name: entry.value
        for workspace in profile.workspaces.values()
        for name, entry in workspace.attributes.items()
        if entry.source == CALCULATED_SOURCE and name in workspace.calculated
    }
    if not values:
        return h('<p class="muted">{}</p>', "No calculated attributes.")
    return table(["Name", "Value"], ((k, _value_text(v)) for k, v in sorted(values.items())))


def _memberships(profile: Profile, variations: Mapping[int, str]) -> Html:
    return table(
        ["Audience", "A/B variation", "Member since", "Until"],
        (
            (
                h('<a href="/ui/audiences/{}">{}</a>', m.audience_id, m.name),
                variations.get(m.audience_id, "—"),
                when(m.since_ms),
                when(m.expires_ms) if m.expires_ms else "—",
            )
            for m in sorted(profile.memberships.values(), key=lambda m: m.since_ms)
        ),
        caption="Audience memberships",
    )


def _timeline(mpid: int, timeline: Timeline, event_type: str | None) -> Html:
    options = join(
        h(
            '<option value="{v}"{sel}>{v}</option>',
            v=t,
            sel=Html(" selected") if t == event_type else Html(""),
        )
        for t in timeline.event_types
    )
    base = f"/ui/profiles/{path_part(mpid)}"
    form = h(
        '<form class="inline" method="get" action="{base}">'
        '<label for="event-type">Event type</label>'
        '<select id="event-type" name="event_type"><option value="">all</option>{options}</select>'
        '<button type="submit">Filter</button></form>',
        base=base,
        options=options,
    )
    picture = day_bars(timeline.per_day, "Events per day over the last 30 days")
    rows = table(
        ["Time", "Type", "Name", "Input"],
        ((when(e.at_ms), e.event_type, e.name or "—", e.input) for e in timeline.events),
        caption="Events",
    )
    note = (
        h('<p class="muted">{}</p>', f"Only the newest {timeline.batches_read} batches are read.")
        if timeline.truncated
        else Html("")
    )
    return h(
        '{form}<figure class="picture">{picture}<figcaption>Events per day, last 30 days'
        "</figcaption></figure>{rows}{pager}{note}",
        form=form,
        picture=picture,
        rows=rows,
        pager=_pager(base, timeline, event_type),
        note=note,
    )


def _pager(base: str, timeline: Timeline, event_type: str | None) -> Html:
    if timeline.pages <= 1:
        return h('<p class="muted">{} events.</p>', timeline.total)

    def link(page: int, label: str, rel: str) -> Html:
        if page < 0 or page >= timeline.pages:
            return h('<span class="muted">{}</span>', label)
        href = base + query(event_type=event_type, page=page + 1)
        return h('<a href="{}" rel="{}">{}</a>', href, rel, label)

    return h(
        '<nav class="pager" aria-label="Timeline pages">{prev} <span>Page {n} of {of} · {total}'
        " events</span> {next}</nav>",
        prev=link(timeline.page - 1, "← Newer", "prev"),
        next=link(timeline.page + 1, "Older →", "next"),
        n=timeline.page + 1,
        of=timeline.pages,
        total=timeline.total,
    )
