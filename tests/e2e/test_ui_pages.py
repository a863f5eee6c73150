"""The Calculated attributes and Forwarding pages in a real browser (headless Debian
Chromium, driven by Playwright) against a real `kindred serve`: a calculated attribute made
through the form, activated, its progress seen to reach done and its value on a profile
page; a webhook output and an event connection made through the forms to a real receiver,
which receives a batch; a refused message's dead letter listed and replayed; a viewer
changes nothing (no forms, and forged posts refused)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import CONFIG, Server, serving
from tests.e2e.test_ui import batch, browser, send, sign_in_with_the_keyboard, tab_on
from tests.e2e.test_ui_access import PASSWORD, add_user, sign_in
from tests.receiver import Answer, Receiver, receiving

pytestmark = pytest.mark.e2e

__all__ = ["browser"]  # the browser fixture, shared with test_ui.py

ADMIN = {"authorization": "Bearer e2e-admin-token"}


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    yield from tab_on(browser, server)


# --- calculated attributes -------------------------------------------------------------


def test_a_calculated_attribute_made_in_the_form_is_activated_and_shown_on_a_profile(
    server: Server, page: Page
) -> None:
    tag = uuid.uuid4().hex[:8]
    customer, name = f"calc-{tag}", f"plays_{tag}"
    # Batches before the attribute exists: the activation computes them from the log.
    send(server, batch(customer, ("custom_event", "Play"), ("custom_event", "Play")))
    send(server, batch(customer, ("custom_event", "Skip"), ("custom_event", "play")))

    sign_in_with_the_keyboard(page)
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Calculated attributes"
    ).click()
    page.get_by_role("link", name="New calculated attribute").click()
    page.get_by_label("Name (the attribute key)").fill(name)
    page.get_by_label("Workspace").select_option(label="E2E Workspace (1)")
    page.get_by_label("Calculation type").select_option("count")
    page.get_by_label("Event type").select_option("custom_event")
    page.get_by_label("Event name").fill("Play")
    page.get_by_label("Within the last").check()
    # More condition rows come from the server, the values given so far kept.
    page.get_by_role("button", name="Add condition rows").click()
    expect(page.get_by_label("Event name")).to_have_value("Play")
    expect(page.get_by_label(re.compile(r"^Condition \d attribute$"))).to_have_count(2)
    page.get_by_label("Condition 2 attribute").fill("skipped")
    page.get_by_label("Condition 2 operator").select_option("not_exists")
    # A refusal is shown at its field, with the server's message.
    page.get_by_label("Days or weeks").fill("0")
    page.get_by_role("button", name="Create draft").click()
    count_field = page.get_by_label("Days or weeks")
    expect(count_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#window_count-error")).to_have_text(
        "expected a whole number from 1 to 3650"
    )
    count_field.fill("7")
    count_field.press("Enter")  # the form's first button: create
    expect(page).to_have_url(re.compile(r"/ui/calculated/\d+\?done=saved$"))
    expect(page.get_by_role("status")).to_have_text("The draft is saved.")
    expect(page.locator("dl.facts")).to_contain_text(
        'count, custom_event "Play" where skipped not exists, in the last 7 days'
    )

    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("status")).to_contain_text("Activated")
    # The page refreshes itself until the computation is done.
    expect(page.locator("#activation-progress")).to_contain_text("done", timeout=30_000)

    expect(page.get_by_role("button", name="Activate")).to_have_count(0)  # nothing to do
    attribute_page = page.url.split("?")[0]

    page.goto("/ui/calculated")
    row = page.get_by_role("table", name="Calculated attributes").get_by_role(
        "row", name=re.compile(name)
    )
    expect(row.get_by_role("cell")).to_have_text(
        [name, "E2E Workspace", re.compile("^count, custom_event"), "active", re.compile("^done")]
    )

    # Editing changes the draft only: the active definition computes on.
    page.goto(attribute_page)
    page.get_by_role("link", name="Edit draft").click()
    expect(page).to_have_url(attribute_page + "/edit")
    page.get_by_label("Event name").fill("Skip")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_have_text("The draft is saved.")
    expect(page.locator("dl.facts")).to_contain_text('count, custom_event "Skip" where skipped')
    expect(page.get_by_role("button", name="Activate")).to_be_visible()
    page.goto("/ui/calculated")
    expect(row).to_contain_text("draft changed")

    page.goto("/ui/profiles")
    page.get_by_label("Find by").select_option("customer_id")
    page.get_by_label("Value").fill(customer)
    page.get_by_role("button", name="Search").click()
    attributes = page.get_by_role("table", name="User attributes")
    expect(attributes.get_by_role("row", name=re.compile(f"^{name} 3 calculated"))).to_be_visible()


# --- forwarding ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


@pytest.fixture(scope="module")
def forwarding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Delivery lanes that look for rows often and retry quickly; no outputs declared."""
    config = (
        CONFIG.read_text()
        + """
[forwarding]
idle_s = 0.05

[forwarding.retry]
base_s = 0.1
max_delay_s = 0.2
max_attempts = 2
"""
    )
    yield from serving(tmp_path_factory.mktemp("forwarding"), config)


