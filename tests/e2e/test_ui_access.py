"""Roles and audience access in the web UI, in a real browser (headless Debian Chromium,
driven by Playwright) against a real `kindred serve`: users made with `kindred users`
sign in; the audience list's tabs (Mine, Shared with me, All for admins) and its Created
by and Access columns; a private audience invisible to another editor, even by its
address; a viewer's forged form post refused."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import KINDRED, Server
from tests.e2e.test_ui import USER, browser, tab_on

pytestmark = pytest.mark.e2e

__all__ = ["browser"]  # the browser fixture, shared with test_ui.py

PASSWORD = "a-long-password"


def add_user(server: Server, name: str, role: str) -> dict[str, str]:
    """A store user of `role` whose password is PASSWORD, and a bearer header of a key of
    theirs."""
    common = ("--config", str(server.config), "--data-dir", str(server.data_dir))
    added = subprocess.run(
        [*KINDRED, "users", "add", name, "--role", role, "--password-stdin", *common],
        env=server.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    made = server.cli("users", "key", "create", name)
    return {"authorization": f"Bearer {json.loads(made.stdout)['key']}"}


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    page.goto("/ui/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/profiles$"))


def make(server: Server, headers: dict[str, str], name: str, access: str) -> int:
    body: dict[str, Any] = {
        "name": name,
        "workspaces": [1],
        "access": access,
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    made = httpx.post(f"{server.url}/admin/v1/audiences", json=body, headers=headers, timeout=10)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


@pytest.fixture(scope="module")
def setting(server: Server) -> dict[str, Any]:
    """Editors ann and bob and viewer vera (names with a tag of this run), and ann's
    private and usable audiences."""
    tag = uuid.uuid4().hex[:6]
    names = {who: f"{who}-{tag}" for who in ("ann", "bob", "vera")}
    keys = {
        "ann": add_user(server, names["ann"], "editor"),
        "bob": add_user(server, names["bob"], "editor"),
        "vera": add_user(server, names["vera"], "viewer"),
    }
    private = make(server, keys["ann"], f"Ann private {tag}", "private")
    shared = make(server, keys["ann"], f"Ann shared {tag}", "usable")
    return {"tag": tag, "names": names, "private": private, "shared": shared}


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    yield from tab_on(browser, server)


def audiences_table(page: Page) -> Any:
    return page.get_by_role("table", name="Audiences")


def test_another_editor_sees_shared_audiences_only(page: Page, setting: dict[str, Any]) -> None:
    tag, names = setting["tag"], setting["names"]
    sign_in(page, names["bob"])
    page.goto("/ui/audiences")
    tabs = page.get_by_role("navigation", name="Whose audiences")
    expect(tabs.get_by_role("link")).to_have_text(["Mine", "Shared with me"])
    expect(tabs.get_by_role("link", name="Mine")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text(f"Ann shared {tag}")).to_have_count(0)
    tabs.get_by_role("link", name="Shared with me").click()
    expect(page).to_have_url(re.compile(r"/ui/audiences\?show=shared$"))
    row = audiences_table(page).get_by_role("row", name=re.compile(f"Ann shared {tag}"))
    expect(row.get_by_role("cell").nth(9)).to_have_text(names["ann"])
    expect(row.get_by_role("cell").nth(10)).to_have_text("usable")
    expect(page.get_by_text(f"Ann private {tag}")).to_have_count(0)
    # Not even by its address.
    page.goto(f"/ui/audiences/{setting['private']}")
    expect(page.get_by_text(f"No audience {setting['private']}.")).to_be_visible()
    page.goto(f"/ui/audiences/{setting['shared']}")
    expect(page.get_by_role("heading", name=f"Ann shared {tag}")).to_be_visible()


def test_the_owner_sees_their_own_and_an_admin_sees_all(
    browser: Browser, server: Server, setting: dict[str, Any]
) -> None:
    tag, names = setting["tag"], setting["names"]
    for page in tab_on(browser, server):
        sign_in(page, names["ann"])
        page.goto("/ui/audiences?show=mine")
        row = audiences_table(page).get_by_role("row", name=re.compile(f"Ann private {tag}"))
        expect(row.get_by_role("cell").nth(10)).to_have_text("private")
        expect(audiences_table(page).get_by_role("row", name=re.compile(tag))).to_have_count(2)
    for page in tab_on(browser, server):
        sign_in(page, USER, "tester-password")  # the config file's user: an admin
        page.goto("/ui/audiences")
        tabs = page.get_by_role("navigation", name="Whose audiences")
        expect(tabs.get_by_role("link")).to_have_text(["Mine", "Shared with me", "All"])
        expect(tabs.get_by_role("link", name="All")).to_have_attribute("aria-current", "page")
        expect(audiences_table(page).get_by_role("row", name=re.compile(tag))).to_have_count(2)


def test_a_viewers_forged_post_is_refused(server: Server, setting: dict[str, Any]) -> None:
    names = setting["names"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        signed = client.post("/ui/login", data={"name": names["vera"], "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        page = client.get("/ui/audiences")
        assert "(viewer)" in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        resume = f"/ui/audiences/{setting['shared']}/connections/hook/resume"
        refused = client.post(resume, data={"csrf": token[1]})
        assert refused.status_code == 403
        assert "This needs the editor role" in refused.text
        # Signing out is every role's.
        assert client.post("/ui/logout", data={"csrf": token[1]}).status_code == 303
