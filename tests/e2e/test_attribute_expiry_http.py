"""Per-attribute expiry (RET-4, BEY-7) end to end on the test clock, on SQLite and
PostgreSQL: a workspace's `attribute_ttl` makes a value disappear from the Profile API at
its expiry instant (no sweep run yet); the attribute expiry then removes it from the stored
profile and the profile leaves the audience that read it: the exit logged, the size down,
a removal received by the audience connection's webhook. A value set again later lives on.
And the server does it by itself: the audience scheduler at the expiry instant, the
attribute expiry on its schedule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
DAY_MS = 86_400_000
MINUTE_MS = 60_000
AUDIENCE = "https://api.mparticle.com"
GOLD = {
    "name": "Gold",
    "workspaces": [1],
    "criteria": {"attribute": "pii_tier", "op": "equals", "value": "gold"},
}


def config(url: str, *, expiry_interval_s: float, scheduler: bool = False) -> str:
    text = CONFIG.read_text().replace(
        'name = "E2E Workspace"\n',
        'name = "E2E Workspace"\nattribute_ttl = { "pii_*" = "2d" }\n',
        1,
    )
    assert 'attribute_ttl = { "pii_*" = "2d" }' in text
    if not scheduler:
        # No audience scheduler: the attribute expiry alone ends the memberships.
        text = text.replace("schedule_interval_s = 0.2\n", "schedule_interval_s = 0\n", 1)
        assert "schedule_interval_s = 0\n" in text
    return (
        text
        + f"\n[retention]\nsweep_interval_s = 0\nexpiry_interval_s = {expiry_interval_s}\n"
        + forwarding_config("hook", url)
        + """
