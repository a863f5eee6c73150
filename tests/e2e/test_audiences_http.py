"""Audiences against a real server: definitions through the admin API, batches over HTTP
moving users in and out, nested audiences, the Profile API showing memberships, history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, make_server

pytestmark = pytest.mark.e2e

ADMIN = {"authorization": "Bearer e2e-admin-token"}
SERVER = ("server-key", "server-secret")


def admin(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}/admin/v1{path}", json=body, headers=ADMIN)


def send(server: Server, customer: str, **fields: Any) -> None:
    batch = {"user_identities": {"customer_id": customer}, **fields}
    assert httpx.post(f"{server.url}/v2/events", json=batch, auth=SERVER).status_code == 202


def play(now_ms: int) -> dict[str, Any]:
    data = {"event_name": "Play", "custom_event_type": "other", "timestamp_unixtime_ms": now_ms}
    return {"event_type": "custom_event", "data": data}


def members(server: Server, audience_id: int, at: int | None = None) -> list[str]:
    params = {"at": at} if at else {}
    response = httpx.get(
        f"{server.url}/admin/v1/audiences/{audience_id}/members", params=params, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return list(response.json()["mpids"])


def test_audiences_follow_batches_and_keep_history(fresh_server: Server) -> None:
    server = fresh_server
    gold = admin(
        server,
        "POST",
        "/audiences",
        {
            "name": "Gold players",
            "external_name": "gold-players",
            "workspaces": [1],
            "tags": ["music"],
            "criteria": {
                "and": [
                    {"attribute": "tier", "op": "equals", "value": "GOLD"},
                    {"event": "custom_event", "name": "play", "within_days": 7},
                ]
            },
        },
    )
    assert gold.status_code == 201, gold.text
    gold_id = gold.json()["id"]
    assert gold.json()["status"] == "draft"
    outer = admin(
        server,
        "POST",
        "/audiences",
        {"name": "Not gold", "workspaces": [1], "criteria": {"exclude": {"audience": gold_id}}},
    ).json()
    for audience_id in (gold_id, outer["id"]):
        assert (
            admin(server, "POST", f"/audiences/{audience_id}/activate").json()["status"] == "active"
        )

    now = int(time.time() * 1000)
    send(server, "aud-e2e-1", user_attributes={"tier": "gold"}, events=[play(now)])
    profile = server.profile(identity="customer_id=aud-e2e-1")
    assert profile is not None
    mpid = profile["mpid"]
    assert members(server, gold_id) == [mpid]
    assert [int(k) for k in profile["memberships"]] == [gold_id]
    entered_at = int(time.time() * 1000)

    send(server, "aud-e2e-1", user_attributes={"tier": "silver"})
    assert members(server, gold_id) == []
    assert members(server, outer["id"]) == [mpid]  # the nesting audience follows
    assert members(server, gold_id, at=entered_at) == [mpid]  # history
    metrics = admin(server, "GET", f"/audiences/{gold_id}/metrics").json()
    assert (metrics["size"], metrics["adds_24h"], metrics["drops_24h"]) == (0, 1, 1)
    assert metrics["volatility_24h"] is None
    assert admin(server, "GET", f"/audiences/{outer['id']}/metrics").json()["size"] == 1
    history = admin(server, "GET", f"/profiles/{mpid}/audiences", None).json()
    assert history["audience_ids"] == [outer["id"]]

    nested = admin(server, "DELETE", f"/audiences/{gold_id}")
    assert nested.status_code == 400
    assert "nested" in nested.json()["errors"][0]["message"]


def test_invalid_definitions_are_refused_with_the_path(server: Server) -> None:
    bad = admin(
        server,
        "POST",
        "/audiences",
        {
            "name": "Broken",
            "workspaces": [1],
            "criteria": {
                "and": [
                    {"attribute": "a", "op": "exists"},
                    {"attribute": "b", "op": "gt", "value": "x"},
                ]
            },
        },
    )
    assert bad.status_code == 400
    assert "criteria.and[1].value" in bad.json()["errors"][0]["message"]
    assert httpx.get(f"{server.url}/admin/v1/audiences").status_code == 401


def test_time_alone_moves_a_user_out(tmp_path: Path) -> None:
    clock = tmp_path / "offset-ms"
    clock.write_text("0")
    server = make_server(tmp_path, clock_file=clock)
    server.start()
    try:
        created = admin(
            server,
            "POST",
            "/audiences",
            {
                "name": "Played today",
                "workspaces": [1],
                "criteria": {"event": "custom_event", "name": "Play", "within_days": 1},
            },
        ).json()
        admin(server, "POST", f"/audiences/{created['id']}/activate")
        send(server, "aud-time-1", events=[play(int(time.time() * 1000))])
        profile = server.profile(identity="customer_id=aud-time-1")
        assert profile is not None
        assert members(server, created["id"]) == [profile["mpid"]]
        clock.write_text(str(86_400_000 + 5_000))  # a day and a little later, no new event
        deadline = time.monotonic() + 10
        while members(server, created["id"]):
            assert time.monotonic() < deadline, "the scheduler did not move the user out"
            time.sleep(0.2)
        history = httpx.get(
            f"{server.url}/admin/v1/profiles/{profile['mpid']}/audiences", headers=ADMIN
        ).json()
        assert history["audience_ids"] == []
    finally:
        server.stop()


def test_an_activated_audience_takes_in_the_profiles_that_already_exist(server: Server) -> None:
    send(server, "aud-backfill-1", user_attributes={"plan": "enterprise-backfill"})
    created = admin(
        server,
        "POST",
        "/audiences",
        {
            "name": "Enterprise",
            "workspaces": [1],
            "criteria": {"attribute": "plan", "op": "equals", "value": "enterprise-backfill"},
        },
    ).json()
    admin(server, "POST", f"/audiences/{created['id']}/activate")
    profile = server.profile(identity="customer_id=aud-backfill-1")
    assert profile is not None
    deadline = time.monotonic() + 15
    while members(server, created["id"]) != [profile["mpid"]]:
        assert time.monotonic() < deadline, "the backfill did not take the profile in"
        time.sleep(0.2)
    metrics = admin(server, "GET", f"/audiences/{created['id']}/metrics").json()
    assert metrics["size"] == 1
    assert metrics["backfill_evaluated"] >= 1


def commerce(action: str, category: str, at_ms: int) -> dict[str, Any]:
    products = [{"id": "sku-1", "name": "Runner", "category": category, "price": 80.0}]
    data = {
        "timestamp_unixtime_ms": at_ms,
        "product_action": {"action": action, "products": products},
    }
    return {"event_type": "commerce_event", "data": data}


def wait_for(server: Server, audience_id: int, wanted: list[str], what: str) -> None:
    deadline = time.monotonic() + 10
    while members(server, audience_id) != wanted:
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_cart_abandoned_for_an_hour_and_a_product_bought(tmp_path: Path) -> None:
    """Commerce criteria over HTTP: the product added and not bought for an hour (time
    alone moves the user in), then bought (a product condition moves the user in)."""
    clock = tmp_path / "offset-ms"
    clock.write_text("0")
    server = make_server(tmp_path, clock_file=clock)
    server.start()
    try:
        ids = []
        for name, criteria in (
            ("Abandoned carts", {"cart_abandonment": {"within_days": 3, "wait_minutes": 60}}),
            (
                "Bought shoes",
                {
                    "event": "commerce_event",
                    "action": "purchase",
                    "where": [{"product": "category", "op": "equals", "value": "Shoes"}],
                    "within_days": 2,
                },
            ),
        ):
            created = admin(
                server,
                "POST",
                "/audiences",
                {"name": name, "workspaces": [1], "criteria": criteria},
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            admin(server, "POST", f"/audiences/{ids[-1]}/activate")
        abandoned, bought = ids
        now = int(time.time() * 1000)
        send(server, "aud-cart-1", events=[commerce("add_to_cart", "shoes", now)])
        profile = server.profile(identity="customer_id=aud-cart-1")
        assert profile is not None
        assert members(server, abandoned) == []
        clock.write_text(str(61 * 60_000))  # an hour later, nothing bought
        wait_for(server, abandoned, [profile["mpid"]], "time did not mark the cart abandoned")
        send(server, "aud-cart-1", events=[commerce("purchase", "shoes", now + 61 * 60_000)])
        assert members(server, abandoned) == []
        assert members(server, bought) == [profile["mpid"]]
        before = members(server, abandoned, at=now + 30 * 60_000)
        assert before == []  # history: not abandoned half an hour after the add
    finally:
        server.stop()


def test_every_saved_definition_is_a_version_with_its_author_and_a_diff(server: Server) -> None:
    first = {
        "name": "Versioned",
        "workspaces": [1],
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    made = admin(server, "POST", "/audiences", first).json()
    audience_id = made["id"]
    edited = {**first, "criteria": {"attribute": "tier", "op": "equals", "value": "silver"}}
    assert admin(server, "PUT", f"/audiences/{audience_id}", edited).status_code == 200
    assert admin(server, "POST", f"/audiences/{audience_id}/activate").status_code == 200
    versions = admin(server, "GET", f"/audiences/{audience_id}/versions").json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["definition"]["status"] for v in versions] == ["draft", "draft", "active"]
    assert {v["saved_by"] for v in versions} == {"admin token"}
    at_second = versions[1]["saved_ms"]
    in_force = admin(server, "GET", f"/audiences/{audience_id}/versions?at={at_second}").json()
    assert in_force["definition"]["criteria"]["value"] == "silver"
    changes = admin(server, "GET", f"/audiences/{audience_id}/diff?from=1&to=3").json()["changes"]
    assert {"path": "criteria.value", "before": "gold", "after": "silver", "change": "changed"} in (
        changes
    )
    assert {"path": "status", "before": "draft", "after": "active", "change": "changed"} in changes
    assert admin(server, "GET", f"/audiences/{audience_id}/versions/9").status_code == 404
    assert admin(server, "GET", f"/audiences/{audience_id}/diff?from=1").status_code == 400
    assert admin(server, "GET", f"/audiences/{audience_id}/versions?at=1").status_code == 404
    cli = server.cli("audiences", "diff", str(audience_id), "2", "3")
    assert '"path": "status"' in cli.stdout
    listed = server.cli("audiences", "versions", str(audience_id))
    assert listed.stdout.count('"version"') == 3


def test_the_platform_api_lists_the_accounts_audiences_for_a_platform_credential(
    server: Server,
) -> None:
    made = admin(
        server,
        "POST",
        "/audiences",
        {
            "name": "Platform listed",
            "external_name": "platform-listed",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "platinum"},
        },
    ).json()
    token = httpx.post(
        f"{server.url}/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": "e2e-client",
            "client_secret": "e2e-secret",
        },
    ).json()["access_token"]
    bearer = {"authorization": f"Bearer {token}"}
    listed = httpx.get(f"{server.url}/v1/audiences?accountId=1", headers=bearer)
    assert listed.status_code == 200, listed.text
    assert listed.json()["dataType"] == "audience"
    item = next(a for a in listed.json()["data"] if a["id"] == made["id"])
    assert item["external_name"] == "platform-listed"
    assert item["workspaces"] == [
        {"name": "E2E Workspace", "id": 1, "data_type": "workspace", "created_on": None}
    ]
    assert {"size", "added_last_24_hours", "dropped_last_24_hours", "status"} <= set(item)
    assert "criteria" not in item  # definitions are not shown on the Platform API
    by_workspace = httpx.get(f"{server.url}/v1/workspace/1/audiences", headers=bearer)
    assert made["id"] in [a["id"] for a in by_workspace.json()["data"]]
    assert httpx.get(f"{server.url}/v1/audiences", headers=bearer).status_code == 400
    assert httpx.get(f"{server.url}/v1/audiences?accountId=1").status_code == 401
    other = httpx.post(
        f"{server.url}/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": "other-client",
            "client_secret": "other-secret",
        },
    ).json()["access_token"]  # profiles scope alone
    refused = httpx.get(
        f"{server.url}/v1/audiences?accountId=1", headers={"authorization": f"Bearer {other}"}
    )
    assert refused.status_code == 403
    assert "platform" in refused.text
    gone = httpx.delete(f"{server.url}/v1/audiences/{made['id']}", headers=bearer)
    assert gone.status_code == 204
    assert admin(server, "GET", f"/audiences/{made['id']}").status_code == 404


def test_activation_counts_the_events_sent_before_it(server: Server) -> None:
    """Plays sent over HTTP, then an audience activated through the admin API: the stored
    plays inside its lookback count, from its input only, exactly."""
    now = int(time.time() * 1000)
    day = 86_400_000
    plays = [play(now - n * day) for n in range(4)] + [play(now - 9 * day)]
    send(server, "aud-history-1", events=plays)  # 4 plays inside 7 days, one older
    send(server, "aud-history-2", events=plays[:3])
    for customer in ("aud-history-1", "aud-history-2"):
        send(server, customer, events=[play(now - 20 * day)])
    # The same plays from another input (the audience reads only `server`'s).
    feed = {"user_identities": {"customer_id": "aud-history-3"}, "events": plays}
    sent = httpx.post(f"{server.url}/v2/events", json=feed, auth=("feed-key", "feed-secret"))
    assert sent.status_code == 202, sent.text
    created = admin(
        server,
        "POST",
        "/audiences",
        {
            "name": "Four plays in a week",
            "workspaces": [1],
            "inputs": ["server"],
            "lookback_days": 7,
            "criteria": {"event": "custom_event", "name": "Play", "at_least": 4},
        },
    ).json()
    assert admin(server, "POST", f"/audiences/{created['id']}/activate").status_code == 200
    expected = [server.profile(identity=f"customer_id={c}") for c in ("aud-history-1",)]
    assert all(p is not None for p in expected)
    wait_for(
        server,
        created["id"],
        [p["mpid"] for p in expected if p is not None],
        "the activation did not count the stored plays",
    )
