"""Shadow edits end to end (BEY-4) against a real `kindred serve` and a real webhook
receiver: while the new definition is computed the old one keeps serving (a live batch
changes nothing forwarded yet, and is reflected in the preview); discarding changes no
membership and sends nothing; promoting sends exactly the entered profiles as adds and the
left ones as removals, once each."""

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

PLAY = {"event": "custom_event", "name": "play"}
OLD = {**PLAY, "at_least": 2}
# One play, or three and more: a (3 plays) stays, b (1) enters, c (2) leaves.
NEW = {"or": [{**PLAY, "exactly": 1}, {**PLAY, "at_least": 3}]}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def server(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    yield from serving(tmp_path, CONFIG.read_text() + forwarding_config("hook", receiver.url))


def _plays(customer: str, count: int) -> dict[str, Any]:
    at = int(time.time() * 1000) - 60_000
    events = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "Play",
                "custom_event_type": "other",
                "timestamp_unixtime_ms": at,
            },
        }
        for _ in range(count)
    ]
    return {
        "environment": "production",
        "user_identities": {"customer_id": customer},
        "events": events,
    }


def _changes(receiver: Receiver) -> list[tuple[str, str]]:
    """(action, customer id) of every membership message of the connection, as received
    (duplicates included: each must arrive once)."""
    with receiver.lock:
        messages = list(receiver.messages)
    return [
        (m["action"], m["identity"])
        for m in messages
        if m.get("type") == "audience_membership_change"
        and m["idempotency_key"].startswith("players:")
    ]