[[audience_connections]]
name = "gold-to-hook"
audience_id = 1
output = "hook"
identity_types = ["email"]
"""
    )


# The clocked server, stopped however the test ends.
clocked = contextmanager(clocked_with_query)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def batch(email: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "environment": "development",
        "user_identities": {"email": email},
        "user_attributes": attributes,
    }


def mpid_of(server: Server, email: str) -> str:
    answer = httpx.post(
        f"{server.url}/v1/identify",
        json={"environment": "development", "known_identities": {"email": email}},
        auth=SERVER,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["mpid"])


def attributes(server: Server, mpid: str) -> dict[str, Any]:
    """The Profile API's user attributes (a token asked for now: the clock moves by days)."""
    token = httpx.post(
        f"{server.url}/oauth/token",
        json={
            "client_id": "e2e-client",
            "client_secret": "e2e-secret",
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    answer = httpx.get(
        f"{server.url}/userprofile/v1/1/1/1/{mpid}",
        params={"fields": "user_attributes"},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["user_attributes"]
    return found


def members(server: Server) -> list[str]:
    return list(admin(server, "GET", "/audiences/1/members")["mpids"])


def stored_doc(query: Query, mpid: str) -> str:
    ((doc,),) = query("SELECT doc FROM profiles WHERE mpid = ?", (int(mpid),))
    return doc if isinstance(doc, str) else json.dumps(doc)


def removals(receiver: Receiver) -> list[tuple[int, str]]:
    return [
        (m["audience_id"], m["identity"]) for m in receiver.unique() if m.get("action") == "delete"
    ]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_an_expiring_attribute_takes_the_profile_out_of_its_audience(
    backend: str, tmp_path: Path, receiver: Receiver
) -> None:
    text = config(receiver.url, expiry_interval_s=0)
    with clocked(tmp_path, backend, text) as (server, query):
        clock = tmp_path / "clock"
        assert admin(server, "POST", "/audiences", GOLD)["id"] == 1
        admin(server, "POST", "/audiences/1/activate")
        send(server, batch("ada@example.com", {"pii_tier": "gold", "plan": "pro"}))
        send(server, batch("bo@example.com", {"pii_tier": "gold"}))
        ada, bo = mpid_of(server, "ada@example.com"), mpid_of(server, "bo@example.com")
        until(lambda: sorted(members(server)) == sorted([ada, bo]), "both in Gold")
        receiver.wait_for(2)  # the adds

        # Day 1: Bo's value is set again, which starts a new TTL for it.
        clock.write_text(str(DAY_MS))
        send(server, batch("bo@example.com", {"pii_tier": "gold"}))

        # A minute before the expiry Ada's value is still there; at the expiry it is gone
        # from the Profile API at once, before any sweep ran.
        clock.write_text(str(2 * DAY_MS - MINUTE_MS))
        assert attributes(server, ada) == {"pii_tier": "gold", "plan": "pro"}
        clock.write_text(str(2 * DAY_MS))
        assert attributes(server, ada) == {"plan": "pro"}
        assert attributes(server, bo) == {"pii_tier": "gold"}
        assert "pii_tier" in stored_doc(query, ada)  # still stored: nothing has swept

        run = server.cli("retention", "run")
        report = json.loads(run.stdout)["attributes"]
        assert (report["removed"], report["profiles"], report["exits"]) == (1, 1, 1)
        assert report["by_workspace"] == {"1": 1}
        assert "attributes: 1 expired values removed from 1 profiles, 1 audience exits" in (
            run.stderr
        )
        assert "pii_tier" not in stored_doc(query, ada)
        assert "pii_tier" in stored_doc(query, bo)
        exits = query(
            "SELECT audience_id, reason FROM membership_log WHERE mpid = ? AND entered = ?",
            (int(ada), False),
        )
        assert exits == [(1, "attribute_expired")]
        assert members(server) == [bo]
        assert admin(server, "GET", "/audiences/1/metrics")["size"] == 1
        assert until(lambda: removals(receiver), "the removal at the webhook") == [
            (1, "ada@example.com")
        ]

        # Day 3: Bo's value, set again on day 1, expires too.
        clock.write_text(str(3 * DAY_MS))
        assert attributes(server, bo) == {}
        report = json.loads(server.cli("retention", "run", "--quiet").stdout)["attributes"]
        assert (report["removed"], report["exits"]) == (1, 1)
        assert members(server) == []
        until(lambda: len(removals(receiver)) == 2, "Bo's removal")


@pytest.mark.parametrize("by", ["attribute expiry", "audience scheduler"])
def test_the_server_ends_the_membership_by_itself(
    by: str, tmp_path: Path, receiver: Receiver
) -> None:
    """The server's own schedule: the attribute expiry (audience scheduler off), or the
    audience scheduler the profile is due for at the value's expiry (attribute expiry
    off)."""
    scheduled = by == "audience scheduler"
    text = config(receiver.url, expiry_interval_s=0 if scheduled else 0.2, scheduler=scheduled)
    with clocked(tmp_path, "sqlite", text) as (server, query):
        assert admin(server, "POST", "/audiences", GOLD)["id"] == 1
        admin(server, "POST", "/audiences/1/activate")
        send(server, batch("cy@example.com", {"pii_tier": "gold"}))
        cy = mpid_of(server, "cy@example.com")
        until(lambda: members(server) == [cy], "Cy in Gold")
        (tmp_path / "clock").write_text(str(2 * DAY_MS))
        until(lambda: members(server) == [], f"Cy out of Gold by the {by}, with no CLI run")
        assert "pii_tier" not in stored_doc(query, cy)
        exits = query(
            "SELECT reason FROM membership_log WHERE mpid = ? AND entered = ?", (int(cy), False)
        )
        assert exits == [("attribute_expired",)]
        assert until(lambda: removals(receiver), "the removal") == [(1, "cy@example.com")]
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        counted = "0.0" if scheduled else "1.0"
        assert f"kindred_attributes_expired_total {counted}" in metrics
        assert f"kindred_attribute_expiry_exits_total {counted}" in metrics
