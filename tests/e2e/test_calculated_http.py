"""Calculated attributes against a real server: definitions through the admin API,
batches from the real `mparticle` SDK changing values seen through the Profile API, a
windowed count decaying as the server's clock moves, use in audience criteria, seeds,
and activation computing over the stored history."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mparticle
import pytest

from tests.e2e.conftest import Server, make_server
from tests.e2e.test_forwarding_http import _forwarding_server
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

ADMIN = {"authorization": "Bearer e2e-admin-token"}
SERVER = ("server-key", "server-secret")
DAY_MS = 86_400_000
PLAYS_7D = {
    "calculation_type": "count",
    "event": {"event": "custom_event", "name": "Play"},
    "window": {"type": "within", "days": 7},
}
SONGS = {
    "calculation_type": "unique_list",
    "event": {"event": "custom_event", "name": "Play"},
    "attribute": "song",
}
LISTENED = {
    "calculation_type": "sum",
    "event": {
        "event": "custom_event",
        "name": "Play",
        "where": [{"attribute": "length", "op": "gt", "value": 0}],
    },
    "attribute": "length",
}


def admin(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}/admin/v1{path}", json=body, headers=ADMIN)


def define(server: Server, name: str, definition: dict[str, Any], *, activate: bool = True) -> int:
    created = admin(
        server,
        "POST",
        "/calculated-attributes",
        {"name": name, "workspace_id": 1, "definition": definition},
    )
    assert created.status_code == 201, created.text
    def_id = int(created.json()["id"])
    if activate:
        activated = admin(server, "POST", f"/calculated-attributes/{def_id}/activation")
        assert activated.status_code == 200, activated.text
    return def_id


def sdk_send(server: Server, customer: str, songs: list[tuple[str, int]]) -> None:
    config = mparticle.Configuration()
    config.host = f"{server.url}/v2"
    config.api_key, config.api_secret = SERVER
    batch = mparticle.Batch()
    batch.environment = "development"
    identities = mparticle.UserIdentities()
    identities.customerid = customer
    batch.user_identities = identities
    events = []
    for song, length in songs:
        play = mparticle.AppEvent(event_name="Play", custom_event_type="navigation")
        play.custom_attributes = {"song": song, "length": length}
        events.append(play)
    batch.events = events
    mparticle.EventsApi(config).upload_events(batch)


def token(server: Server) -> str:
    body = {
        "client_id": "e2e-client",
        "client_secret": "e2e-secret",
        "audience": "https://api.mparticle.com",
        "grant_type": "client_credentials",
    }
    response = httpx.post(f"{server.url}/oauth/token", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def user_attributes(server: Server, mpid: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/userprofile/v1/1/1/1/{mpid}",
        params={"fields": "user_attributes"},
        headers={"Authorization": f"Bearer {token(server)}"},
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["user_attributes"]
    return found


def mpid_of(server: Server, customer: str) -> str:
    profile = server.profile(identity=f"customer_id={customer}")
    assert profile is not None
    return str(profile["mpid"])


def eventually(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def timed_server(tmp_path: Path) -> Any:
    clock = tmp_path / "offset-ms"
    clock.write_text("0")
    server = make_server(tmp_path, clock_file=clock)
    server.start()
    yield server, clock
    server.stop()


def test_sdk_batches_change_values_and_a_window_decays_with_time(timed_server: Any) -> None:
    server, clock = timed_server
    define(server, "plays_7d", PLAYS_7D)
    define(server, "songs", SONGS)
    define(server, "listened", LISTENED)
    heavy = admin(
        server,
        "POST",
        "/audiences",
        {
            "name": "Heavy",
            "workspaces": [1],
            "criteria": {"attribute": "plays_7d", "op": "ge", "value": 2},
        },
    ).json()
    admin(server, "POST", f"/audiences/{heavy['id']}/activate")

    sdk_send(server, "ca-1", [("So What", 562), ("Blue in Green", 337)])
    mpid = mpid_of(server, "ca-1")
    assert user_attributes(server, mpid) == {
        "plays_7d": "2",
        "songs": ["Blue in Green", "So What"],
        "listened": "899",
    }
    sdk_send(server, "ca-1", [("So What", 100)])
    assert user_attributes(server, mpid) == {
        "plays_7d": "3",
        "songs": ["Blue in Green", "So What"],
        "listened": "999",
    }
    members = f"/audiences/{heavy['id']}/members"
    assert admin(server, "GET", members).json()["mpids"] == [mpid]

    clock.write_text(str(8 * DAY_MS))  # past the window, with no new event
    assert user_attributes(server, mpid) == {
        "plays_7d": "0",
        "songs": ["Blue in Green", "So What"],
        "listened": "999",
    }
    eventually(
        lambda: admin(server, "GET", members).json()["mpids"] == [],
        "the scheduler did not move the user out as the count decayed",
    )
    stored = server.profile(mpid=mpid)
    assert stored is not None
    assert stored["workspaces"]["1"]["attributes"]["plays_7d"]["value"] == 0


def test_calculated_values_win_over_every_other_source(server: Server) -> None:
    define(server, "plays_total", {**PLAYS_7D, "window": {"type": "lifetime"}})
    sdk_send(server, "ca-2", [("So What", 1)])
    batch = {"user_identities": {"customer_id": "ca-2"}, "user_attributes": {"plays_total": 99}}
    assert httpx.post(f"{server.url}/v2/events", json=batch, auth=SERVER).status_code == 202
    assert user_attributes(server, mpid_of(server, "ca-2"))["plays_total"] == "1"


def test_invalid_definitions_are_refused_with_the_path(server: Server) -> None:
    bad = admin(
        server,
        "POST",
        "/calculated-attributes",
        {"name": "x", "workspace_id": 1, "definition": {**SONGS, "window": {"type": "within"}}},
    )
    assert bad.status_code == 400
    assert "definition.window" in bad.json()["errors"][0]["message"]
    no_attribute = {"calculation_type": "sum", "event": {"event": "custom_event"}}
    bad = admin(
        server,
        "POST",
        "/calculated-attributes",
        {"name": "y", "workspace_id": 1, "definition": no_attribute},
    )
    assert bad.status_code == 400
    assert "definition.attribute" in bad.json()["errors"][0]["message"]
    assert httpx.get(f"{server.url}/admin/v1/calculated-attributes").status_code == 401


def test_a_seed_starts_the_value_and_the_seeded_period_is_not_counted_twice(
    server: Server,
) -> None:
    define(server, "plays_seeded", {**PLAYS_7D, "window": {"type": "lifetime"}})
    now = int(time.time() * 1000)
    old = [play(now - 2 * DAY_MS), play(now - 2 * DAY_MS)]  # before the cutoff: in the seed
    batch = {"user_identities": {"customer_id": "ca-3"}, "events": [*old, play(now)]}
    assert httpx.post(f"{server.url}/v2/events", json=batch, auth=SERVER).status_code == 202
    mpid = mpid_of(server, "ca-3")
    assert user_attributes(server, mpid)["plays_seeded"] == "3"
    yesterday = datetime.datetime.fromtimestamp(now / 1000 - 86_400, tz=datetime.UTC).date()
    entry = {
        "attribute_name": "plays_seeded",
        "calculation_type": "count",
        "cutoff_date": yesterday.isoformat(),
        "seed": {"value": 40},
    }
    seed = {
        "environment": "production",
        "identities": {"customer_id": "ca-3"},
        "calculated_attributes": {"workspace": [entry]},
    }
    response = httpx.post(f"{server.url}/v2/calculatedattributes", json=seed, auth=SERVER)
    assert response.status_code == 202, response.text
    assert user_attributes(server, mpid)["plays_seeded"] == "41"  # the seed and today's play
    sdk_send(server, "ca-3", [("New", 3)])
    assert user_attributes(server, mpid)["plays_seeded"] == "42"

    unknown = {**seed, "calculated_attributes": {"workspace": [{**entry, "attribute_name": "no"}]}}
    refused = httpx.post(f"{server.url}/v2/bulkcalculatedattributes", json=[unknown], auth=SERVER)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["message"].startswith("no:")


def play(ts_ms: int) -> dict[str, Any]:
    data = {"event_name": "Play", "custom_event_type": "other", "timestamp_unixtime_ms": ts_ms}
    return {"event_type": "custom_event", "data": data}


def test_activation_computes_over_the_stored_history(server: Server) -> None:
    sdk_send(server, "ca-4", [("A", 10), ("B", 20), ("A", 30)])
    def_id = define(server, "favourite", {**SONGS, "calculation_type": "most_frequent"})

    def done() -> bool:
        progress = admin(server, "GET", f"/calculated-attributes/{def_id}/calculation").json()
        return bool(progress["is_calculated"])

    eventually(done, "the computation over the stored history did not finish")
    progress = admin(server, "GET", f"/calculated-attributes/{def_id}/calculation").json()
    assert progress["calculation_percent_complete"] == 100
    assert user_attributes(server, mpid_of(server, "ca-4"))["favourite"] == "A"


def test_the_cli_manages_definitions_and_computes_the_history(server: Server) -> None:
    sdk_send(server, "ca-5", [("X", 5), ("Y", 6)])
    path = server.data_dir.parent / "longest.json"
    path.write_text(
        json.dumps(
            {
                "name": "longest",
                "workspace_id": 1,
                "definition": {**LISTENED, "calculation_type": "max"},
            }
        )
    )
    created = json.loads(server.cli("attributes", "create", str(path)).stdout)
    def_id = str(created["id"])
    assert created["status"] == "draft"
    bad = server.data_dir.parent / "bad.json"
    bad.write_text(json.dumps({"calculation_type": "max", "event": {"event": "custom_event"}}))
    refused = server.cli("attributes", "edit", def_id, str(bad), check=False)
    assert refused.returncode == 1
    assert "definition.attribute" in refused.stderr
    server.cli("attributes", "activate", def_id)
    server.cli("attributes", "compute")
    shown = json.loads(server.cli("attributes", "show", def_id).stdout)
    assert shown["calculation"]["is_calculated"] is True
    assert user_attributes(server, mpid_of(server, "ca-5"))["longest"] == "6"
    listed = json.loads(server.cli("attributes", "list").stdout)
    assert "longest" in [d["name"] for d in listed]
    server.cli("attributes", "delete", def_id)
    listed = json.loads(server.cli("attributes", "list").stdout)
    assert "longest" not in [d["name"] for d in listed]
    # Gone from reads at once (within the server's reload of definitions), before the
    # profile's next batch drops the state.
    eventually(
        lambda: "longest" not in user_attributes(server, mpid_of(server, "ca-5")),
        "a deleted definition's value is still read",
    )


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[tuple[Server, Receiver]]:
    with receiving() as receiver:
        running = _forwarding_server(tmp_path, receiver, workers=1)
        server = next(running)
        try:
            yield server, receiver
        finally:
            next(running, None)  # runs on past its yield: stops the server


def test_forwarded_events_are_enriched_with_calculated_values(
    hooked: tuple[Server, Receiver],
) -> None:
    server, receiver = hooked
    define(server, "plays_forwarded", {**PLAYS_7D, "window": {"type": "lifetime"}})
    sdk_send(server, "ca-6", [("So What", 1), ("Blue in Green", 2)])
    (message,) = receiver.wait_for(1, timeout_s=15)
    assert message["user_attributes"]["plays_forwarded"] == 2
