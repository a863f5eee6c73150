"""The real server on the PostgreSQL store: the same behaviour as on SQLite (OPS-2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, make_server
from tests.pg import pg_url, temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

AUTH = ("server-key", "server-secret")


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[Server]:
    with temporary_database() as conninfo:
        server = make_server(tmp_path, store_url=pg_url(conninfo))
        server.start()
        yield server
        server.stop()


def test_batches_build_profiles_on_postgres_and_survive_a_crash(pg_server: Server) -> None:
    body = {
        "environment": "development",
        "source_request_id": "pg-r-1",
        "user_identities": {"customerid": "pg-1", "email": "pg1@example.com"},
        "user_attributes": {"tier": "gold"},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "Play",
                    "custom_event_type": "navigation",
                    "source_message_id": "pg-m-1",
                },
            }
        ],
    }
    url = f"{pg_server.url}/v2/events"
    assert httpx.post(url, json=body, auth=AUTH).status_code == 202
    assert httpx.post(url, json=body, auth=AUTH).status_code == 202  # a retry: applied once
    bulk = [
        {"user_identities": {"customer_id": "pg-2"}, "user_attributes": {"n": 1}},
        {
            "user_identities": {"email": "pg1@example.com", "customerid": "pg-1"},
            "user_attributes": {"tier": "platinum"},
        },
    ]
    assert httpx.post(f"{pg_server.url}/v2/bulkevents", json=bulk, auth=AUTH).status_code == 202
    pg_server.kill()
    pg_server.start()
    profile = pg_server.profile(identity="email=pg1@example.com")
    assert profile is not None
    assert profile["user_identities"]["customer_id"]["value"] == "pg-1"
    assert profile["workspaces"]["1"]["attributes"]["tier"]["value"] == "platinum"
    assert profile["version"] == 2  # the retried batch did not apply twice
    assert pg_server.profile(identity="customer_id=pg-2") is not None
