"""Standard audiences end to end (AUD-13): events sent to a real `kindred serve`, a standard
audience calculated through the admin API, its members listed, an audience connection to a
local webhook receiving them as adds, and a real-time audience nesting it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CONFIG, Server, forwarding_config, serving
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
ADMIN = {"Authorization": "Bearer e2e-admin-token"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def server(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    yield from serving(tmp_path, CONFIG.read_text() + forwarding_config("hook", receiver.url))


def _post(server: Server, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{server.url}/v2/events", content=json.dumps(body), auth=SERVER, timeout=10
    )
    assert response.status_code == 202, response.text


def _plays(customer: str, count: int, age_days: int) -> dict[str, Any]:
    at = int(time.time() * 1000) - age_days * 86_400_000
    events = [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "Play",
                "custom_event_type": "other",
                "timestamp_unixtime_ms": at + n,
            },
        }
        for n in range(count)
    ]
    return {
        "environment": "production",
        "user_identities": {"customer_id": customer},
        "events": events,
    }


def test_a_standard_audience_calculated_listed_connected_and_nested(
    server: Server, receiver: Receiver
) -> None:
    base = f"{server.url}/admin/v1"

    def admin(method: str, path: str, body: Any = None) -> httpx.Response:
        response = httpx.request(method, f"{base}{path}", json=body, headers=ADMIN, timeout=5)
        assert response.status_code < 300, response.text
        return response

    # Plays older than any real-time lookback (200 days) count for a standard audience.
    _post(server, _plays("old-fan", 3, 200))
    _post(server, _plays("new-fan", 3, 1))
    _post(server, _plays("casual", 1, 1))
    std = admin(
        "POST",
        "/audiences",
        {
            "name": "Fans",
            "kind": "standard",
            "expiry_days": 7,
            "workspaces": [1],
            "criteria": {"event": "custom_event", "name": "play", "at_least": 3},
        },
    ).json()
    outer = admin(
        "POST",
        "/audiences",
        {
            "name": "Fans, real time",
            "workspaces": [1],
            "criteria": {"audience": std["id"], "member": True},
        },
    ).json()
    admin("POST", f"/audiences/{outer['id']}/activate")
    connection = {"audience_id": std["id"], "output": "hook", "identity_types": ["customer_id"]}
    admin("POST", "/connections/audiences", {"name": "fans", **connection})
    time.sleep(2.5)  # every process re-reads the catalog every 2 s

    asked = admin("POST", f"/audiences/{std['id']}/calculate")
    assert asked.status_code == 202
    assert asked.json()["status"] == "active"
    deadline = time.monotonic() + 20
    done: dict[str, Any] = asked.json()
    while time.monotonic() < deadline and done["calc_requested_ms"] is not None:
        time.sleep(0.2)
        done = admin("GET", f"/audiences/{std['id']}").json()
    assert done["calc_requested_ms"] is None
    assert done["expires_ms"] == done["computed_ms"] + 7 * 86_400_000
    metrics = admin("GET", f"/audiences/{std['id']}/metrics").json()
    assert metrics["kind"] == "standard"
    assert not metrics["expired"]
    assert metrics["size"] == 2

    members = admin("GET", f"/audiences/{std['id']}/members").json()["mpids"]
    assert len(members) == 2
    nested = admin("GET", f"/audiences/{outer['id']}/members").json()["mpids"]
    assert sorted(nested) == sorted(members)

    def adds() -> list[str]:
        return sorted(
            m["identity"]
            for m in receiver.unique()
            if m.get("type") == "audience_membership_change"
            and m["idempotency_key"].startswith("fans:")
            and m["action"] == "add"
        )

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(adds()) < 2:
        time.sleep(0.1)
    assert adds() == ["new-fan", "old-fan"]

    # A real-time audience is not calculated on request.
    refused = httpx.post(f"{base}/audiences/{outer['id']}/calculate", headers=ADMIN, timeout=5)
    assert refused.status_code == 400
