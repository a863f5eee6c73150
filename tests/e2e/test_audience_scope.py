"""Audience scope (AUD-1) and account-level attributes (PRF-4) against a real server: two
workspaces of one account sharing an identity index, an input in each, an account-level
input; a second account. Audiences of workspace 1 leave out profiles only workspace 2 saw,
whether they are evaluated live or backfilled by the store; saving an audience refuses
what it cannot read; account attributes are written, answered by the Profile API and read
by audience criteria."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, serving

pytestmark = pytest.mark.e2e

ADMIN = {"authorization": "Bearer scope-admin-token"}
ONE = ("one-key", "one-secret")  # workspace 1's server input
TWO = ("two-key", "two-secret")  # workspace 2's server input
CRM = ("crm-key", "crm-secret")  # workspace 2's account-level feed

CONFIG = """
[server]
log_format = "text"
log_level = "warning"

[org]
id = 1

[[accounts]]
id = 1
name = "Shared"

[[accounts.workspaces]]
id = 1
name = "App"

[[accounts.workspaces.inputs]]
name = "one-server"
source_type = "server"
api_key = "one-key"
api_secret = "one-secret"

[[accounts.workspaces]]
id = 2
name = "Shop"

[[accounts.workspaces.inputs]]
name = "two-server"
source_type = "server"
api_key = "two-key"
api_secret = "two-secret"

[[accounts.workspaces.inputs]]
name = "crm"
source_type = "custom_feed"
api_key = "crm-key"
api_secret = "crm-secret"
account_attributes = true

[[accounts]]
id = 2
name = "Elsewhere"

[[accounts.workspaces]]
id = 3
name = "Other"

[[accounts.workspaces.inputs]]
name = "elsewhere"
source_type = "server"
api_key = "elsewhere-key"
api_secret = "elsewhere-secret"

[[credentials]]
client_id = "scope-client"
client_secret = "scope-secret"
workspaces = [1, 2]

[admin]
token = "scope-admin-token"

[audiences]
schedule_interval_s = 0.2
backfill_interval_s = 0.2
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serving(tmp_path_factory.mktemp("scope"), CONFIG)


def admin(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}/admin/v1{path}", json=body, headers=ADMIN)


def send(server: Server, auth: tuple[str, str], customer: str, **fields: Any) -> None:
    batch = {"user_identities": {"customer_id": customer, "email": f"{customer}@example.com"}}
    response = httpx.post(f"{server.url}/v2/events", json={**batch, **fields}, auth=auth)
    assert response.status_code == 202, response.text


def mpid_of(server: Server, customer: str) -> Any:
    profile = server.profile(identity=f"customer_id={customer}")
    assert profile is not None
    return profile["mpid"]


def activated(server: Server, name: str, workspaces: list[int], criteria: Any, **more: Any) -> int:
    body = {"name": name, "workspaces": workspaces, "criteria": criteria, **more}
    created = admin(server, "POST", "/audiences", body)
    assert created.status_code == 201, created.text
    audience_id = int(created.json()["id"])
    assert admin(server, "POST", f"/audiences/{audience_id}/activate").status_code == 200
    return audience_id


def members(server: Server, audience_id: int) -> list[Any]:
    """The members once the audience's backfill has finished."""

    def done() -> bool:
        metrics = admin(server, "GET", f"/audiences/{audience_id}/metrics").json()
        return not metrics["backfill_running"]

    wait_for(done)
    response = admin(server, "GET", f"/audiences/{audience_id}/members")
    assert response.status_code == 200, response.text
    return sorted(response.json()["mpids"])


