"""The audience builder in a real browser (headless Debian Chromium, driven by Playwright)
against a real `kindred serve`: the Real-time Audiences seed's example audience built
through the forms alone (tier gold, at least 3 Play events in the last 7 days, excluding
users without GDPR marketing consent), its estimate shown, saved as a draft, activated,
and the saved definition read back through the admin API; an active audience edited
through the shadow preview and promoted; a viewer offered no builder and refused a
forged post."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_ui import ADMIN, browser, send, sign_in_with_the_keyboard, tab_on
from tests.e2e.test_ui_access import PASSWORD, add_user, sign_in

pytestmark = pytest.mark.e2e

__all__ = ["browser"]  # the browser fixture, shared with test_ui.py


def listener(customer_id: str, plays: int, *, consented: bool, tier: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {
        "environment": "development",
        "user_identities": {"customerid": customer_id},
        "user_attributes": {"tier": tier},
        "consent_state": {
            "gdpr": {"marketing": {"consented": consented, "timestamp_unixtime_ms": now}}
        },
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Play", "custom_event_type": "media"},
            }
            for _ in range(plays)
        ],
    }


def admin(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(
        method, f"{server.url}/admin/v1{path}", headers=ADMIN, timeout=10, **kwargs
    )
    assert answer.status_code < 300, answer.text
    return answer.json()


def field(page: Page, name: str) -> Any:
    """A field of the builder by its form name (`c.1.count`)."""
    return page.locator(f"#f-{name.replace('.', '-')}")


def test_the_seeds_example_audience_is_built_through_the_forms(
    server: Server, browser: Browser
) -> None:
    tag = uuid.uuid4().hex[:6]
    for n, (plays, consented, tier) in enumerate(
        [(3, True, "gold"), (4, False, "gold"), (1, True, "gold"), (5, True, "silver")]
    ):
        send(server, listener(f"builder-{tag}-{n}", plays, consented=consented, tier=tier))
    page = next(tab_on(browser, server))
    sign_in_with_the_keyboard(page)
    page.goto("/ui/audiences")
    page.get_by_role("link", name="New audience").click()
    expect(page).to_have_url(re.compile(r"/ui/audiences/new$"))
    name = f"Engaged gold listeners {tag}"
    page.get_by_label("Name", exact=True).fill(name)
    # Criterion 1: the attribute tier equals gold (the new form's first criterion).
    field(page, "c.0.key").fill("tier")
    field(page, "c.0.op").select_option("equals")
    field(page, "c.0.value").fill("gold")
    # Criterion 2: at least 3 Play custom events in the last 7 days.
    page.locator('button[value="add:c:attribute"]').click()
    field(page, "c.1.type").select_option("event")
    expect(field(page, "c.1.event_type")).to_be_visible()
    field(page, "c.1.event_type").select_option("custom_event")
    field(page, "c.1.name").fill("Play")
    field(page, "c.1.within_days").fill("7")
    field(page, "c.1.count_op").select_option("at_least")
    field(page, "c.1.count").fill("3")
    # Criterion 3: exclude those who did not give GDPR marketing consent.
    page.locator('button[value="add:c:exclude"]').click()
    page.locator('button[value="add:c.2:attribute"]').click()
    field(page, "c.2.0.type").select_option("consent")
    field(page, "c.2.0.regulation").select_option("gdpr")
    field(page, "c.2.0.purpose").fill("marketing")
    field(page, "c.2.0.state").select_option("not_consented")
    # The estimate appears, for the whole audience and for each criterion.
    expect(page.locator("#est-total")).to_have_text(re.compile(r"^(~|[0-9][0-9,]*)$"))
    expect(page.locator("#est-f-c-1")).to_have_text(re.compile(r"[~0-9]"))
    # A refusal shows at its field, with the server's words; put right, it goes away.
    field(page, "c.1.count").fill("-1")
    expect(page.locator("#err-f-c-1-count")).to_contain_text("expected an integer")
    field(page, "c.1.count").fill("3")
    expect(page.locator("#err-f-c-1-count")).to_have_text("")

    page.get_by_role("button", name="Save as draft").click()
    expect(page.locator("#saved")).to_have_text("Saved as a draft.")
    audience_id = int(re.search(r"/ui/audiences/(\d+)/edit", page.url)[1])  # type: ignore[index]
    page.get_by_role("button", name="Activate", exact=True).click()
    expect(page.locator("#saved")).to_have_text("Saved and active.")

    saved = admin(server, "GET", f"/audiences/{audience_id}")
    assert saved["name"] == name
    assert saved["status"] == "active"
    assert saved["workspaces"] == [1]
    assert saved["criteria"] == {
        "and": [
            {"attribute": "tier", "op": "equals", "value": "gold"},
            {"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 3},
            {"exclude": {"consent": "gdpr", "purpose": "marketing", "state": "not_consented"}},
        ]
    }
    page.context.close()


def test_an_active_audience_is_edited_through_the_shadow_preview(
    server: Server, browser: Browser
) -> None:
    tag = uuid.uuid4().hex[:6]
    send(server, listener(f"shadow-{tag}-once", 1, consented=True, tier=f"t{tag}"))
    send(server, listener(f"shadow-{tag}-often", 3, consented=True, tier=f"t{tag}"))
    made = admin(
        server,
        "POST",
        "/audiences",
        json={
            "name": f"Players {tag}",
            "workspaces": [1],
            "criteria": {
                "and": [
                    {"attribute": "tier", "op": "equals", "value": f"t{tag}"},
                    {"event": "custom_event", "name": "Play", "at_least": 1},
                ]
            },
        },
    )
    audience_id = int(made["id"])
    admin(server, "POST", f"/audiences/{audience_id}/activate")
    deadline = time.monotonic() + 30
    while admin(server, "GET", f"/audiences/{audience_id}/metrics")["backfill_running"]:
        assert time.monotonic() < deadline, "the activation's backfill did not finish"
        time.sleep(0.2)
    page = next(tab_on(browser, server))
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences/{audience_id}")
    page.get_by_role("link", name="Build").click()  # the audience page's Build tab
    page.get_by_role("link", name="Edit in the builder").click()
    field(page, "c.1.count").fill("3")
    page.get_by_role("button", name="Preview the change (shadow edit)").click()
    expect(page).to_have_url(re.compile(rf"/ui/audiences/{audience_id}/shadow$"))
    # The page reloads itself until the preview is ready: one profile would leave.
    expect(page.locator("#shadow-status")).to_contain_text("Ready", timeout=30_000)
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Would enter0")
    expect(facts).to_contain_text("Would leave1")
    page.get_by_role("button", name="Promote").click()
    expect(page.locator("#saved")).to_contain_text("promoted")
    saved = admin(server, "GET", f"/audiences/{audience_id}")
    assert saved["criteria"]["and"][1] == {"event": "custom_event", "name": "Play", "at_least": 3}
    assert saved["status"] == "active"
    page.context.close()


def test_a_viewer_gets_no_builder_and_a_forged_post_is_refused(
    server: Server, browser: Browser
) -> None:
    tag = uuid.uuid4().hex[:6]
    viewer = f"vera-{tag}"
    add_user(server, viewer, "viewer")
    page = next(tab_on(browser, server))
    sign_in(page, viewer, PASSWORD)
    page.goto("/ui/audiences")
    expect(page.get_by_role("link", name="New audience")).to_have_count(0)
    assert page.goto("/ui/audiences/new").status == 403  # type: ignore[union-attr]
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    forged = page.request.post(
        "/ui/audiences/new",
        form={
            "csrf": csrf or "",
            "do": "save",
            "name": f"Forged {tag}",
            "workspaces": "1",
            "c.type": "attribute",
            "c.key": "tier",
            "c.op": "exists",
        },
    )
    assert forged.status == 403
    assert "Nothing was changed" in forged.text()
    estimate = page.request.post("/ui/api/audiences/estimate", form={"csrf": csrf or ""})
    assert estimate.status == 403
    names = [a["name"] for a in admin(server, "GET", "/audiences")]
    assert f"Forged {tag}" not in names
    page.context.close()


def signed_in(server: Server, name: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """A client signed in as `name` and its session's CSRF token."""
    client = httpx.Client(base_url=server.url, timeout=10)
    client.post("/ui/login", data={"name": name, "password": password})
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/profiles").text)
    assert found is not None
    return client, found[1]


