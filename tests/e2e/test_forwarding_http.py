"""Forwarding end to end: batches sent over HTTP to a real `kindred serve` arrive enriched at
a local webhook; an output made through the admin API, a fault seen and resumed over it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CONFIG, Server, forwarding_config, serving
from tests.receiver import Answer, Receiver, receiving

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
ADMIN = {"Authorization": "Bearer e2e-admin-token"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def forwarding_server(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    yield from _forwarding_server(tmp_path, receiver, workers=1)


def _forwarding_server(tmp_path: Path, receiver: Receiver, workers: int) -> Iterator[Server]:
    yield from serving(
        tmp_path,
        CONFIG.read_text().replace("[server]\n", f"[server]\nworkers = {workers}\n", 1)
        + forwarding_config("hook", receiver.url)
        + """auth_header = "X-Token: abc"

[[event_connections]]
name = "server-to-hook"
input = "server"
output = "hook"
attributes_block = ["password"]
""",
    )


def post(server: Server, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{server.url}/v2/events", content=json.dumps(body), auth=SERVER, timeout=10
    )
    assert response.status_code == 202, response.text


def test_batches_over_http_arrive_enriched_at_a_webhook(
    forwarding_server: Server, receiver: Receiver
) -> None:
    post(
        forwarding_server,
        {
            "environment": "production",
            "user_identities": {"customer_id": "fw-1", "email": "fw1@example.com"},
            "user_attributes": {"plan": "pro", "password": "hunter2"},
            "events": [
                {
                    "event_type": "custom_event",
                    "data": {"event_name": "signup", "custom_event_type": "other"},
                }
            ],
        },
    )
    post(
        forwarding_server,
        {
            "environment": "production",
            "user_identities": {"customer_id": "fw-1"},
            "events": [{"event_type": "screen_view", "data": {"screen_name": "home"}}],
        },
    )
    first, second = receiver.wait_for(2, timeout_s=15)
    assert second["events"][0]["data"]["screen_name"] == "home"
    for message in (first, second):
        assert message["user_attributes"] == {"plan": "pro"}
        assert {i["identity_type"] for i in message["user_identities"]} == {
            "customer_id",
            "email",
        }
        assert message["mpid"] == first["mpid"]
    assert receiver.requests[0]["headers"]["X-Token"] == "abc"


def test_with_several_server_processes_one_sends_each_row_in_order(
    tmp_path: Path, receiver: Receiver, workers: int
) -> None:
    for server in _forwarding_server(tmp_path, receiver, workers):
        for n in range(60):
            post(
                server,
                {
                    "environment": "production",
                    "user_identities": {"customer_id": f"multi-{n % 4}"},
                    "events": [
                        {
                            "event_type": "custom_event",
                            "data": {"event_name": str(n), "custom_event_type": "other"},
                        }
                    ],
                },
            )
        received = receiver.wait_for(60, timeout_s=20)
        assert len(receiver.messages) == 60  # one sender per connection: nothing twice
        per_user: dict[int, list[int]] = {}
        for message in received:
            per_user.setdefault(message["mpid"], []).append(
                int(message["events"][0]["data"]["event_name"])
            )
        assert [sorted(v) == v for v in per_user.values()] == [True] * 4


def test_a_fault_shows_over_the_admin_api_and_resume_sends_everything(
    forwarding_server: Server, receiver: Receiver
) -> None:
    receiver.default = Answer(500)
    for n in range(5):
        post(
            forwarding_server,
            {
                "environment": "production",
                "user_identities": {"customer_id": "fw-2"},
                "events": [
                    {
                        "event_type": "custom_event",
                        "data": {"event_name": f"e{n}", "custom_event_type": "other"},
                    }
                ],
            },
        )
    url = f"{forwarding_server.url}/admin/v1/connections"
    deadline = time.monotonic() + 15
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        (status,) = httpx.get(url, headers=ADMIN, timeout=5).json()["status"]
        if status["status"] == "faulted":
            break
        time.sleep(0.1)
    assert status["status"] == "faulted"
    assert "500" in status["last_error"]
    assert status["pending"] >= 1

    receiver.default = Answer(200)
    listed = json.loads(forwarding_server.cli("connections", "list").stdout)
    assert listed[0]["status"] == "faulted"
    resumed = httpx.post(f"{url}/server-to-hook/resume", headers=ADMIN, timeout=5)
    assert resumed.status_code == 200
    received = receiver.wait_for(5, timeout_s=15)
    assert [m["events"][0]["data"]["event_name"] for m in received] == [f"e{n}" for n in range(5)]
    deadline = time.monotonic() + 5  # the count follows the receiver's answer
    outcomes: set[str] = set()
    while time.monotonic() < deadline and not {"retry", "faulted", "sent"} <= outcomes:
        metrics = httpx.get(f"{forwarding_server.url}/metrics", timeout=5).text
        outcomes = {
            line.split('outcome="')[1].split('"')[0]
            for line in metrics.splitlines()
            if line.startswith('kindred_forwarding_total{connection="server-to-hook"')
        }
    assert {"retry", "faulted", "sent"} <= outcomes


def test_outputs_and_connections_made_through_the_admin_api(
    forwarding_server: Server, tmp_path: Path
) -> None:
    base = f"{forwarding_server.url}/admin/v1"
    out = tmp_path / "files"
    made = httpx.post(
        f"{base}/outputs",
        headers=ADMIN,
        json={"name": "files", "kind": "jsonl", "directory": str(out)},
        timeout=5,
    )
    assert made.status_code == 201, made.text
    bad = httpx.post(
        f"{base}/connections/events",
        headers=ADMIN,
        json={"name": "x", "input": "nope", "output": "files"},
        timeout=5,
    )
    assert bad.status_code == 400
    assert "input" in bad.text
    made = httpx.post(
        f"{base}/connections/events",
        headers=ADMIN,
        json={"name": "web-to-files", "input": "server", "output": "files"},
        timeout=5,
    )
    assert made.status_code == 201, made.text
    time.sleep(2.5)  # every process re-reads the catalog every 2 s
    post(
        forwarding_server,
        {
            "environment": "production",
            "user_identities": {"customer_id": "fw-3"},
            "events": [
                {
                    "event_type": "custom_event",
                    "data": {"event_name": "filed", "custom_event_type": "other"},
                }
            ],
        },
    )
    deadline = time.monotonic() + 15
    lines: list[str] = []
    while time.monotonic() < deadline and not lines:
        lines = [ln for p in out.glob("*.jsonl") for ln in p.read_text().splitlines()]
        time.sleep(0.1)
    assert [json.loads(ln)["events"][0]["data"]["event_name"] for ln in lines] == ["filed"]
    names = [o["name"] for o in httpx.get(f"{base}/outputs", headers=ADMIN, timeout=5).json()]
    assert names == ["hook", "files"]
    assert httpx.delete(f"{base}/outputs/files", headers=ADMIN, timeout=5).status_code == 400
    assert (
        httpx.delete(f"{base}/connections/web-to-files", headers=ADMIN, timeout=5).status_code
        == 204
    )
    assert httpx.delete(f"{base}/outputs/files", headers=ADMIN, timeout=5).status_code == 204


def test_an_audience_connection_added_later_receives_the_current_members(
    forwarding_server: Server, receiver: Receiver
) -> None:
    base = f"{forwarding_server.url}/admin/v1"

    def admin(method: str, path: str, body: Any = None) -> httpx.Response:
        response = httpx.request(method, f"{base}{path}", json=body, headers=ADMIN, timeout=5)
        assert response.status_code < 300, response.text
        return response

    gold = admin(
        "POST",
        "/audiences",
        {
            "name": "Gold",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
        },
    ).json()
    admin("POST", f"/audiences/{gold['id']}/activate")
    connection = {"audience_id": gold["id"], "output": "hook", "identity_types": ["customer_id"]}
    admin("POST", "/connections/audiences", {"name": "gold-first", **connection})
    time.sleep(2.5)  # every process re-reads the catalog every 2 s
    members = [f"sync-{n}" for n in range(5)]
    for customer in [*members, "sync-silver"]:
        tier = "silver" if customer == "sync-silver" else "gold"
        post(
            forwarding_server,
            {
                "environment": "production",
                "user_identities": {"customer_id": customer},
                "user_attributes": {"tier": tier},
            },
        )

    def adds(connection: str) -> list[str]:
        return [
            m["identity"]
            for m in receiver.unique()
            if m.get("type") == "audience_membership_change"
            and m["idempotency_key"].startswith(f"{connection}:")
            and m["action"] == "add"
        ]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(adds("gold-first")) < len(members):
        time.sleep(0.1)
    assert sorted(adds("gold-first")) == members  # as they entered

    admin("POST", "/connections/audiences", {"name": "gold-later", **connection})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(adds("gold-later")) < len(members):
        time.sleep(0.1)
    assert sorted(adds("gold-later")) == members  # the members as it was connected
    assert all(
        m["idempotency_key"].startswith("gold-later:sync1:")
        for m in receiver.unique()
        if m["idempotency_key"].startswith("gold-later:")
    )

    deadline = time.monotonic() + 10
    sync: dict[str, Any] = {}
    while time.monotonic() < deadline and sync.get("status") != "done":
        views = admin("GET", "/connections").json()["status"]
        (later,) = [v for v in views if v["name"] == "gold-later"]
        sync = later["initial_sync"]
        time.sleep(0.1)
    assert sync["status"] == "done"
    assert (sync["members_done"], sync["members_total"]) == (5, 5)
    assert sync["started_ms"] <= sync["finished_ms"]
    listed = json.loads(forwarding_server.cli("connections", "list").stdout)
    (later,) = [v for v in listed if v["name"] == "gold-later"]
    assert later["initial_sync"]["status"] == "done"
    (events,) = [v for v in listed if v["name"] == "server-to-hook"]
    assert events["initial_sync"] is None
