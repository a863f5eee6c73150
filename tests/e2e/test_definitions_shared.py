"""Two server processes on one store: a definition changed through one is used by the
other from its very next transaction (no refresh interval in which batches miss it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, make_server
from tests.pg import pg_url, temporary_database

pytestmark = pytest.mark.e2e

ADMIN = {"authorization": "Bearer e2e-admin-token"}
SERVER = ("server-key", "server-secret")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two `kindred serve` processes sharing one store (SQLite: one data directory)."""
    database: AbstractContextManager[str | None] = (
        temporary_database() if request.param == "postgres" else nullcontext(None)
    )
    with database as conninfo:
        url = pg_url(conninfo) if conninfo else None
        first, second = make_server(tmp_path, store_url=url), make_server(tmp_path, store_url=url)
        first.start()
        second.start()
        try:
            yield first, second
        finally:
            second.stop()
            first.stop()


def _admin(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}/admin/v1{path}", json=body, headers=ADMIN)


def _play_batch(customer: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    data = {"event_name": "Play", "custom_event_type": "other", "timestamp_unixtime_ms": now}
    return {
        "user_identities": {"customer_id": customer},
        "events": [{"event_type": "custom_event", "data": data}],
    }


def test_an_audience_activated_in_one_process_counts_the_next_batch_of_another(
    two_servers: tuple[Server, Server],
) -> None:
    first, second = two_servers
    # Both processes have loaded the (empty) audience set before the activation.
    for server, customer in ((first, "warm-1"), (second, "warm-2")):
        sent = httpx.post(f"{server.url}/v2/events", json=_play_batch(customer), auth=SERVER)
        assert sent.status_code == 202
    created = _admin(
        first,
        "POST",
        "/audiences",
        {
            "name": "Players",
            "workspaces": [1],
            "criteria": {"event": "custom_event", "name": "play", "within_days": 7},
        },
    )
    assert created.status_code == 201, created.text
    audience_id = created.json()["id"]
    activated = _admin(first, "POST", f"/audiences/{audience_id}/activate")
    assert activated.json()["status"] == "active", activated.text

    # At once, to the other process: an event audience keeps only the events that arrive
    # while it is active, so a process that did not know of it would never count this one.
    sent = httpx.post(f"{second.url}/v2/events", json=_play_batch("fresh-1"), auth=SERVER)
    assert sent.status_code == 202
    profile = second.profile(identity="customer_id=fresh-1")
    assert profile is not None
    members = _admin(second, "GET", f"/audiences/{audience_id}/members")
    assert members.status_code == 200, members.text
    assert str(profile["mpid"]) in [str(m) for m in members.json()["mpids"]]