@pytest.fixture
def forwarding_page(browser: Browser, forwarding_server: Server) -> Iterator[Page]:
    yield from tab_on(browser, forwarding_server)


def make_output_and_connection(page: Page, receiver: Receiver, tag: str) -> str:
    """A webhook output and an event connection of the server input, through the forms;
    the connection's name."""
    page.goto("/ui/outputs")
    page.get_by_role("link", name="New Webhook output").click()
    page.get_by_label("Name", exact=True).fill(f"hook-{tag}")
    page.get_by_label("URL", exact=True).fill(receiver.url)
    page.get_by_label("Authorization header").fill(f"X-Token: secret-{tag}")
    page.get_by_label("Batch size").fill("1")
    page.get_by_role("button", name="Create output").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    # The secret is never shown again, not even in the form.
    expect(page.get_by_label("Authorization header")).to_have_value("********")
    expect(page.locator("body")).not_to_contain_text(f"secret-{tag}")

    page.get_by_role("navigation", name="Forwarding").get_by_role(
        "link", name="Connections"
    ).click()
    page.get_by_role("link", name="New event connection").click()
    page.get_by_label("Name", exact=True).fill(f"events-{tag}")
    page.get_by_label("Input", exact=True).select_option("server")
    page.get_by_label("Output", exact=True).select_option(f"hook-{tag}")
    page.get_by_label("Event names allowed").fill(f"Order-{tag}")
    expect(page.get_by_label("Enabled")).to_be_checked()
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    return f"events-{tag}"


def test_an_output_and_connection_made_in_the_forms_forward_a_batch(
    forwarding_server: Server, receiver: Receiver, forwarding_page: Page
) -> None:
    server, page = forwarding_server, forwarding_page
    tag = uuid.uuid4().hex[:8]
    sign_in_with_the_keyboard(page)
    connection = make_output_and_connection(page, receiver, tag)
    page.goto("/ui/outputs")
    outputs = page.get_by_role("table", name="Outputs")
    expect(outputs.get_by_role("row", name=re.compile(f"hook-{tag}"))).to_contain_text("********")

    time.sleep(2.5)  # every process re-reads the connections within 2 s
    send(server, batch(f"fw-{tag}", ("custom_event", f"Order-{tag}")))
    arrived = wait_for_message(receiver, f"Order-{tag}")
    assert arrived["events"][0]["data"]["event_name"] == f"Order-{tag}"
    request = next(r for r in receiver.requests if f"Order-{tag}".encode() in r["body"])
    assert request["headers"]["X-Token"] == f"secret-{tag}"

    page.goto("/ui/connections")
    row = page.get_by_role("table", name="Connections").get_by_role(
        "row", name=re.compile(connection)
    )
    cells = row.get_by_role("cell")
    expect(cells.nth(1)).to_have_text("input server")
    expect(cells.nth(3)).to_have_text("sending")
    expect(cells.nth(6)).to_have_text("1")