def test_access_decides_what_the_builder_edits_and_nests(server: Server) -> None:
    tag = uuid.uuid4().hex[:6]
    ann, bob = f"ann-{tag}", f"bob-{tag}"
    keys = {ann: add_user(server, ann, "editor"), bob: add_user(server, bob, "editor")}

    def make(name: str, access: str) -> int:
        body = {
            "name": name,
            "workspaces": [1],
            "access": access,
            "criteria": {"attribute": "tier", "op": "exists"},
        }
        made = httpx.post(
            f"{server.url}/admin/v1/audiences", json=body, headers=keys[ann], timeout=10
        )
        assert made.status_code == 201, made.text
        return int(made.json()["id"])

    usable, view_only = make(f"Ann usable {tag}", "usable"), make(f"Ann view {tag}", "view")
    client, csrf = signed_in(server, bob)
    try:
        # Another editor's audience: no edit page, no action on it.
        refused = client.get(f"/ui/audiences/{usable}/edit")
        assert refused.status_code == 403
        assert f"belongs to {ann}" in refused.text
        assert client.post(f"/ui/audiences/{usable}/delete", data={"csrf": csrf}).status_code == 403
        # Nesting offers the usable audience, not the view-only one.
        form = client.get("/ui/audiences/new").text
        assert f'<option value="{usable}">Ann usable {tag} ({usable})</option>' in form
        assert f"Ann view {tag}" not in form
        # A forged form nesting the view-only one is refused at its field, in words.
        fields = {
            "csrf": csrf,
            "do": "save",
            "name": f"Bob nests {tag}",
            "workspaces": "1",
            "lookback_days": "90",
            "access": "usable",
            "c.type": "audience",
            "c.audience": str(view_only),
            "c.member": "true",
        }
        nested = client.post("/ui/audiences/new", data=fields)
        assert nested.status_code == 400
        assert re.search(
            r'id="err-f-c-audience"[^>]*role="alert">[^<]*may not be nested by others', nested.text
        )
        # Nesting the usable one is saved; ann may then not delete hers: the page says why.
        fields["c.audience"] = str(usable)
        saved = client.post("/ui/audiences/new", data=fields)
        assert saved.status_code == 303, saved.text
    finally:
        client.close()
    client, csrf = signed_in(server, ann)
    try:
        kept = client.post(f"/ui/audiences/{usable}/delete", data={"csrf": csrf})
        assert kept.status_code == 400
        assert "cannot be deleted while another audience nests it" in kept.text
    finally:
        client.close()


def test_suggestions_offer_what_the_workspace_has_seen(server: Server) -> None:
    tag = uuid.uuid4().hex[:6]
    send(server, listener(f"suggest-{tag}", 1, consented=True, tier="gold"))
    client, _ = signed_in(server, "tester", "tester-password")
    try:
        deadline = time.monotonic() + 30  # the sample is read again at most every 10 s
        while True:
            answer = client.get("/ui/api/audiences/suggestions", params={"workspaces": "1"})
            assert answer.status_code == 200
            seen = answer.json()
            if "Play" in seen["event_names"]:
                break
            assert time.monotonic() < deadline, seen
            time.sleep(1)
        assert "tier" in seen["attribute_keys"]
        assert "customer_id" in seen["identity_types"]
        assert seen["workspaces"] == [1]
        assert seen["sampled_profiles"] >= 1
    finally:
        client.close()