def _call(server: Server, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(
        method, f"{server.url}/admin/v1{path}", json=body, headers=E2E_ADMIN, timeout=30
    )


def _ready(server: Server, audience_id: int, entering: int, leaving: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        view: dict[str, Any] = admin_json(server, "GET", f"/audiences/{audience_id}/shadow")
        done = view["status"] == "ready" and (view["entering"], view["leaving"]) == (
            entering,
            leaving,
        )
        return view if done else None

    found: dict[str, Any] = until(check, "the shadow's preview", timeout_s=40)
    return found


def _members(server: Server, audience_id: int) -> list[str]:
    found: list[str] = admin_json(server, "GET", f"/audiences/{audience_id}/members")["mpids"]
    return sorted(found)


def test_discard_then_promote_over_http(server: Server, receiver: Receiver) -> None:
    for customer, plays in (("a", 3), ("b", 1), ("c", 2)):
        send_batch(server, _plays(customer, plays))
    audience = admin_json(
        server, "POST", "/audiences", {"name": "Players", "workspaces": [1], "criteria": OLD}
    )
    audience_id = audience["id"]
    admin_json(server, "POST", f"/audiences/{audience_id}/activate")
    until(
        lambda: (
            not admin_json(server, "GET", f"/audiences/{audience_id}/metrics")["backfill_running"]
        ),
        "the backfill",
    )
    connection = {"audience_id": audience_id, "output": "hook", "identity_types": ["customer_id"]}
    admin_json(server, "POST", "/connections/audiences", {"name": "players", **connection})
    until(lambda: sorted(_changes(receiver)) == [("add", "a"), ("add", "c")], "the initial sync")
    old_members = _members(server, audience_id)
    assert len(old_members) == 2

    # A shadow, then discarded: nothing moves, nothing is sent.
    started = _call(
        server, "POST", f"/audiences/{audience_id}/shadow", {**audience, "criteria": NEW}
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "computing"
    _ready(server, audience_id, 1, 1)
    assert _call(server, "DELETE", f"/audiences/{audience_id}/shadow").status_code == 200
    assert _call(server, "GET", f"/audiences/{audience_id}/shadow").status_code == 404
    assert _call(server, "POST", f"/audiences/{audience_id}/shadow/promote").status_code == 404
    time.sleep(1.5)
    assert _members(server, audience_id) == old_members
    assert sorted(_changes(receiver)) == [("add", "a"), ("add", "c")]
    assert admin_json(server, "GET", f"/audiences/{audience_id}")["criteria"] == OLD

    # Again, with a live batch while it is computed: d (1 play) is no member of the old
    # definition, so nothing is sent for it; the preview counts it as entering.
    started = _call(
        server, "POST", f"/audiences/{audience_id}/shadow", {**audience, "criteria": NEW}
    )
    assert started.status_code == 202, started.text
    send_batch(server, _plays("d", 1))
    view = _ready(server, audience_id, 2, 1)
    assert len(view["entering_sample"]) == 2
    assert len(view["leaving_sample"]) == 1
    assert sorted(_changes(receiver)) == [("add", "a"), ("add", "c")]
    assert _members(server, audience_id) == old_members  # the old definition still serves

    promoted = _call(server, "POST", f"/audiences/{audience_id}/shadow/promote")
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["entered"], promoted.json()["left"]) == (2, 1)
    expected = [("add", "a"), ("add", "b"), ("add", "c"), ("add", "d"), ("delete", "c")]
    until(lambda: sorted(_changes(receiver)) == expected, "the promotion's changes")
    time.sleep(1.5)  # nothing more arrives, nothing twice
    assert sorted(_changes(receiver)) == expected
    members = _members(server, audience_id)
    assert sorted(view["entering_sample"]) == sorted(set(members) - set(old_members))
    assert view["leaving_sample"] == sorted(set(old_members) - set(members))
    saved = admin_json(server, "GET", f"/audiences/{audience_id}")
    assert saved["criteria"] == NEW
    assert saved["shadow"] is None
    versions = admin_json(server, "GET", f"/audiences/{audience_id}/versions")
    assert versions[-1]["definition"]["criteria"] == NEW
    assert _call(server, "GET", f"/audiences/{audience_id}/shadow").status_code == 404


def test_a_shadow_of_a_draft_is_refused(server: Server) -> None:
    audience = admin_json(
        server, "POST", "/audiences", {"name": "Draft", "workspaces": [1], "criteria": OLD}
    )
    refused = _call(server, "POST", f"/audiences/{audience['id']}/shadow", audience)
    assert refused.status_code == 409, refused.text
    bad = _call(server, "POST", f"/audiences/{audience['id']}/shadow", {"name": "x"})
    assert bad.status_code == 400, bad.text
    missing = _call(server, "GET", "/audiences/99999/shadow")
    assert missing.status_code == 404


def test_the_cli_starts_shows_promotes_and_discards(server: Server, tmp_path: Path) -> None:
    for customer, plays in (("a", 3), ("b", 1), ("c", 2)):
        send_batch(server, _plays(customer, plays))
    audience = admin_json(
        server, "POST", "/audiences", {"name": "Players", "workspaces": [1], "criteria": OLD}
    )
    audience_id = str(audience["id"])
    admin_json(server, "POST", f"/audiences/{audience_id}/activate")
    until(
        lambda: (
            not admin_json(server, "GET", f"/audiences/{audience_id}/metrics")["backfill_running"]
        ),
        "the backfill",
    )
    proposal = tmp_path / "new.json"
    proposal.write_text(json.dumps({**audience, "criteria": NEW}))

    started = json.loads(
        server.cli("audiences", "shadow", "start", audience_id, str(proposal)).stdout
    )
    assert (started["status"], started["entering"], started["leaving"]) == ("ready", 1, 1)
    shown = json.loads(server.cli("audiences", "shadow", "show", audience_id).stdout)
    assert shown["entering_sample"] == started["entering_sample"]
    discarded = server.cli("audiences", "shadow", "discard", audience_id)
    assert json.loads(discarded.stdout)["audience_id"] == audience["id"]
    missing = server.cli("audiences", "shadow", "show", audience_id, check=False)
    assert missing.returncode == 1
    assert "no shadow edit" in missing.stderr

    server.cli("audiences", "shadow", "start", audience_id, str(proposal))
    promoted = json.loads(server.cli("audiences", "shadow", "promote", audience_id).stdout)
    assert (promoted["entered"], promoted["left"]) == (1, 1)
    assert admin_json(server, "GET", f"/audiences/{audience_id}")["criteria"] == NEW
    again = server.cli("audiences", "shadow", "promote", audience_id, check=False)
    assert again.returncode == 1