def wait_for_message(receiver: Receiver, event_name: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in receiver.unique():
            events = message.get("events") or []
            if any(e.get("data", {}).get("event_name") == event_name for e in events):
                return message
        time.sleep(0.1)
    raise AssertionError(f"no batch with {event_name} arrived")


def test_a_refused_batch_is_a_dead_letter_listed_and_replayed(
    forwarding_server: Server, receiver: Receiver, forwarding_page: Page
) -> None:
    server, page = forwarding_server, forwarding_page
    tag = uuid.uuid4().hex[:8]
    sign_in_with_the_keyboard(page)
    connection = make_output_and_connection(page, receiver, tag)
    time.sleep(2.5)
    receiver.default = Answer(400)
    try:
        send(server, batch(f"dead-{tag}", ("custom_event", f"Order-{tag}")))
        dead = page.get_by_role("table", name="Dead letters")
        deadline = time.monotonic() + 20
        while not dead.is_visible() and time.monotonic() < deadline:
            time.sleep(0.3)
            page.reload()
        expect(dead.get_by_role("row")).to_have_count(2)  # a header and the dead letter
        expect(dead).to_contain_text("400")
    finally:
        receiver.default = Answer(200)
    dead.get_by_role("checkbox").check()
    page.get_by_role("button", name="Replay chosen").click()
    expect(page.get_by_role("status")).to_have_text(
        "1 dead letters put back at the end of the outbox."
    )
    expect(page.get_by_text("No dead letters.")).to_be_visible()
    wait_for_message(receiver, f"Order-{tag}")
    page.goto(f"/ui/connections/{connection}")
    expect(page.locator("dl.facts")).to_contain_text("Delivered1")


def test_a_faulted_connection_is_resumed_from_the_connections_page(
    forwarding_server: Server, receiver: Receiver, forwarding_page: Page
) -> None:
    server, page = forwarding_server, forwarding_page
    tag = uuid.uuid4().hex[:8]
    sign_in_with_the_keyboard(page)
    connection = make_output_and_connection(page, receiver, tag)
    time.sleep(2.5)
    receiver.default = Answer(500)
    try:
        send(server, batch(f"fault-{tag}", ("custom_event", f"Order-{tag}")))
        page.goto("/ui/connections")
        row = page.get_by_role("table", name="Connections").get_by_role(
            "row", name=re.compile(connection)
        )
        cells = row.get_by_role("cell")
        deadline = time.monotonic() + 20
        while "faulted" not in cells.nth(3).inner_text() and time.monotonic() < deadline:
            time.sleep(0.3)
            page.reload()
        expect(cells.nth(3)).to_have_text("faulted")
        expect(cells.nth(5)).to_have_text("1")
        expect(cells.nth(7)).to_contain_text("500")
    finally:
        receiver.default = Answer(200)
    row.get_by_role("button", name=f"Resume {connection}").click()
    expect(page).to_have_url(re.compile(f"/ui/connections/{connection}\\?done=resumed$"))
    expect(page.get_by_role("status")).to_have_text("Resumed: its pending messages are sent again.")
    wait_for_message(receiver, f"Order-{tag}")


# --- roles ---------------------------------------------------------------------------------


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/profiles").text)
    assert found is not None
    return found[1]


def test_a_viewer_sees_the_pages_and_changes_nothing(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    viewer, editor = f"vic-{tag}", f"ed-{tag}"
    add_user(server, viewer, "viewer")
    add_user(server, editor, "editor")
    made = httpx.post(
        f"{server.url}/admin/v1/calculated-attributes",
        headers=ADMIN,
        json={
            "name": f"seen_{tag}",
            "workspace_id": 1,
            "definition": {"calculation_type": "count", "event": {"event": "custom_event"}},
        },
        timeout=10,
    )
    assert made.status_code == 201, made.text
    def_id = made.json()["id"]
    hook = {"name": f"out-{tag}", "kind": "jsonl", "directory": str(tmp_path)}
    assert httpx.post(f"{server.url}/admin/v1/outputs", headers=ADMIN, json=hook).status_code == 201
    connection = {"name": f"conn-{tag}", "input": "server", "output": f"out-{tag}"}
    answer = httpx.post(
        f"{server.url}/admin/v1/connections/events", headers=ADMIN, json=connection, timeout=10
    )
    assert answer.status_code == 201, answer.text

    for page in tab_on(browser, server):
        sign_in(page, viewer)
        page.goto("/ui/calculated")
        expect(page.get_by_role("link", name=f"seen_{tag}")).to_be_visible()
        expect(page.get_by_role("link", name="New calculated attribute")).to_have_count(0)
        page.get_by_role("link", name=f"seen_{tag}").click()
        expect(page.locator("dl.facts")).to_contain_text("count, custom_event")
        expect(page.get_by_role("button")).to_have_text(["Sign out"])
        page.goto("/ui/outputs")
        expect(page.get_by_role("link", name=re.compile("^New "))).to_have_count(0)
        page.goto(f"/ui/connections/conn-{tag}")
        expect(page.locator("form.edit")).to_have_count(0)
        expect(page.get_by_role("button")).to_have_text(["Sign out"])

    posts = {
        "/ui/calculated": {"name": f"x_{tag}", "workspace_id": "1"},
        f"/ui/calculated/{def_id}": {"description": "changed"},
        f"/ui/calculated/{def_id}/activate": {},
        f"/ui/calculated/{def_id}/delete": {},
        "/ui/outputs": {"kind": "jsonl", "name": f"y-{tag}", "directory": "/tmp"},
        f"/ui/outputs/out-{tag}": {"directory": "/tmp"},
        f"/ui/outputs/out-{tag}/delete": {},
        "/ui/connections": {"kind": "events", "name": f"z-{tag}"},
        f"/ui/connections/conn-{tag}": {"input": "server", "output": f"out-{tag}"},
        f"/ui/connections/conn-{tag}/delete": {},
        f"/ui/connections/conn-{tag}/resume": {},
        f"/ui/connections/conn-{tag}/dead-letters/replay": {"which": "all"},
    }
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/ui/login", data={"name": viewer, "password": PASSWORD})
        token = csrf_of(client)
        for path, form in posts.items():
            refused = client.post(path, data={"csrf": token, **form})
            assert refused.status_code == 403, path
            assert "Nothing was changed" in refused.text, path
        assert client.get("/ui/calculated/new").status_code == 403
        assert client.get(f"/ui/calculated/{def_id}/edit").status_code == 403
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/ui/login", data={"name": editor, "password": PASSWORD})
        token = csrf_of(client)
        replay = f"/ui/connections/conn-{tag}/dead-letters/replay"
        refused = client.post(replay, data={"csrf": token, "which": "all"})
        assert refused.status_code == 403
        assert "This needs the admin role" in refused.text
        # Without the session's token an editor's post is refused too.
        forged = client.post(f"/ui/calculated/{def_id}/delete", data={"csrf": "forged"})
        assert forged.status_code == 403
    still = httpx.get(f"{server.url}/admin/v1/calculated-attributes/{def_id}", headers=ADMIN)
    assert still.status_code == 200
    assert still.json()["description"] == ""
    listed = httpx.get(f"{server.url}/admin/v1/connections", headers=ADMIN).json()
    assert any(c["name"] == f"conn-{tag}" for c in listed["event_connections"])
    assert not any(c["name"] == f"z-{tag}" for c in listed["event_connections"])


def test_audience_connections_follow_the_audiences_access(server: Server, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    ann, bob = f"ann-{tag}", f"bob-{tag}"
    ann_key = add_user(server, ann, "editor")
    add_user(server, bob, "editor")
    body = {
        "name": f"Private {tag}",
        "workspaces": [1],
        "access": "private",
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    made = httpx.post(f"{server.url}/admin/v1/audiences", json=body, headers=ann_key, timeout=10)
    assert made.status_code == 201, made.text
    private = int(made.json()["id"])
    output = {"name": f"files-{tag}", "kind": "jsonl", "directory": str(tmp_path)}
    assert (
        httpx.post(f"{server.url}/admin/v1/outputs", headers=ADMIN, json=output).status_code == 201
    )
    connection = {
        "name": f"ann-{tag}",
        "audience_id": private,
        "output": f"files-{tag}",
        "identity_types": ["email"],
    }
    answer = httpx.post(
        f"{server.url}/admin/v1/connections/audiences", headers=ann_key, json=connection
    )
    assert answer.status_code == 201, answer.text

    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/ui/login", data={"name": bob, "password": PASSWORD})
        token = csrf_of(client)
        assert f"ann-{tag}" not in client.get("/ui/connections").text
        assert client.get(f"/ui/connections/ann-{tag}").status_code == 404
        form = client.get("/ui/connections/new", params={"kind": "audiences"})
        assert form.status_code == 200
        assert f"Private {tag}" not in form.text
        refused = client.post(
            "/ui/connections",
            data={
                "csrf": token,
                "kind": "audiences",
                "name": f"bob-{tag}",
                "audience_id": str(private),
                "output": f"files-{tag}",
                "identity_types": "email",
                "enabled": "on",
            },
        )
        assert refused.status_code == 400
        assert f'id="audience_id-error">no audience {private}<' in refused.text
        assert (
            client.post(f"/ui/connections/ann-{tag}/delete", data={"csrf": token}).status_code
            == 404
        )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/ui/login", data={"name": ann, "password": PASSWORD})
        assert f"ann-{tag}" in client.get("/ui/connections").text
        assert f"Private {tag}" in client.get("/ui/connections/new?kind=audiences").text
    listed = httpx.get(f"{server.url}/admin/v1/connections", headers=ADMIN).json()
    names = {c["name"] for c in listed["audience_connections"]}
    assert f"ann-{tag}" in names
    assert f"bob-{tag}" not in names
