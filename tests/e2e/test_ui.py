"""The web UI in a real browser (headless Debian Chromium, driven by Playwright) against a
real `kindred serve`: signing in with the keyboard alone, a profile made by batches sent
over HTTP, the Live Stream as batches arrive, an audience's page, a faulted audience
connection resumed; no UI route answers without a session, no form post without the
session's CSRF token."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from kindred.api.app import create_app
from kindred.api.ui.routes import OPEN_PATHS
from kindred.bootstrap import build
from kindred.config import load_settings
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONFIG,
    Server,
    forwarding_config,
    make_server,
    serving,
)
from tests.receiver import Answer, Receiver, receiving

pytestmark = pytest.mark.e2e

USER, PASSWORD = "tester", "tester-password"  # the UI user of kindred-e2e.toml
ADMIN = {"authorization": "Bearer e2e-admin-token"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run scripts/setup-browser.sh")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    yield from tab_on(browser, server)


def tab_on(browser: Browser, server: Server) -> Iterator[Page]:
    """A tab of a fresh browser context (no cookies) on the server."""
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def sign_in_with_the_keyboard(page: Page) -> None:
    page.goto("/ui/profiles")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fprofiles$"))
    # The name field has the focus; Tab moves to the password; Enter submits.
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/profiles$"))


def send(server: Server, batch: dict[str, Any]) -> None:
    answer = httpx.post(
        f"{server.url}/v2/events", json=batch, auth=("server-key", "server-secret"), timeout=10
    )
    assert answer.status_code == 202, answer.text


def batch(customer_id: str, *events: tuple[str, str], **attributes: object) -> dict[str, Any]:
    return {
        "environment": "development",
        "ip": "198.51.100.7",
        "user_identities": {"customerid": customer_id, "email": f"{customer_id}@example.com"},
        "user_attributes": attributes,
        "events": [
            {"event_type": t, "data": {"event_name": n}}
            if t == "custom_event"
            else {"event_type": t, "data": {"screen_name": n}}
            for t, n in events
        ],
    }


def make_audience(server: Server, name: str, tag: str) -> int:
    definition = {
        "name": name,
        "workspaces": [1],
        "tags": [tag, "ui"],
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    made = httpx.post(f"{server.url}/admin/v1/audiences", json=definition, headers=ADMIN)
    assert made.status_code == 201, made.text
    audience_id = int(made.json()["id"])
    activated = httpx.post(f"{server.url}/admin/v1/audiences/{audience_id}/activate", headers=ADMIN)
    assert activated.status_code == 200, activated.text
    return audience_id


# --- access ---------------------------------------------------------------------------


def ui_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """Every (method, path) of the UI that needs a session, read from the app itself."""
    container = build(load_settings(CONFIG, data_dir=str(tmp_path), env={}))
    app = create_app(container, manage_lifecycle=False)
    routes = {
        (method, r.path)
        for r in app.fallback_routes()
        if r.path.startswith("/ui") and r.path not in OPEN_PATHS
        for method in r.methods - {"HEAD"}
    }
    container.store.close()
    return sorted(routes)


def test_no_ui_route_answers_without_a_session(server: Server, tmp_path: Path) -> None:
    routes = ui_routes(tmp_path)
    assert {
        ("GET", "/ui/profiles/{mpid}"),
        ("GET", "/ui/api/live"),
        ("GET", "/ui/audiences/{audience_id}"),
        ("POST", "/ui/audiences/{audience_id}/connections/{name}/resume"),
        ("POST", "/ui/logout"),
    } <= set(routes)
    forged = {"kindred_ui": "dGVzdGVy.99999999999999.c2lnbmF0dXJl"}
    for cookies in ({}, forged):
        with httpx.Client(base_url=server.url, cookies=cookies) as client:
            for method, path in routes:
                url = path.replace("{mpid}", "1").replace("{audience_id}", "1")
                url = url.replace("{name}", "hook")
                answer = client.request(method, url)
                if url.startswith("/ui/api/"):
                    assert answer.status_code == 401, url
                    assert answer.headers["content-type"] == "application/json"
                else:
                    assert answer.status_code == 302, url
                    assert answer.headers["location"].startswith("/ui/login?next="), url


def test_a_wrong_password_is_refused_and_sign_out_ends_the_session(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        wrong = client.post("/ui/login", data={"name": USER, "password": "nope"})
        assert wrong.status_code == 401
        assert "Wrong name or password" in wrong.text
        assert "kindred_ui" not in client.cookies
        right = client.post(
            "/ui/login", data={"name": USER, "password": PASSWORD, "next": "https://evil.example/"}
        )
        assert right.status_code == 303
        assert right.headers["location"] == "/ui/profiles"
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/ui" in cookie
        assert client.get("/ui/profiles").status_code == 200
        assert client.get("/ui/api/live").status_code == 200
        signed_out = client.post("/ui/logout", data={"csrf": csrf_token(client)})
        assert signed_out.status_code == 303
        assert client.get("/ui/profiles").status_code == 302


def csrf_token(client: httpx.Client) -> str:
    """The session's CSRF token, as the sign-out form of any page carries it."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/profiles").text)
    assert found is not None
    return found[1]


