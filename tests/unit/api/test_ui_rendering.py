"""The web UI's markup: every value from a batch, a profile or a definition is escaped."""

from __future__ import annotations

import re

import msgspec

from kindred.api.ui.audiences import (
    connections_by_audience,
    connections_html,
    criteria_html,
    size_points,
)
from kindred.api.ui.charts import day_bars, size_steps
from kindred.api.ui.layout import page
from kindred.api.ui.live import live_items
from kindred.api.ui.profiles import profile_view, search_form
from kindred.api.ui.render import Markup, fragment, when
from kindred.api.ui.session import Visitor
from kindred.api.ui.times import ms_text, query
from kindred.audiences.definition import MembershipChange
from kindred.domain.forwarding import AudienceConnection
from kindred.domain.profile import (
    AttributeEntry,
    IdentityEntry,
    Membership,
    Profile,
    WorkspaceProfile,
)
from kindred.domain.users import Role
from kindred.services.forwarding.admin import ConnectionView, SyncView
from kindred.services.profiles.activity import LiveItem, Timeline

EVIL = '<script>alert("x")</script>'
NOW = 1_700_000_000_000


def test_values_are_escaped_and_markup_is_kept() -> None:
    assert fragment("macros.html", "notice", EVIL) == (
        '<p class="notice" role="status">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>'
    )
    assert fragment("macros.html", "notice", Markup("<b>ok</b>")).count("<b>ok</b>") == 1
    shown = page("message.html", EVIL, user=None, values={"message": "'", "alert": True})
    assert "<script>" not in shown
    assert "<title>&lt;script&gt;" in shown
    assert "&#39;" in shown


def test_an_attribute_value_cannot_leave_its_quotes() -> None:
    markup = page("login.html", "Sign in", user=None, values={"error": "", "target": '" x="'})
    assert '<input type="hidden" name="next" value="&#34; x=&#34;">' in markup


def test_query_strings_are_encoded() -> None:
    assert query(tag=["a b", "&x"], page=2, none=None) == "?tag=a+b&tag=%26x&page=2"
    assert query() == ""


def _profile() -> Profile:
    workspace = WorkspaceProfile(
        first_seen_ms=NOW,
        last_seen_ms=NOW,
        attributes={
            EVIL: AttributeEntry(value=EVIL, priority=1, source="server", ts_ms=NOW),
            "gone": AttributeEntry(priority=1, source="server", ts_ms=NOW, deleted=True),
        },
    )
    return Profile(
        mpid=42,
        scope="a1",
        created_ms=NOW,
        last_stored_ms=NOW,
        user_identities={"email": IdentityEntry(value=EVIL, first_seen_ms=NOW, last_seen_ms=NOW)},
        workspaces={1: workspace},
        memberships={7: Membership(audience_id=7, name=EVIL, since_ms=NOW)},
    )


def _timeline() -> Timeline:
    return Timeline(
        events=[],
        total=0,
        page=0,
        pages=1,
        event_types=[EVIL],
        per_day=[(NOW, 0)],
        batches_read=0,
        truncated=False,
    )


def _profile_page(
    profile: Profile,
    *,
    expired: bool,
    names: dict[int, str],
    variations: dict[int, str] | None = None,
) -> str:
    view = profile_view(
        profile,
        expired=expired,
        workspace_names=names,
        timeline=_timeline(),
        event_type=None,
        variations=variations,
    )
    values = {"search": search_form("mpid", EVIL), "view": view}
    return str(page("profile.html", "Profile", user=None, values=values))


def test_a_profile_page_escapes_what_users_sent() -> None:
    markup = _profile_page(_profile(), expired=False, names={1: EVIL})
    assert "<script>" not in markup
    assert markup.count("&lt;script&gt;") >= 5
    assert '<a href="/ui/audiences/7">' in markup
    assert "removed" in markup
    assert "expired" not in markup


def test_an_expired_profile_says_so() -> None:
    markup = _profile_page(_profile(), expired=True, names={})
    assert "This profile has expired" in markup


def test_live_items_escape_the_batch_and_link_the_user() -> None:
    item = LiveItem(
        kind="quarantined",
        id=3,
        input=EVIL,
        received_ms=NOW,
        environment=None,
        mpid=-5,
        status="quarantined",
        reason=EVIL,
        event_types=[EVIL],
        body_text=EVIL,
    )
    markup = live_items([item])
    assert "<script>" not in markup
    assert '<a class="user" href="/ui/profiles/-5">' in markup
    assert '<p class="reason">&lt;script&gt;' in markup
    assert "<details><summary>Batch JSON</summary><pre>&lt;script&gt;" in markup


