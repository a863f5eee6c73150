"""Retention (RET-1) end to end on the test clock, on SQLite and PostgreSQL: a batch past
the account's retention period leaves the event log and stops counting in a calculated
attribute and an audience; a profile past its lifetime leaves its audiences (exits logged,
size down, a removal received by the audience connection's webhook). Then bulk deletion
over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    CONFIG,
    Query,
    Server,
    clocked_with_query,
    forwarding_config,
    until,
)
from tests.e2e.conftest import admin_json as admin
from tests.e2e.conftest import send_batch as send
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
ADMIN = {"Authorization": "Bearer e2e-admin-token"}
DAY_MS = 86_400_000
EMAIL = "ret@example.com"


def config(url: str) -> str:
    text = CONFIG.read_text().replace(
        'name = "E2E Account"\n',
        'name = "E2E Account"\nretention_days = 30\nprofile_lifetime_days = 10\n',
        1,
    )
    return (
        text
        + "\n[retention]\nsweep_interval_s = 0\n"
        + forwarding_config("hook", url)
        + """
[[audience_connections]]
name = "gold-to-hook"
audience_id = 1
output = "hook"
identity_types = ["email"]
"""
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> Iterator[tuple[Server, Query]]:
    yield from clocked_with_query(tmp_path, request.param, config(receiver.url))


def batch(email: str, *, play: bool) -> dict[str, Any]:
    events = (
        [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Play", "custom_event_type": "other"},
            }
        ]
        if play
        else []
    )
    return {
        "environment": "development",
        "user_identities": {"email": email},
        "user_attributes": {"tier": "gold"},
        "events": events,
    }


def members(server: Server, audience_id: int) -> list[str]:
    return list(admin(server, "GET", f"/audiences/{audience_id}/members")["mpids"])


def mpid_of(server: Server, email: str) -> str:
    answer = httpx.post(
        f"{server.url}/v1/identify",
        json={"environment": "development", "known_identities": {"email": email}},
        auth=SERVER,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["mpid"])


def test_retention_prunes_events_and_ages_profiles_out_of_audiences(
    world: tuple[Server, Query], tmp_path: Path, receiver: Receiver
) -> None:
    server, query = world
    clock = tmp_path / "clock"
    gold = {
        "name": "Gold",
        "workspaces": [1],
        "lookback_days": 365,
        "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
    }
    players = {
        "name": "Players",
        "workspaces": [1],
        "lookback_days": 365,
        "criteria": {"event": "custom_event", "name": "Play"},
    }
    for n, body in enumerate((gold, players), start=1):
        assert admin(server, "POST", "/audiences", body)["id"] == n
        admin(server, "POST", f"/audiences/{n}/activate")
    plays = admin(
        server,
        "POST",
        "/calculated-attributes",
        {
            "name": "plays",
            "workspace_id": 1,
            "definition": {
                "calculation_type": "count",
                "event": {"event": "custom_event", "name": "Play"},
            },
        },
    )
    admin(server, "POST", f"/calculated-attributes/{plays['id']}/activation")

    send(server, batch(EMAIL, play=True))
    mpid = mpid_of(server, EMAIL)
    assert mpid is not None
    until(lambda: mpid in members(server, 1) and mpid in members(server, 2), "both audiences")
    profile = server.profile(mpid=mpid)
    assert profile is not None
    assert profile["workspaces"]["1"]["attributes"]["plays"]["value"] == 1
    receiver.wait_for(1)  # Gold's add

    # Day 25: a batch without events keeps the profile alive (lifetime 10 days).
    clock.write_text(str(25 * DAY_MS))
    send(server, batch(EMAIL, play=False))
    assert query("SELECT count(*) FROM event_log WHERE mpid = ?", (int(mpid),)) == [(2,)]

    # Day 31: the first batch is past the 30 days of retention.
    clock.write_text(str(31 * DAY_MS))
    run = server.cli("retention", "run")
    report = json.loads(run.stdout)
    assert report["events"]["pruned"] == 1
    assert report["events"]["recomputed"] == 1
    assert report["profiles"]["deleted"] == 0
    assert "events: 1 batches deleted" in run.stderr
    assert query("SELECT count(*) FROM event_log WHERE mpid = ?", (int(mpid),)) == [(1,)]
    profile = server.profile(mpid=mpid)
    assert profile is not None
    assert profile["workspaces"]["1"]["attributes"].get("plays", {}).get("value", 0) == 0
    until(lambda: mpid not in members(server, 2), "the Play to stop counting in Players")
    assert mpid in members(server, 1)

    # Day 40: the profile, last updated on day 25, is past its 10 days of lifetime.
    clock.write_text(str(40 * DAY_MS))
    report = json.loads(server.cli("retention", "run", "--quiet").stdout)
    assert report["profiles"]["deleted"] == 1
    assert report["profiles"]["exits"] == 1
    assert server.profile(mpid=mpid) is None
    reasons = query(
        "SELECT audience_id, reason FROM membership_log WHERE mpid = ? AND reason = ?",
        (int(mpid), "expired"),
    )
    assert reasons == [(1, "expired")]
    assert admin(server, "GET", "/audiences/1/metrics")["size"] == 0
    removals = until(
        lambda: [m for m in receiver.unique() if m.get("action") == "delete"],
        "the removal at the audience connection's webhook",
    )
    assert [(m["audience_id"], m["identity"]) for m in removals] == [(1, EMAIL)]


def test_bulk_deletion_over_http(world: tuple[Server, Query], receiver: Receiver) -> None:
    server, query = world
    assert (
        admin(
            server,
            "POST",
            "/audiences",
            {
                "name": "Gold",
                "workspaces": [1],
                "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
            },
        )["id"]
        == 1
    )
    admin(server, "POST", "/audiences/1/activate")
    for n in range(3):
        send(server, batch(f"bulk{n}@example.com", play=True))
    mpids = [mpid_of(server, f"bulk{n}@example.com") for n in range(3)]
    until(lambda: len(members(server, 1)) == 3, "three members")
    url = f"{server.url}/admin/v1/profiles/delete"
    by_mpid = httpx.post(url, json={"mpids": [mpids[0], "12345"]}, headers=ADMIN, timeout=30).json()
    assert by_mpid["deleted"] == 1
    first, unknown = by_mpid["profiles"]
    assert (first["mpid"], first["found"]) == (mpids[0], True)
    assert first["removed"]["profiles"] == 1
    assert first["removed"]["events"] == 1
    assert first["removed"]["memberships"] == 1
    assert (unknown["found"], unknown["removed"]) == (False, {})
    by_identity = httpx.post(
        url,
        json={
            "identities": [{"type": "email", "value": "bulk1@example.com"}],
            "workspace_id": 1,
        },
        headers=ADMIN,
        timeout=30,
    ).json()
    assert by_identity["deleted"] == 1
    assert by_identity["profiles"][0]["identity"] == {"type": "email", "value": "bulk1@example.com"}
    assert server.profile(mpid=mpids[0]) is None
    assert server.profile(mpid=mpids[1]) is None
    assert server.profile(mpid=mpids[2]) is not None
    assert members(server, 1) == [mpids[2]]
    metrics = admin(server, "GET", "/audiences/1/metrics")
    assert (metrics["size"], metrics["drops_24h"]) == (1, 2)
    removals = until(
        lambda: (
            found
            if len(
                found := sorted(
                    m["identity"] for m in receiver.unique() if m.get("action") == "delete"
                )
            )
            == 2
            else None
        ),
        "both removals",
    )
    assert removals == ["bulk0@example.com", "bulk1@example.com"]
    # One signed receipt per profile erased, which verifies; none for an unknown MPID.
    assert "receipt_id" not in unknown
    for done in (first, by_identity["profiles"][0]):
        receipt = json.loads(server.cli("dsr", "receipt", done["receipt_id"]).stdout)
        assert receipt["receipt"]["origin"] == "bulk"
        assert {p["part"]: p["count"] for p in receipt["receipt"]["parts"]}["profiles"] == 1
        verified = server.cli("dsr", "verify", done["receipt_id"], check=False)
        assert verified.returncode == 0, verified.stderr
    bad = httpx.post(url, json={"mpids": ["1"], "identities": []}, headers=ADMIN, timeout=30)
    assert bad.status_code == 400, bad.text
    nobody = httpx.post(url, json={"mpids": ["1"]}, timeout=30)
    assert nobody.status_code == 401
    assert query("SELECT count(*) FROM profiles WHERE mpid = ?", (int(mpids[0]),)) == [(0,)]