def test_a_form_post_without_the_sessions_csrf_token_is_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/ui/login", data={"name": USER, "password": PASSWORD})
        token = csrf_token(client)
        resume = "/ui/audiences/1/connections/hook/resume"
        for form in ({}, {"csrf": ""}, {"csrf": token[:-2] + "xx"}):
            refused = client.post(resume, data=form)
            assert refused.status_code == 403, form
            assert "Nothing was changed" in refused.text
            assert client.post("/ui/logout", data=form).status_code == 403
        assert client.get("/ui/profiles").status_code == 200  # still signed in
        # With the token the post goes through to the handler: no such connection here.
        assert client.post(resume, data={"csrf": token}).status_code == 404
        # Another session (another sign-in) has another token.
        with httpx.Client(base_url=server.url, timeout=10) as other:
            other.post("/ui/login", data={"name": USER, "password": PASSWORD})
            assert other.post(resume, data={"csrf": token}).status_code == 403


def test_a_session_holds_across_worker_processes(tmp_path: Path) -> None:
    config = tmp_path / "workers.toml"
    config.write_text(CONFIG.read_text().replace("[server]\n", "[server]\nworkers = 2\n", 1))
    server = make_server(tmp_path)
    server.config = config
    server.start()
    try:
        signed_in = httpx.post(
            f"{server.url}/ui/login", data={"name": USER, "password": PASSWORD}, timeout=10
        )
        assert signed_in.status_code == 303
        cookies = dict(signed_in.cookies)
        # A new connection each time, so that both processes answer some of them.
        answers = [
            httpx.get(f"{server.url}/ui/audiences", cookies=cookies, timeout=10).status_code
            for _ in range(30)
        ]
        assert answers == [200] * 30
    finally:
        server.stop()


def test_a_profile_past_its_lifetime_says_it_has_expired(tmp_path: Path) -> None:
    clock = tmp_path / "clock-offset-ms"
    server = make_server(tmp_path, clock_file=clock)
    server.start()
    try:
        send(server, batch("old-user", ("custom_event", "Play")))
        with httpx.Client(base_url=server.url, timeout=10) as client:
            client.post("/ui/login", data={"name": USER, "password": PASSWORD})
            found = client.get("/ui/profiles", params={"type": "customer_id", "q": "old-user"})
            assert found.status_code == 302
            profile_page = found.headers["location"]
            assert "has expired" not in client.get(profile_page).text
            clock.write_text(str(91 * 86_400_000))  # past the default 90-day lifetime
            client.cookies.clear()  # the session ended long ago, too
            client.post("/ui/login", data={"name": USER, "password": PASSWORD})
            assert "This profile has expired" in client.get(profile_page).text
    finally:
        server.stop()


# --- in the browser -------------------------------------------------------------------