def test_criteria_read_as_sentences_and_are_escaped() -> None:
    markup = criteria_html(
        {
            "and": [
                {"attribute": "tier", "op": "equals", "value": EVIL},
                {"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 3},
                {"exclude": {"consent": "gdpr", "purpose": "marketing", "state": "not_consented"}},
            ]
        }
    )
    text = re.sub(r"<[^>]+>", " ", markup)
    assert "All of" in text
    assert "attribute tier equals" in text
    assert "at least 3 custom_event &#34;Play&#34; event(s) within the last 7 days" in text
    assert "None of" in text
    assert "GDPR consent for marketing: not consented" in text
    assert "<script>" not in markup


def test_size_over_time_follows_the_membership_log() -> None:
    def change(mpid: int, entered: bool, at: int) -> MembershipChange:
        return MembershipChange(audience_id=1, mpid=mpid, entered=entered, at_ms=at, reason="x")

    log = [change(1, True, 10), change(2, True, 10), change(1, False, 20), change(3, True, 30)]
    assert size_points(log) == [(10, 2), (20, 1), (30, 2)]
    chart = size_steps(size_points(log), 40, "size")
    assert chart.startswith('<svg class="chart"')
    assert 'role="img"' in chart
    assert "<polyline" in chart
    assert "No membership changes" in size_steps([], 40, "size")


def test_day_bars_draw_one_bar_per_day() -> None:
    chart = day_bars([(NOW, 1), (NOW + 86_400_000, 3)], "events")
    assert chart.count('<rect class="bar"') == 2
    assert "<title>events</title>" in chart


def _view(
    name: str, status: str, *, kind: str = "audience", error: str | None = None
) -> ConnectionView:
    return ConnectionView(
        name=name,
        kind=kind,
        output=f"{name}-out",
        status=status,
        pending=3,
        delivered=5,
        failures=2 if status == "faulted" else 0,
        last_error=error,
        faulted_ms=NOW if status == "faulted" else None,
        retry_at_ms=0,
    )


def test_connections_are_grouped_by_their_audience() -> None:
    declared = [
        AudienceConnection(name=n, audience_id=a, output="o", identity_types=["email"])
        for n, a in (("a", 1), ("b", 2), ("c", 1))
    ]
    views = [_view("a", "sending"), _view("b", "faulted"), _view("c", "retrying")]
    views.append(_view("ev", "sending", kind="events"))
    grouped = connections_by_audience(declared, views)
    assert {k: [v.name for v in vs] for k, vs in grouped.items()} == {1: ["a", "c"], 2: ["b"]}


def test_a_faulted_connection_shows_its_error_and_a_resume_form_with_the_token() -> None:
    visitor = Visitor(name="ann", csrf="tok&en", role=Role.EDITOR)
    markup = connections_html(
        7, [_view("ok", "sending"), _view(EVIL, "faulted", error=EVIL)], visitor
    )
    assert "<script>" not in markup
    assert '<span class="failure">&lt;script&gt;' in markup
    assert markup.count("<form") == 1  # only the faulted connection can be resumed
    action = "/ui/audiences/7/connections/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E/resume"
    assert f'<form class="resume" method="post" action="{action}">' in markup
    assert '<input type="hidden" name="csrf" value="tok&amp;en">' in markup
    assert '<span class="badge faulted">faulted</span>' in markup
    assert '<time datetime="2023-11-14T22:13:20.000+00:00">' in markup
    empty = connections_html(7, [], visitor)
    assert 'id="connections-none"' in empty
    assert "<table" not in empty


def test_a_viewer_is_offered_no_resume_button() -> None:
    faulted = [_view("hook", "faulted", error="boom")]
    for role, forms in ((Role.VIEWER, 0), (Role.EDITOR, 1), (Role.ADMIN, 1)):
        markup = connections_html(7, faulted, Visitor(name="ann", csrf="tok", role=role))
        assert markup.count("<form") == forms, role
        assert '<span class="badge faulted">faulted</span>' in markup


def test_an_audience_connections_initial_sync_shows_its_progress() -> None:
    visitor = Visitor(name="ann", csrf="tok")

    def synced(name: str, status: str, done: int, total: int) -> ConnectionView:
        sync = SyncView(
            status=status,
            members_done=done,
            members_total=total,
            started_ms=NOW,
            finished_ms=NOW + 1000 if status == "done" else None,
        )
        return msgspec.structs.replace(_view(name, "sending"), initial_sync=sync)

    markup = connections_html(
        7,
        [synced("a", "running", 300, 1000), synced("b", "done", 12, 10), _view("c", "sending")],
        visitor,
    )
    assert '<th scope="col">Initial sync</th>' in markup
    assert '<progress value="300" max="1000"></progress>' in markup
    assert "300 of 1000 members" in markup
    assert "done: 12 members" in markup
    assert '<time datetime="2023-11-14T22:13:21.000+00:00">' in markup


def test_any_stored_instant_renders_and_those_outside_the_range_as_numbers() -> None:
    assert ms_text(0) == "1970-01-01 00:00:00 UTC"
    assert ms_text(253_402_300_799_999) == "9999-12-31 23:59:59 UTC"
    assert when(NOW).startswith('<time datetime="2023-11-14T22:13:20.000+00:00">')
    for odd in (253_402_300_800_000, -1, 2**63 - 1, -(2**63), 10**30):
        assert ms_text(odd) == str(odd)
        assert when(odd) == str(odd)
    assert "253402300800000" in day_bars([(253_402_300_800_000, 1)], "events")
    assert size_steps([(-(2**63), 1)], NOW, "size")
