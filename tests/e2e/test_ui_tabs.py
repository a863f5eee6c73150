"""An audience's tabs in a real browser (headless Debian Chromium, driven by Playwright)
against a real `kindred serve` with a webhook output to a local receiver: an audience made
through the admin API with members, split 40 / 40 / 20 in the A/B tab (the control's share
follows the typing; over 100% is refused at the field), one variation connected to the
receiver (its adds arrive), the ZIP downloaded and read, the definition's versions and a
diff; a viewer sees no forms and their forged post is refused."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import CONFIG, Server, forwarding_config, serving
from tests.e2e.test_ui import ADMIN, batch, browser, send, sign_in_with_the_keyboard, tab_on
from tests.e2e.test_ui_access import PASSWORD, add_user, sign_in
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

__all__ = ["browser"]  # the browser fixture, shared with test_ui.py

MEMBERS = 20


@pytest.fixture(scope="module")
def crm() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, crm: Receiver) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("tabs")
    yield from serving(tmp, CONFIG.read_text() + forwarding_config("crm", crm.url))


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    yield from tab_on(browser, server)


def members_of(server: Server, audience_id: int) -> list[int]:
    answer = httpx.get(
        f"{server.url}/admin/v1/audiences/{audience_id}/members", headers=ADMIN, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return [int(m) for m in answer.json()["mpids"]]


@pytest.fixture(scope="module")
def audience(server: Server) -> dict[str, Any]:
    """An active audience of gold-tier profiles with MEMBERS members."""
    tag = uuid.uuid4().hex[:8]
    definition = {
        "name": f"Tabs {tag}",
        "workspaces": [1],
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    made = httpx.post(f"{server.url}/admin/v1/audiences", json=definition, headers=ADMIN)
    assert made.status_code == 201, made.text
    audience_id = int(made.json()["id"])
    activated = httpx.post(f"{server.url}/admin/v1/audiences/{audience_id}/activate", headers=ADMIN)
    assert activated.status_code == 200, activated.text
    time.sleep(2.5)  # every process re-reads audiences within 2 s
    for n in range(MEMBERS):
        send(server, batch(f"tab-{tag}-{n}", ("custom_event", "Play"), tier="gold"))
    deadline = time.monotonic() + 30
    while len(members_of(server, audience_id)) < MEMBERS and time.monotonic() < deadline:
        time.sleep(0.2)
    members = members_of(server, audience_id)
    assert len(members) == MEMBERS
    return {"id": audience_id, "tag": tag, "name": definition["name"], "members": members}


def test_the_tabs_are_links_and_the_overview_shows_metrics(
    page: Page, audience: dict[str, Any]
) -> None:
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences/{audience['id']}")
    tabs = page.get_by_role("navigation", name="Audience")
    expect(tabs.get_by_role("link")).to_have_text(
        ["Overview", "Build", "A/B test", "Connect", "Download", "History"]
    )
    expect(tabs.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    expect(page.locator("dl.facts")).to_contain_text(f"Size{MEMBERS}")
    expect(page.get_by_role("img", name="Audience size over time")).to_be_visible()
    tabs.get_by_role("link", name="Build").click()
    expect(page).to_have_url(re.compile(f"/ui/audiences/{audience['id']}/build$"))
    expect(page.locator(".criteria")).to_have_text('attribute tier equals "gold"')
    expect(page.get_by_role("link", name="Edit in the builder")).to_have_attribute(
        "href", f"/ui/audiences/{audience['id']}/edit"
    )


def test_split_40_40_20_with_the_control_following_and_over_100_refused(
    page: Page, server: Server, audience: dict[str, Any]
) -> None:
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences/{audience['id']}/ab-test")
    expect(page.locator("#no-test")).to_be_visible()
    control = page.locator("#control-share")
    expect(control).to_have_text("100%")
    page.get_by_label("Variation 1 name").fill("A")
    page.get_by_label("Variation 1 percentage").fill("40")
    expect(control).to_have_text("60%")
    page.get_by_label("Variation 2 name").fill("B")
    page.get_by_label("Variation 2 percentage").fill("70")
    expect(control).to_have_text("-10%")
    page.get_by_role("button", name="Save test").click()
    # The server's 400, shown at the field that took the total over 100.
    field = page.get_by_label("Variation 2 percentage")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#percentage_1-error")).to_contain_text("over 100%")
    expect(control).to_have_text("-10%")  # as the server computed it
    assert (
        httpx.get(
            f"{server.url}/admin/v1/audiences/{audience['id']}/test", headers=ADMIN
        ).status_code
        == 404
    )
    field.fill("40")
    expect(control).to_have_text("20%")
    page.get_by_role("button", name="Save test").click()
    expect(page.locator("p.notice")).to_have_text("The A/B test is saved.")
    rows = page.get_by_role("table", name="Variations", exact=True).get_by_role("row")
    expect(rows).to_have_count(4)
    expect(rows.nth(1).get_by_role("cell").nth(1)).to_have_text("40%")
    expect(rows.nth(2).get_by_role("cell").nth(1)).to_have_text("40%")
    expect(rows.nth(3)).to_contain_text("Control (control)")
    expect(rows.nth(3).get_by_role("cell").nth(1)).to_have_text("20%")
    shown = httpx.get(f"{server.url}/admin/v1/audiences/{audience['id']}/test", headers=ADMIN)
    shares = {v["name"]: v["percentage"] for v in shown.json()["variations"]}
    assert shares == {"A": 40, "B": 40, "Control": 20}
    counts = sum(v["members"] for v in shown.json()["variations"])
    assert counts == MEMBERS


def test_one_variation_connected_to_a_webhook_sends_its_adds(
    page: Page, server: Server, crm: Receiver, audience: dict[str, Any]
) -> None:
    shown = httpx.get(f"{server.url}/admin/v1/audiences/{audience['id']}/test", headers=ADMIN)
    if shown.status_code == 404:
        pytest.skip("needs the test made by the A/B test above")
    in_a = next(v["members"] for v in shown.json()["variations"] if v["name"] == "A")
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences/{audience['id']}/connect")
    expect(page.locator("#connections-none")).to_be_visible()
    page.get_by_label("Output", exact=True).select_option("crm")
    page.get_by_label("Send", exact=True).select_option("A")
    page.get_by_label("Identity types").select_option(["email"])
    page.get_by_role("button", name="Connect", exact=True).click()
    name = f"crm-{audience['id']}-A"
    expect(page.get_by_role("status")).to_contain_text(f"Connected as {name}")
    line = page.get_by_role("table", name="Connections").get_by_role("row", name=re.compile(name))
    expect(line.get_by_role("cell").nth(2)).to_have_text("A")
    received = crm.wait_for(in_a, timeout_s=30)
    time.sleep(1)
    mine = [m for m in crm.unique() if m.get("audience_id") == audience["id"]]
    assert len(received) >= in_a
    assert len(mine) == in_a
    assert all(m["action"] == "add" for m in mine)
    assert all(m["identity"].startswith(f"tab-{audience['tag']}-") for m in mine)
    page.reload()
    expect(line.get_by_role("cell").nth(4)).to_contain_text("done:")


def test_the_download_tab_gives_a_zip_of_the_members_identities(
    page: Page, server: Server, audience: dict[str, Any]
) -> None:
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences/{audience['id']}/download")
    page.get_by_label("Identity types").select_option(["email"])
    page.get_by_label("All members").check()
    with page.expect_download() as started:
        page.get_by_role("button", name="Download ZIP").click()
    data = Path(started.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (csv_name,) = [n for n in archive.namelist() if n.endswith(".csv")]
        rows = list(csv.reader(io.StringIO(archive.read(csv_name).decode("utf-8"))))
    assert rows[0] == ["mpid", "scanned_timestamp_ms", "identity_value", "identity_type"]
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(audience["members"])
    emails = {r[2] for r in rows[1:]}
    assert emails == {f"tab-{audience['tag']}-{n}@example.com" for n in range(MEMBERS)}
    assert {r[3] for r in rows[1:]} == {"email"}
    shown = httpx.get(f"{server.url}/admin/v1/audiences/{audience['id']}/test", headers=ADMIN)
    if shown.status_code == 404:
        return  # the variations' download needs the test the A/B test above made
    counts = {v["name"]: v["members"] for v in shown.json()["variations"]}
    # A sample of 2 of each of two variations: a CSV each.
    page.get_by_label("Identity types").select_option(["customer_id"])
    page.get_by_label("A sample of").check()
    page.get_by_label("Sample size").fill("2")
    page.get_by_label("A", exact=True).check()
    page.get_by_label("Control", exact=True).check()
    with page.expect_download() as started:
        page.get_by_role("button", name="Download ZIP").click()
    data = Path(started.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = sorted(n for n in archive.namelist() if n.endswith(".csv"))
        assert len(files) == 2
        assert "_A_" in files[0]
        assert "_Control_" in files[1]
        for name in files:
            rows = list(csv.reader(io.StringIO(archive.read(name).decode("utf-8"))))[1:]
            variation = "A" if "_A_" in name else "Control"
            assert len(rows) == min(2, counts[variation])
            assert {r[3] for r in rows} <= {"customer_id"}
            assert all(int(r[0]) in audience["members"] for r in rows)


def test_the_history_tab_lists_versions_and_shows_a_diff(
    page: Page, server: Server, audience: dict[str, Any]
) -> None:
    changed = {
        "name": audience["name"],
        "workspaces": [1],
        "status": "active",
        "criteria": {"attribute": "tier", "op": "equals", "value": "platinum"},
    }
    put = httpx.put(
        f"{server.url}/admin/v1/audiences/{audience['id']}", json=changed, headers=ADMIN
    )
    assert put.status_code == 200, put.text
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences/{audience['id']}/history")
    versions = page.get_by_role("table", name="Definition versions").get_by_role("row")
    count = versions.count() - 1
    assert count >= 2
    expect(versions.nth(1).get_by_role("cell").first).to_have_text(str(count))
    page.get_by_label("From version").select_option("1")
    page.get_by_label("to version").select_option(str(count))
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(f"history\\?from=1&to={count}$"))
    diff = page.get_by_role("table", name="Changes between versions")
    line = diff.get_by_role("row", name=re.compile(r"criteria\.value"))
    expect(line.get_by_role("cell")).to_have_text(
        ["criteria.value", "changed", '"gold"', '"platinum"']
    )
    expect(page.get_by_role("table", name="Membership changes")).to_contain_text("entered")


def test_a_viewer_sees_no_forms_and_a_forged_post_is_refused(
    browser: Browser, server: Server, audience: dict[str, Any]
) -> None:
    viewer = f"vic-{uuid.uuid4().hex[:6]}"
    add_user(server, viewer, "viewer")
    base = f"/ui/audiences/{audience['id']}"
    for page in tab_on(browser, server):
        sign_in(page, viewer)
        for tab in ("/build", "/ab-test", "/connect", "/download", "/history"):
            page.goto(base + tab)
            expect(page.get_by_role("heading", name=audience["name"])).to_be_visible()
            expect(page.locator("main form")).to_have_count(
                1 if tab == "/history" else 0  # the history's Compare form only reads
            )
        page.goto("/ui/audiences")
        expect(page.get_by_role("button", name="Connect chosen audiences")).to_have_count(0)
    before = httpx.get(f"{server.url}/admin/v1/audiences/{audience['id']}/test", headers=ADMIN)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        signed = client.post("/ui/login", data={"name": viewer, "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        found = re.search(r'name="csrf" value="([^"]+)"', client.get(base + "/ab-test").text)
        assert found is not None
        forged = {"csrf": found.group(1), "name_0": "X", "percentage_0": "90"}
        refused = client.post(base + "/ab-test", data=forged)
        assert refused.status_code == 403, refused.text
        assert "Nothing was changed" in refused.text
        post = {"csrf": found.group(1), "output": "crm", "identity_types": "email"}
        assert client.post(base + "/connect", data=post).status_code == 403
        assert (
            client.post(
                "/ui/audiences/connect", data={**post, "audience_id": str(audience["id"])}
            ).status_code
            == 403
        )
        assert client.get(base + "/download/zip?identity_types=email").status_code == 403
    after = httpx.get(f"{server.url}/admin/v1/audiences/{audience['id']}/test", headers=ADMIN)
    assert after.status_code == before.status_code
    assert after.text == before.text


def test_the_list_connects_several_audiences_to_one_output(page: Page, server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = []
    for n in range(2):
        body = {
            "name": f"Bulk {tag} {n}",
            "workspaces": [1],
            "tags": [tag],
            "criteria": {"attribute": "tier", "op": "equals", "value": f"bulk-{tag}"},
        }
        made = httpx.post(f"{server.url}/admin/v1/audiences", json=body, headers=ADMIN)
        assert made.status_code == 201, made.text
        ids.append(int(made.json()["id"]))
    sign_in_with_the_keyboard(page)
    page.goto(f"/ui/audiences?tag={tag}")
    for n in range(2):
        page.get_by_label(f"Choose Bulk {tag} {n}").check()
    page.get_by_label("Output", exact=True).select_option("crm")
    page.get_by_label("Identity types").select_option(["email", "customer_id"])
    page.get_by_role("button", name="Connect chosen audiences").click()
    expect(page.get_by_role("status")).to_have_text(
        "2 audience(s) connected to crm: their initial syncs send the members now."
    )
    listed = httpx.get(f"{server.url}/admin/v1/connections", headers=ADMIN, timeout=5).json()
    made_now = {c["name"]: c for c in listed["audience_connections"]}
    for audience_id in ids:
        connection = made_now[f"crm-{audience_id}"]
        assert connection["audience_id"] == audience_id
        assert connection["identity_types"] == ["email", "customer_id"]
    row = page.get_by_role("table", name="Audiences").get_by_role("row", name=f"Bulk {tag} 0")
    expect(row).to_contain_text("crm")
    # Connected already: the same request again is refused whole, naming the audience.
    page.get_by_label(f"Choose Bulk {tag} 1").check()
    page.get_by_label("Output", exact=True).select_option("crm")
    page.get_by_role("button", name="Connect chosen audiences").click()
    expect(page.get_by_role("alert")).to_contain_text("in use")


def test_another_editor_may_not_change_or_use_a_view_only_audience(server: Server) -> None:
    """An editor who does not own a `view` audience sees its tabs with no forms, and their
    posts about it are refused (403) with nothing changed."""
    owner, other = (f"{who}-{uuid.uuid4().hex[:6]}" for who in ("owen", "edna"))
    keys = add_user(server, owner, "editor")
    add_user(server, other, "editor")
    body = {
        "name": f"View only {uuid.uuid4().hex[:6]}",
        "workspaces": [1],
        "access": "view",
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    made = httpx.post(f"{server.url}/admin/v1/audiences", json=body, headers=keys, timeout=10)
    assert made.status_code == 201, made.text
    base = f"/ui/audiences/{made.json()['id']}"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        signed = client.post("/ui/login", data={"name": other, "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        for tab in ("/ab-test", "/connect", "/download"):
            shown = client.get(base + tab)
            assert shown.status_code == 200
            assert '<form method="post" action="' + base not in shown.text
            assert "Download ZIP" not in shown.text
        found = re.search(r'name="csrf" value="([^"]+)"', shown.text)
        assert found is not None
        csrf = found.group(1)
        split = client.post(
            base + "/ab-test", data={"csrf": csrf, "name_0": "A", "percentage_0": "50"}
        )
        assert split.status_code == 403
        assert f"belongs to {owner}" in split.text
        post = {"csrf": csrf, "output": "crm", "identity_types": "email"}
        connect = client.post(base + "/connect", data=post)
        assert connect.status_code == 403
        assert "view only" in connect.text
        assert client.get(base + "/download/zip?identity_types=email").status_code == 403
    test = httpx.get(f"{server.url}/admin/v1{base.removeprefix('/ui')}/test", headers=ADMIN)
    assert test.status_code == 404
    listed = httpx.get(f"{server.url}/admin/v1/connections", headers=ADMIN, timeout=5).json()
    assert not [c for c in listed["audience_connections"] if c["audience_id"] == made.json()["id"]]


def test_odd_numbers_in_forms_and_addresses_are_answered_not_crashed(
    server: Server, audience: dict[str, Any]
) -> None:
    base = f"/ui/audiences/{audience['id']}"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        signed = client.post("/ui/login", data={"name": "tester", "password": "tester-password"})
        assert signed.status_code == 303, signed.text
        found = re.search(r'name="csrf" value="([^"]+)"', client.get(base + "/ab-test").text)
        assert found is not None
        csrf = found.group(1)
        for odd in ("²", "9" * 5000):
            refused = client.post(
                base + "/ab-test", data={"csrf": csrf, "name_0": "Z", "percentage_0": odd}
            )
            assert refused.status_code == 400
            assert "is a whole number, 1..100" in refused.text
            assert (
                client.post(f"/ui/audiences/{odd}/ab-test", data={"csrf": csrf}).status_code == 404
            )
            history = client.get(base + f"/history?from={odd}&to=1")
            assert history.status_code == 400
            sample = client.get(
                base + f"/download/zip?identity_types=email&size=sample&sample={odd}"
            )
            assert sample.status_code == (400 if odd == "²" else 200)