def test_a_profile_made_over_http_shows_attributes_memberships_and_timeline(
    server: Server, page: Page
) -> None:
    customer = f"ui-{uuid.uuid4().hex[:8]}"
    audience_id = make_audience(server, f"Gold {customer}", "gold")
    time.sleep(2.5)  # every process re-reads the active audiences within 2 s
    send(server, batch(customer, ("custom_event", "Play"), ("screen_view", "Home"), tier="gold"))
    send(server, batch(customer, ("custom_event", "Share"), city="Lisbon <b>"))

    sign_in_with_the_keyboard(page)
    page.get_by_label("Find by").select_option("customer_id")
    page.get_by_label("Value").fill(customer)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("h1")).to_have_text(re.compile(r"^Profile -?\d+$"))

    attributes = page.get_by_role("table", name="User attributes")
    expect(attributes.get_by_role("row", name=re.compile(r"^tier gold server"))).to_be_visible()
    # What the user sent is shown as text, never as markup.
    expect(attributes.get_by_role("cell", name="Lisbon <b>")).to_be_visible()
    expect(page.get_by_role("table", name="User identities")).to_contain_text(customer)
    expect(page.locator("dl.facts")).to_contain_text("198.51.100.7")

    memberships = page.get_by_role("table", name="Audience memberships")
    expect(memberships.get_by_role("link", name=f"Gold {customer}")).to_have_attribute(
        "href", f"/ui/audiences/{audience_id}"
    )

    events = page.get_by_role("table", name="Events")
    expect(events.get_by_role("row")).to_have_count(4)  # a header and three events
    expect(page.get_by_role("img", name="Events per day over the last 30 days")).to_be_visible()
    page.get_by_label("Event type").select_option("screen_view")
    page.get_by_role("button", name="Filter").click()
    expect(events.get_by_role("row")).to_have_count(2)
    expect(events).to_contain_text("Home")


@pytest.mark.usefixtures("server")
def test_an_unknown_profile_says_so(page: Page) -> None:
    sign_in_with_the_keyboard(page)
    page.get_by_label("Value").fill("nobody-at-all")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_contain_text("no profile with customer_id")
    page.goto("/ui/profiles/12345")
    expect(page.get_by_role("status")).to_contain_text("No profile with MPID 12345")


def test_live_stream_shows_new_batches_as_they_arrive(server: Server, page: Page) -> None:
    sign_in_with_the_keyboard(page)
    page.goto("/ui/live")
    marker = f"Live-{uuid.uuid4().hex[:8]}"
    expect(page.locator("#live-list")).not_to_contain_text(marker)
    send(server, batch(f"live-{marker}", ("custom_event", marker)))
    web = httpx.post(f"{server.url}/v3/JS/web-key/events", content=b'{"events": 7}', timeout=10)
    assert web.status_code == 202  # quarantined, never refused
    item = page.locator("li.item.batch", has_text=marker)
    expect(item).to_be_visible(timeout=15_000)
    quarantined = page.locator("li.item.quarantined").first
    expect(quarantined.locator(".reason")).to_contain_text("events")
    # Each batch opens to its JSON.
    item.get_by_text("Batch JSON").click()
    expect(item.locator("pre")).to_contain_text(marker)
    # The filter narrows by input.
    page.get_by_label("Input").select_option("web")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("li.item.batch", has_text=marker)).to_have_count(0)
    page.go_back()
    page.locator("li.item.batch", has_text=marker).get_by_role("link").click()
    expect(page.get_by_role("table", name="Events")).to_contain_text(marker)


def test_an_audience_page_shows_its_definition_history_and_size(server: Server, page: Page) -> None:
    tag = uuid.uuid4().hex[:8]
    audience_id = make_audience(server, f"Page {tag}", tag)
    time.sleep(2.5)
    send(server, batch(f"aud-{tag}", ("custom_event", "Play"), tier="gold"))
    sign_in_with_the_keyboard(page)
    page.goto("/ui/audiences")
    page.get_by_label(tag, exact=True).check()
    page.get_by_label("ui", exact=True).check()
    page.get_by_role("button", name="Filter").click()
    listing = page.get_by_role("table", name="Audiences")
    expect(listing.get_by_role("row")).to_have_count(2)
    row = listing.get_by_role("row", name=re.compile(f"Page {tag}"))
    expect(row).to_contain_text("active")
    row.get_by_role("link", name=f"Page {tag}").click()
    expect(page).to_have_url(re.compile(f"/ui/audiences/{audience_id}$"))
    expect(page.get_by_role("img", name="Audience size over time")).to_be_visible()
    tabs = page.get_by_role("navigation", name="Audience")
    tabs.get_by_role("link", name="Build").click()
    expect(page.locator(".criteria")).to_have_text('attribute tier equals "gold"')
    tabs.get_by_role("link", name="History").click()
    history = page.get_by_role("table", name="Membership changes")
    expect(history).to_contain_text("entered")
    tabs.get_by_role("link", name="Connect").click()
    expect(page.locator("#connections-none")).to_have_text(
        "No connections are configured for this audience."
    )


