"""Audience A/B tests end to end (AUD-8, ENR-4): a real `kindred serve` and a real webhook
receiver. A variation connection receives only its variation's members under
`[External Name] - [Variant]` (its initial sync and the changes after it); the full
audience's connection receives everyone under the external name; deleting the test sends
removals for the variation connections' members and deletes them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    CONFIG,
    E2E_ADMIN,
    Server,
    admin_json,
    forwarding_config,
    send_batch,
    serving,
    until,
)
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def hook_server(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    yield from serving(tmp_path, CONFIG.read_text() + forwarding_config("hook", receiver.url))


def _gold(server: Server, customer: str, tier: str = "gold") -> None:
    send_batch(
        server,
        {
            "environment": "production",
            "user_identities": {"customer_id": customer},
            "user_attributes": {"tier": tier},
        },
    )


def _messages(receiver: Receiver, connection: str, action: str) -> list[dict[str, Any]]:
    return [
        m
        for m in receiver.unique()
        if m.get("type") == "audience_membership_change"
        and m["idempotency_key"].startswith(f"{connection}:")
        and m["action"] == action
    ]


def _mpids(receiver: Receiver, connection: str, action: str) -> set[str]:
    return {m["mpid"] for m in _messages(receiver, connection, action)}


def _variation_members(server: Server, audience_id: int, variation: str) -> set[str]:
    found = admin_json(
        server, "GET", f"/audiences/{audience_id}/test/members?variation={variation}"
    )
    return set(found["mpids"])


def _connect(server: Server, name: str, audience_id: int, variation: str | None) -> None:
    body: dict[str, Any] = {
        "name": name,
        "audience_id": audience_id,
        "output": "hook",
        "identity_types": ["customer_id"],
    }
    if variation is not None:
        body["variation"] = variation
    admin_json(server, "POST", "/connections/audiences", body)


def _received(receiver: Receiver, connection: str, action: str, wanted: set[str]) -> None:
    until(lambda: _mpids(receiver, connection, action) >= wanted, f"{connection} {action}s")


def test_variation_connections_receive_only_their_members_and_removals_at_deletion(
    hook_server: Server, receiver: Receiver
) -> None:
    gold = admin_json(
        hook_server,
        "POST",
        "/audiences",
        {
            "name": "Gold",
            "external_name": "Gold Buyers",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
        },
    )
    audience_id = gold["id"]
    admin_json(hook_server, "POST", f"/audiences/{audience_id}/activate")
    for n in range(40):
        _gold(hook_server, f"ab-{n}")
    _gold(hook_server, "ab-silver", tier="silver")
    until(
        lambda: (
            len(admin_json(hook_server, "GET", f"/audiences/{audience_id}/members")["mpids"]) == 40
        ),
        "the 40 members",
    )

    test = admin_json(
        hook_server,
        "PUT",
        f"/audiences/{audience_id}/test",
        {"variations": [{"name": "Email", "percentage": 40}, {"name": "Push", "percentage": 40}]},
    )
    shares = {v["name"]: (v["percentage"], v["audience_name"]) for v in test["variations"]}
    assert shares == {
        "Email": (40, "Gold Buyers - Email"),
        "Push": (40, "Gold Buyers - Push"),
        "Control": (20, "Gold Buyers - Control"),
    }
    assert sum(v["members"] for v in test["variations"]) == 40
    email = _variation_members(hook_server, audience_id, "Email")
    control = _variation_members(hook_server, audience_id, "Control")
    push = _variation_members(hook_server, audience_id, "Push")
    assert len(email | control | push) == 40
    assert not (email & control)
    assert not (email & push)

    _connect(hook_server, "gold-email", audience_id, "Email")
    _connect(hook_server, "gold-control", audience_id, "Control")
    _connect(hook_server, "gold-all", audience_id, None)
    # Initial syncs: each variation connection its variation's members, the full one all.
    _received(receiver, "gold-email", "add", email)
    _received(receiver, "gold-control", "add", control)
    _received(receiver, "gold-all", "add", email | control | push)

    # Changes after the connections: each new member goes to its variation's connection.
    time.sleep(2.5)  # every process re-reads the catalog every 2 s
    for n in range(40, 70):
        _gold(hook_server, f"ab-{n}")
    until(
        lambda: (
            len(admin_json(hook_server, "GET", f"/audiences/{audience_id}/members")["mpids"]) == 70
        ),
        "the 70 members",
    )
    email = _variation_members(hook_server, audience_id, "Email")
    control = _variation_members(hook_server, audience_id, "Control")
    push = _variation_members(hook_server, audience_id, "Push")
    assert len(email | control | push) == 70
    _received(receiver, "gold-email", "add", email)
    _received(receiver, "gold-control", "add", control)
    _received(receiver, "gold-all", "add", email | control | push)
    time.sleep(0.5)  # nothing else arrives
    assert _mpids(receiver, "gold-email", "add") == email
    assert _mpids(receiver, "gold-control", "add") == control
    names = {
        c: {m["audience_name"] for m in _messages(receiver, c, "add")}
        for c in ("gold-email", "gold-control", "gold-all")
    }
    assert names == {
        "gold-email": {"Gold Buyers - Email"},
        "gold-control": {"Gold Buyers - Control"},
        "gold-all": {"Gold Buyers"},
    }

    # Per profile: the variation of each audience with a test.
    one = sorted(email)[0]
    seen = admin_json(hook_server, "GET", f"/profiles/{one}/variations")["variations"]
    assert seen == [{"audience_id": audience_id, "variation": "Email", "member": True}]

    ended = admin_json(hook_server, "DELETE", f"/audiences/{audience_id}/test")
    assert sorted(ended["ending_connections"]) == ["gold-control", "gold-email"]
    _received(receiver, "gold-email", "delete", email)
    _received(receiver, "gold-control", "delete", control)
    assert _mpids(receiver, "gold-email", "delete") == email
    assert {m["audience_name"] for m in _messages(receiver, "gold-email", "delete")} == {
        "Gold Buyers - Email"
    }

    def connection_names() -> set[str]:
        return {v["name"] for v in admin_json(hook_server, "GET", "/connections")["status"]}

    until(lambda: "gold-email" not in connection_names(), "the variation connections deleted")
    assert "gold-all" in connection_names()
    assert "gold-control" not in connection_names()
    assert not _mpids(receiver, "gold-all", "delete")  # the full audience's stays
    gone = httpx.get(
        f"{hook_server.url}/admin/v1/audiences/{audience_id}/test", headers=E2E_ADMIN, timeout=5
    )
    assert gone.status_code == 404, gone.text


def test_a_test_is_refused_with_a_clear_error(hook_server: Server) -> None:
    audience = admin_json(
        hook_server,
        "POST",
        "/audiences",
        {
            "name": "Any",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "x"},
        },
    )
    url = f"{hook_server.url}/admin/v1/audiences/{audience['id']}/test"

    def put(variations: list[dict[str, Any]]) -> httpx.Response:
        return httpx.put(url, json={"variations": variations}, headers=E2E_ADMIN, timeout=5)

    over = put([{"name": "A", "percentage": 60}, {"name": "B", "percentage": 50}])
    assert over.status_code == 400
    assert "'B'" in over.text
    assert "110%" in over.text
    assert "variations[1].percentage" in over.text
    six = put([{"name": f"V{n}", "percentage": 10} for n in range(6)])
    assert six.status_code == 400
    assert "at most 5" in six.text
    assert put([{"name": "Control", "percentage": 10}]).status_code == 400
    assert put([{"name": "A", "percentage": 0}]).status_code == 400
    assert put([{"name": "A", "percentage": 10, "color": "red"}]).status_code == 400
    missing = httpx.get(url, headers=E2E_ADMIN, timeout=5)
    assert missing.status_code == 404

    first = put([{"name": "A", "percentage": 50}])
    assert first.status_code == 200, first.text
    wrong = httpx.post(
        f"{hook_server.url}/admin/v1/connections/audiences",
        json={
            "name": "any-b",
            "audience_id": audience["id"],
            "output": "hook",
            "identity_types": ["customer_id"],
            "variation": "B",
        },
        headers=E2E_ADMIN,
        timeout=5,
    )
    assert wrong.status_code == 400
    assert "no variation 'B'" in wrong.text
    admin_json(
        hook_server,
        "POST",
        "/connections/audiences",
        {
            "name": "any-a",
            "audience_id": audience["id"],
            "output": "hook",
            "identity_types": ["customer_id"],
            "variation": "A",
        },
    )
    renamed = put([{"name": "Z", "percentage": 50}])
    assert renamed.status_code == 400
    assert "any-a" in renamed.text
    absent = httpx.put(
        f"{hook_server.url}/admin/v1/audiences/999999/test",
        json={"variations": []},
        headers=E2E_ADMIN,
        timeout=5,
    )
    assert absent.status_code == 404


def test_the_cli_sets_shows_and_deletes_a_test(hook_server: Server) -> None:
    audience = admin_json(
        hook_server,
        "POST",
        "/audiences",
        {
            "name": "Cli",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
        },
    )
    audience_id = str(audience["id"])
    admin_json(hook_server, "POST", f"/audiences/{audience_id}/activate")
    refused = hook_server.cli(
        "audiences",
        "test",
        "set",
        audience_id,
        "--variation",
        "A=70",
        "--variation",
        "B=40",
        check=False,
    )
    assert refused.returncode != 0
    assert "variations[1].percentage" in refused.stderr
    made = json.loads(
        hook_server.cli(
            "audiences", "test", "set", audience_id, "--variation", "A=70", "--variation", "B=20"
        ).stdout
    )
    assert [(v["name"], v["percentage"]) for v in made["variations"]] == [
        ("A", 70),
        ("B", 20),
        ("Control", 10),
    ]
    shown = admin_json(hook_server, "GET", f"/audiences/{audience_id}/test")
    assert shown["variations"] == made["variations"]
    assert json.loads(hook_server.cli("audiences", "test", "show", audience_id).stdout) == shown
    _gold(hook_server, "cli-member")
    mpid = until(
        lambda: admin_json(hook_server, "GET", f"/audiences/{audience_id}/members")["mpids"],
        "the member",
    )[0]
    seen = json.loads(hook_server.cli("audiences", "test", "profile", "--mpid", mpid).stdout)
    (mine,) = [v for v in seen["variations"] if v["audience_id"] == audience["id"]]
    assert mine["member"] is True
    listed = json.loads(
        hook_server.cli(
            "audiences", "test", "members", audience_id, "--variation", mine["variation"]
        ).stdout
    )
    assert listed["mpids"] == [mpid]
    ended = json.loads(hook_server.cli("audiences", "test", "delete", audience_id).stdout)
    assert ended == {"audience_id": audience["id"], "ending_connections": []}
    assert hook_server.cli("audiences", "test", "show", audience_id, check=False).returncode != 0