def wait_for(condition: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def refused(server: Server, body: dict[str, Any]) -> str:
    answer = admin(server, "POST", "/audiences", body)
    assert answer.status_code == 400, answer.text
    return str(answer.json()["errors"][0]["message"])


def test_identity_and_first_seen_read_only_the_audiences_workspaces(server: Server) -> None:
    """`only-two` was seen in workspace 2 alone; the account's identity index links its
    email all the same. Audiences of workspace 1 do not count it, backfilled (the store's
    SQL) or live; once a batch brings it into workspace 1, they do."""
    send(server, TWO, "only-two")
    send(server, ONE, "both")
    send(server, TWO, "both")
    only_two, both = mpid_of(server, "only-two"), mpid_of(server, "both")
    email = {"identity": "email", "op": "exists"}
    seen = {"first_seen": "after", "value": "2000-01-01"}
    no_email = {"exclude": {"identity": "email", "op": "exists"}}
    backfilled = {
        "email": activated(server, "Email in App", [1], email, inputs=["one-server"]),
        "seen": activated(server, "Seen in App", [1], seen),
        "no email": activated(server, "No email in App", [1], no_email),
        "email in 1 of 2": activated(
            server, "Email in App of both", [1, 2], {**email, "workspace": 1}
        ),
        "email in 2": activated(server, "Email in Shop", [2], email),
    }
    expected = {
        "email": [both],
        "seen": [both],
        "no email": [],
        "email in 1 of 2": [both],
        "email in 2": sorted([only_two, both]),
    }
    assert {name: members(server, a) for name, a in backfilled.items()} == expected

    send(server, TWO, "late-two")  # live: evaluated as the batch is applied
    late = mpid_of(server, "late-two")
    assert {name: members(server, a) for name, a in backfilled.items()} == {
        **expected,
        "email in 2": sorted([only_two, both, late]),
    }

    send(server, ONE, "only-two")  # now seen in workspace 1 too
    for name in ("email", "seen", "email in 1 of 2"):
        assert members(server, backfilled[name]) == sorted([only_two, both]), name


def test_saving_refuses_what_the_audience_cannot_read(server: Server) -> None:
    base: dict[str, Any] = {
        "name": "x",
        "workspaces": [1],
        "criteria": {"first_seen": "after", "value": "2000-01-01"},
    }
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"workspaces": [1, 3]}, "workspaces[1]", "belongs to account 2"),
        ({"workspaces": [1, 99]}, "workspaces[1]", "no workspace 99"),
        ({"workspaces": [1, 1]}, "workspaces[1]", "named twice"),
        ({"inputs": ["one-server", "nope"]}, "inputs[1]", "no input 'nope'"),
        ({"inputs": ["elsewhere"]}, "inputs[0]", "belongs to workspace 3"),
        ({"inputs": ["two-server"]}, "inputs[0]", "belongs to workspace 2"),
        (
            {"criteria": {"attribute": "a", "op": "exists", "workspace": 2}},
            "criteria.workspace",
            "not one of the audience's",
        ),
    ]
    for change, path, message in cases:
        answer = refused(server, {**base, **change})
        assert f"`{path}`" in answer, (change, answer)
        assert message in answer, (change, answer)

    inner = activated(server, "Inner", [1], {"attribute": "a", "op": "exists"})
    outer = activated(server, "Outer", [1], {"audience": inner})
    answer = refused(server, {**base, "criteria": {"and": [{"audience": outer}]}})
    assert f"audience {outer} nests other audiences" in answer
    assert "`criteria.and[0].audience`" in answer
    leaf = activated(server, "Leaf", [1], {"attribute": "b", "op": "exists"})
    nesting = admin(server, "PUT", f"/audiences/{inner}", {**base, "criteria": {"audience": leaf}})
    assert nesting.status_code == 400
    assert (
        f"audience {inner} is nested in audience {outer}" in nesting.json()["errors"][0]["message"]
    )


def profile_api(server: Server, workspace: int, mpid: Any) -> dict[str, Any]:
    body = {
        "client_id": "scope-client",
        "client_secret": "scope-secret",
        "audience": "https://api.mparticle.com",
        "grant_type": "client_credentials",
    }
    issued = httpx.post(f"{server.url}/oauth/token", json=body)
    assert issued.status_code == 200, issued.text
    response = httpx.get(
        f"{server.url}/userprofile/v1/1/1/{workspace}/{mpid}",
        params={"fields": "user_attributes"},
        headers={"Authorization": f"Bearer {issued.json()['access_token']}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def test_account_attributes_are_written_read_and_selected(server: Server) -> None:
    live = activated(
        server, "Pro accounts", [1], {"account_attribute": "plan", "op": "equals", "value": "PRO"}
    )
    send(server, ONE, "acct", user_attributes={"plan": "free", "tier": "gold"})
    acct = mpid_of(server, "acct")
    assert profile_api(server, 1, acct)["account_user_attributes"] is None
    assert members(server, live) == []

    # Written through workspace 2's account-level input, read in every workspace.
    send(server, CRM, "acct", user_attributes={"plan": "pro", "seats": 12})
    for workspace in (1, 2):
        body = profile_api(server, workspace, acct)
        assert body["account_user_attributes"] == {"plan": "pro", "seats": "12"}
    assert profile_api(server, 1, acct)["user_attributes"] == {"plan": "free", "tier": "gold"}
    assert members(server, live) == [acct]  # live

    # The account ranks above every workspace source: an SDK write of the key is refused.
    send(server, ONE, "acct", user_attributes={"plan": "enterprise"})
    assert profile_api(server, 1, acct)["user_attributes"]["plan"] == "free"
    backfilled = activated(
        server, "Seats", [1], {"account_attribute": "seats", "op": "ge", "value": 10}
    )
    assert members(server, backfilled) == [acct]

    send(server, CRM, "acct", deleted_user_attributes=["plan"])
    assert profile_api(server, 1, acct)["account_user_attributes"] == {"seats": "12"}
    assert members(server, live) == []