def test_pages_work_with_the_keyboard(server: Server, page: Page) -> None:
    customer = f"kb-{uuid.uuid4().hex[:8]}"
    send(server, batch(customer, ("custom_event", "Play")))
    sign_in_with_the_keyboard(page)
    # The first stop is the skip link; it moves the focus past the navigation.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Find by")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Value")).to_be_focused()
    page.keyboard.type(customer)
    page.keyboard.press("Enter")
    expect(page.get_by_role("table", name="User identities")).to_contain_text(customer)


# --- a faulted audience connection, resumed -----------------------------------------------


@pytest.fixture
def crm() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def forwarding_server(tmp_path: Path, crm: Receiver) -> Iterator[Server]:
    """A server whose connections fault after two failures in a row, a webhook output
    `crm` to the local receiver."""
    yield from serving(tmp_path, CONFIG.read_text() + forwarding_config("crm", crm.url))


@pytest.fixture
def forwarding_page(browser: Browser, forwarding_server: Server) -> Iterator[Page]:
    yield from tab_on(browser, forwarding_server)


def connection_status(server: Server, name: str) -> dict[str, Any]:
    listed = httpx.get(f"{server.url}/admin/v1/connections", headers=ADMIN, timeout=5).json()
    found: dict[str, Any] = next(c for c in listed["status"] if c["name"] == name)
    return found


def wait_for_status(server: Server, name: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    status = connection_status(server, name)
    while status["status"] != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        status = connection_status(server, name)
    assert status["status"] == wanted, status
    return status


def test_a_faulted_audience_connection_is_seen_and_resumed_in_the_browser(
    forwarding_server: Server, crm: Receiver, forwarding_page: Page
) -> None:
    server, page = forwarding_server, forwarding_page
    crm.default = Answer(500)
    tag = uuid.uuid4().hex[:8]
    audience_id = make_audience(server, f"Gold {tag}", tag)
    connection = {
        "name": "gold-to-crm",
        "audience_id": audience_id,
        "output": "crm",
        "identity_types": ["email"],
    }
    made = httpx.post(
        f"{server.url}/admin/v1/connections/audiences", json=connection, headers=ADMIN, timeout=5
    )
    assert made.status_code == 201, made.text
    time.sleep(2.5)  # every process re-reads audiences and connections within 2 s
    send(server, batch(f"crm-{tag}", ("custom_event", "Play"), tier="gold"))
    faulted = wait_for_status(server, "gold-to-crm", "faulted")
    assert faulted["pending"] == 1

    sign_in_with_the_keyboard(page)
    page.goto("/ui/audiences")
    row = page.get_by_role("table", name="Audiences").get_by_role("row", name=f"Gold {tag}")
    expect(row).to_contain_text("crm faulted")
    row.get_by_role("link", name=f"Gold {tag}").click()
    page.get_by_role("navigation", name="Audience").get_by_role("link", name="Connect").click()
    connections = page.get_by_role("table", name="Connections")
    line = connections.get_by_role("row", name=re.compile("gold-to-crm"))
    cells = line.get_by_role("cell")
    expect(cells).to_have_text(
        [
            "gold-to-crm",
            "crm",
            "full audience",
            "faulted",
            re.compile("^done: 0 members"),  # connected while the audience was empty
            "1",
            "0",
            re.compile("500"),
            re.compile("UTC$"),
            "ResumeDisconnect",
        ]
    )

    crm.default = Answer(200)
    line.get_by_role("button", name="Resume gold-to-crm").click()
    expect(page).to_have_url(
        re.compile(f"/ui/audiences/{audience_id}/connect\\?resumed=gold-to-crm")
    )
    expect(page.get_by_role("status")).to_have_text(
        "Connection gold-to-crm resumed: its pending messages are sent again."
    )
    expect(cells.nth(3)).not_to_have_text("faulted")
    expect(line.get_by_role("button", name="Resume gold-to-crm")).to_have_count(0)

    (message,) = crm.wait_for(1, timeout_s=15)
    assert message["action"] == "add"
    assert message["audience_id"] == audience_id
    assert message["identity"] == f"crm-{tag}@example.com"
    wait_for_status(server, "gold-to-crm", "sending")
    page.reload()
    expect(cells.nth(3)).to_have_text("sending")
    expect(cells.nth(5)).to_have_text("0")
    expect(cells.nth(6)).to_have_text("1")
    # The sign-out form carries the token too: the session ends.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"/ui/audiences/{audience_id}")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
