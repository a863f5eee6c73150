"""A store out of room (the SQLite database at its size limit fails writes exactly as a full
disk does): batches are refused with 503 and Retry-After, nothing accepted before is lost,
reads go on, and with room again (here: a larger limit after a restart) writes resume."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CONFIG, Server, make_server

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")


def capped(tmp: Path, megabytes: int) -> Path:
    config = tmp / "kindred.toml"
    config.write_text(
        CONFIG.read_text().replace(
            "[server]\n", f"[store]\nsqlite_max_size_mb = {megabytes}\n\n[server]\n", 1
        )
    )
    return config


def send(server: Server, n: int) -> httpx.Response:
    batch = {
        "environment": "production",
        "source_request_id": f"full-{n}",
        "user_identities": {"customerid": f"full-{n}", "email": f"full-{n}@example.com"},
        "user_attributes": {"bio": "x" * 1500},
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Play", "custom_event_type": "other"},
            }
        ],
    }
    return httpx.post(f"{server.url}/v2/events", json=batch, auth=SERVER, timeout=10)


def test_a_full_store_refuses_batches_and_loses_none_it_accepted(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.config = capped(tmp_path, 1)
    server.start()
    accepted: list[int] = []
    try:
        for n in range(2000):
            answer = send(server, n)
            if answer.status_code != 202:
                break
            accepted.append(n)
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        error = answer.json()["errors"][0]
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert "full" in error["message"]
        assert accepted, "the store filled before it took one batch"
        # Sent again, the refused batch fits or is refused again; either way, nothing lost.
        again = send(server, accepted[-1] + 1)
        assert again.status_code in {202, 503}
        if again.status_code == 202:
            accepted.append(accepted[-1] + 1)
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert server.profile(identity=f"customer_id=full-{accepted[-1]}") is not None
    finally:
        server.stop()
    with sqlite3.connect(server.data_dir / "kindred.db") as db:
        logged = {row[0] for row in db.execute("SELECT source_request_id FROM event_log")}
    assert logged >= {f"full-{n}" for n in accepted}

    server.config = capped(tmp_path, 64)  # room again
    server.start()
    try:
        assert send(server, 100_000).status_code == 202
        assert server.profile(identity=f"customer_id=full-{accepted[0]}") is not None
    finally:
        server.stop()
