"""Profiles rebuilt from the event log come out exactly as the live ones (the log keeps
every accepted batch, as received)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
FEED = ("feed-key", "feed-secret")
PARTNER = ("partner-key", "partner-secret")


def _traffic(server: Server) -> list[str]:
    """Varied batches: new and returning users, priorities, deletions, stale writes, retries,
    web batches with client IPs; returns customer ids to compare."""
    now = int(time.time() * 1000)
    url = server.url
    customers = []
    for n in range(6):
        customer = f"rb-{n}"
        customers.append(customer)
        ids = {"customerid": customer, "email": f"rb{n}@example.com"}
        events = [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "Play",
                    "custom_event_type": "navigation",
                    "source_message_id": f"rb-m-{n}",
                    "timestamp_unixtime_ms": now - 5000,
                },
            }
        ]
        httpx.post(
            f"{url}/v2/events",
            auth=SERVER,
            json={
                "user_identities": ids,
                "user_attributes": {"tier": "silver", "n": n},
                "source_request_id": f"rb-r-{n}",
                "events": events,
            },
        )
        httpx.post(
            f"{url}/v2/events",
            auth=SERVER,
            json={  # a retry
                "user_identities": ids,
                "source_request_id": f"rb-r-{n}",
                "events": events,
            },
        )
        httpx.post(
            f"{url}/v2/events",
            auth=PARTNER,
            json={"user_identities": ids, "user_attributes": {"tier": "partner", "p": True}},
        )
        httpx.post(
            f"{url}/v2/events",
            auth=FEED,
            json={
                "user_identities": {"email": f"rb{n}@example.com", "customerid": customer},
                "user_attributes": {"vip": n % 2 == 0},
                "deleted_user_attributes": ["n"],
                "timestamp_unixtime_ms": now - 1000,
            },
        )
        httpx.post(
            f"{url}/v3/JS/web-key/events",
            content=json.dumps(
                {
                    "user_identities": {"customer_id": customer},
                    "mp_deviceid": f"das-{n}",
                    "device_info": {"platform": "web"},
                    "events": [{"event_type": "screen_view", "data": {"screen_name": "Home"}}],
                }
            ),
            headers={"x-forwarded-for": f"198.51.100.{n + 1}"},
        )
    return customers


def _profile(server: Server, customer: str) -> dict[str, Any]:
    profile = server.profile(identity=f"customer_id={customer}")
    assert profile is not None, customer
    return profile


def test_rebuild_reproduces_every_profile(server: Server, tmp_path: Path) -> None:
    customers = _traffic(server)
    live = {c: _profile(server, c) for c in customers}
    target = tmp_path / "rebuilt" / "kindred.db"
    result = server.cli("rebuild", "--into", f"sqlite:///{target}")
    tally = json.loads(result.stdout)
    assert tally["applied"] >= len(customers) * 4

    rebuilt = Server(
        data_dir=server.data_dir,
        config=server.config,
        env={**server.env, "KINDRED_STORE_URL": f"sqlite:///{target}"},
    )
    for customer in customers:
        assert _profile(rebuilt, customer) == live[customer]
    again = server.cli("rebuild", "--into", f"sqlite:///{target}", check=False)
    assert again.returncode != 0
    assert "already holds profiles" in again.stderr
