"""The Events API over raw HTTP: status codes, error paths, idempotence, protection levels,
guardrails, the web SDK path, and durability across a crash (ING-1..6, PRF-3..6)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

SERVER = ("server-key", "server-secret")
HOUR_MS = 3_600_000


def post(
    server: Server, path: str, body: Any, auth: tuple[str, str] | None = SERVER, **kwargs: Any
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}{path}", content=content, auth=auth, timeout=10, **kwargs)


def batch(customer: str, **fields: Any) -> dict[str, Any]:
    return {"environment": "development", "user_identities": {"customer_id": customer}, **fields}


def attrs(server: Server, customer: str) -> dict[str, Any]:
    profile = server.profile(identity=f"customer_id={customer}")
    assert profile is not None, customer
    workspace = profile["workspaces"]["1"]
    return {k: v["value"] for k, v in workspace["attributes"].items() if not v.get("deleted")}


def metric(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_status_codes(server: Server) -> None:
    assert post(server, "/v2/events", batch("s-1")).status_code == 202
    assert post(server, "/v2/events", batch("s-1"), auth=None).status_code == 401
    assert post(server, "/v2/events", batch("s-1"), auth=("server-key", "x")).status_code == 403
    assert post(server, "/v2/events", batch("s-1"), auth=("nobody", "x")).status_code == 403
    bad = post(server, "/v2/events", {"events": [{"event_type": "custom_event", "data": {}}]})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "BAD_REQUEST"
    assert "events[0].data" in bad.json()["errors"][0]["message"]
    assert "event_name" in bad.json()["errors"][0]["message"]
    assert post(server, "/v2/events", b"{not json").status_code == 400
    too_big = post(server, "/v2/events", b" " * 300_000)
    assert too_big.status_code == 413


def test_error_messages_name_the_field_path(server: Server) -> None:
    cases = {
        "mpid": {"mpid": 1.5},
        "user_identities.emial": {"user_identities": {"emial": "a@b.c"}},
        "events[1].event_type": {
            "events": [{"event_type": "session_start"}, {"event_type": "nope", "data": {}}]
        },
        "user_attributes.bio": batch("s-2", user_attributes={"bio": "x" * 5000}),
        "environment": {"environment": "prod"},
    }
    for path, body in cases.items():
        response = post(server, "/v2/events", body)
        assert response.status_code == 400, path
        assert f"`{path}`" in response.json()["errors"][0]["message"], response.text


def test_bulk_events(server: Server) -> None:
    ok = post(server, "/v2/bulkevents", [batch("b-1"), batch("b-2")])
    assert ok.status_code == 202
    assert server.profile(identity="customer_id=b-2") is not None
    bad = post(server, "/v2/bulkevents", [batch("b-3"), {"mpid": "abc"}])
    assert bad.status_code == 400
    assert "`[1].mpid`" in bad.json()["errors"][0]["message"]
    assert server.profile(identity="customer_id=b-3") is None
    assert post(server, "/v2/bulkevents", [batch("b-4")] * 101).status_code == 400


def test_historical_endpoint_accepts_only_old_events(server: Server) -> None:
    now = int(time.time() * 1000)

    def event(ts: int) -> dict[str, Any]:
        return {
            "event_type": "custom_event",
            "data": {
                "event_name": "Old",
                "custom_event_type": "other",
                "timestamp_unixtime_ms": ts,
            },
        }

    old = batch("h-1", events=[event(now - 80 * HOUR_MS)])
    recent = batch("h-2", events=[event(now - 10 * HOUR_MS)])
    assert post(server, "/v2/bulkevents/historical", [old]).status_code == 202
    refused = post(server, "/v2/bulkevents/historical", [recent])
    assert refused.status_code == 400
    assert "72 hours" in refused.text
    assert post(server, "/v2/bulkevents/historical", [batch("h-3")]).status_code == 400


def test_mpid_is_exact_as_string_or_number(server: Server) -> None:
    big = 9_007_199_254_740_993  # 2^53 + 1: a float would round it
    assert post(server, "/v2/events", {"mpid": str(big), **batch("m-1")}).status_code == 202
    profile = server.profile(mpid=str(big))
    assert profile is not None
    assert profile["mpid"] == str(big)
    negative = -8_461_384_837_716_447_251
    body = b'{"mpid": %d, "user_attributes": {"k": "v"}}' % negative
    assert post(server, "/v2/events", body).status_code == 202
    assert server.profile(mpid=str(negative)) is not None


def test_repeated_source_request_id_is_applied_once(server: Server) -> None:
    request_id = str(uuid.uuid4())
    event = {"event_type": "opt_out", "data": {"is_opted_out": True}}
    first = batch(
        "d-1", source_request_id=request_id, user_attributes={"n": "first"}, events=[event]
    )
    assert post(server, "/v2/events", first).status_code == 202
    later = batch("d-1", user_attributes={"n": "second"})
    assert post(server, "/v2/events", later).status_code == 202
    assert post(server, "/v2/events", first).status_code == 202  # the retry: 202, no effect
    assert attrs(server, "d-1")["n"] == "second"
    assert metric(server, "kindred_batches_total", input="server", status="duplicate") >= 1


def test_source_priority_and_timestamps(server: Server) -> None:
    now = int(time.time() * 1000)
    partner = ("partner-key", "partner-secret")
    feed = ("feed-key", "feed-secret")
    assert (
        post(
            server,
            "/v2/events",
            batch("p-1", user_attributes={"tier": "sdk"}, timestamp_unixtime_ms=now - 1000),
        ).status_code
        == 202
    )
    # a partner feed ranks below the SDK: it cannot overwrite
    post(server, "/v2/events", batch("p-1", user_attributes={"tier": "partner"}), auth=partner)
    assert attrs(server, "p-1")["tier"] == "sdk"
    # a custom feed ranks above: it can, and then the SDK no longer can
    post(server, "/v2/events", batch("p-1", user_attributes={"tier": "feed"}), auth=feed)
    post(server, "/v2/events", batch("p-1", user_attributes={"tier": "sdk-again"}))
    assert attrs(server, "p-1")["tier"] == "feed"
    # same priority: an older write arriving later does not win
    post(
        server,
        "/v2/events",
        batch("p-2", user_attributes={"c": "new"}, timestamp_unixtime_ms=now - 1000),
    )
    post(
        server,
        "/v2/events",
        batch("p-2", user_attributes={"c": "old"}, timestamp_unixtime_ms=now - 60_000),
    )
    assert attrs(server, "p-2")["c"] == "new"
    post(server, "/v2/events", batch("p-2", deleted_user_attributes=["c"]))
    assert "c" not in attrs(server, "p-2")


def test_input_protection_levels(server: Server) -> None:
    update_only = ("update-only-key", "update-only-secret")
    read_only = ("read-only-key", "read-only-secret")
    dropped_before = metric(server, "kindred_batches_total", input="update-only", status="dropped")
    assert (
        post(
            server, "/v2/events", batch("u-1", user_attributes={"a": "1"}), auth=update_only
        ).status_code
        == 202
    )
    assert server.profile(identity="customer_id=u-1") is None
    assert (
        metric(server, "kindred_batches_total", input="update-only", status="dropped")
        == dropped_before + 1
    )
    post(server, "/v2/events", batch("u-2"))
    post(server, "/v2/events", batch("u-2", user_attributes={"a": "1"}), auth=update_only)
    assert attrs(server, "u-2") == {"a": "1"}
    post(server, "/v2/events", batch("u-2", user_attributes={"b": "2"}), auth=read_only)
    post(server, "/v2/events", batch("u-3", user_attributes={"b": "2"}), auth=read_only)
    assert attrs(server, "u-2") == {"a": "1"}
    assert server.profile(identity="customer_id=u-3") is None


def test_attribute_cap_refuses_without_truncating(server: Server) -> None:
    many = {f"k{n}": str(n) for n in range(7)}  # the e2e config caps profiles at 5
    assert post(server, "/v2/events", batch("g-1", user_attributes=many)).status_code == 202
    kept = attrs(server, "g-1")
    assert len(kept) == 5
    assert all(many[k] == v for k, v in kept.items())
    assert metric(server, "kindred_refused_data_total", input="server", reason="attribute_cap") >= 2


def test_rate_limit_answers_429_with_integer_retry_after(server: Server) -> None:
    slow = ("slow-key", "slow-secret")
    codes = [post(server, "/v2/events", batch("r-1"), auth=slow) for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert limited[0].headers["Retry-After"].isdigit()
    assert int(limited[0].headers["Retry-After"]) >= 1


def test_bulk_requests_take_one_token_per_batch(server: Server) -> None:
    bulk_slow = ("bulk-slow-key", "bulk-slow-secret")  # 0.1 batches a second, burst 3
    too_many = post(server, "/v2/bulkevents", [batch(f"rb-{n}") for n in range(4)], auth=bulk_slow)
    assert too_many.status_code == 400  # no wait would let 4 through: it took 1 token
    assert "rate_limit_burst is 3" in too_many.text
    two = post(server, "/v2/bulkevents", [batch("rb-5"), batch("rb-6")], auth=bulk_slow)
    assert two.status_code == 202, two.text
    limited = post(server, "/v2/bulkevents", [batch("rb-7")], auth=bulk_slow)
    assert limited.status_code == 429, limited.text
    assert int(limited.headers["Retry-After"]) >= 1


def test_web_sdk_path_quarantines_instead_of_400(server: Server) -> None:
    das = str(uuid.uuid4())
    good = {
        "mpid": "-2843275718912345678",
        "environment": "development",
        "mp_deviceid": das,
        "consent_state": None,
        "user_identities": None,
        "device_info": {"platform": "web"},
        "events": [
            {"event_type": "screen_view", "data": {"screen_name": "Home", "location": None}}
        ],
    }
    headers = {"content-type": "text/plain;charset=UTF-8", "x-forwarded-for": "198.51.100.7"}
    ok = post(server, "/v3/JS/web-key/events", good, auth=None, headers=headers)
    assert ok.status_code == 202
    profile = server.profile(mpid="-2843275718912345678")
    assert profile is not None
    assert profile["ip"] == "198.51.100.7"
    bad = post(server, "/v3/JS/web-key/events", {"mpid": 1.5}, auth=None, headers=headers)
    assert bad.status_code == 202
    assert metric(server, "kindred_rejects_total", input="web", reason="quarantined") >= 1
    assert post(server, "/v3/JS/nope/events", good, auth=None).status_code == 403
    preflight = httpx.options(
        f"{server.url}/v3/JS/web-key/events",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_server_ip_comes_from_the_batch(server: Server) -> None:
    post(
        server,
        "/v2/events",
        batch("ip-1", ip="192.0.2.44"),
        headers={"x-forwarded-for": "10.9.9.9"},
    )
    profile = server.profile(identity="customer_id=ip-1")
    assert profile is not None
    assert profile["ip"] == "192.0.2.44"


def test_health_and_metrics(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        "kindred_batches_total",
        "kindred_events_total",
        "kindred_request_seconds",
        "kindred_commit_seconds",
    ):
        assert name in text


def test_batch_is_kept_through_a_crash_right_after_202(fresh_server: Server) -> None:
    body = batch(
        "crash-1",
        user_attributes={"survives": "yes"},
        events=[
            {
                "event_type": "custom_event",
                "data": {"event_name": "Buy", "custom_event_type": "transaction"},
            }
        ],
    )
    assert post(fresh_server, "/v2/events", body).status_code == 202
    fresh_server.kill()
    fresh_server.start()
    assert attrs(fresh_server, "crash-1") == {"survives": "yes"}


def test_every_batch_answered_202_survives_a_kill_under_load(fresh_server: Server) -> None:
    """Groups commit back to back and are answered after their sync (the fsync overlaps the
    next group): killed in the middle, every batch that had its 202 is stored, as a re-send
    of each shows (answered as a duplicate)."""
    acked: list[dict[str, Any]] = []
    stop = threading.Event()

    def send(sender: int) -> None:
        with httpx.Client(base_url=fresh_server.url, auth=SERVER, timeout=5) as client:
            n = 0
            while not stop.is_set():
                body = batch(f"load-{sender}-{n}", source_request_id=f"load-{sender}-{n}")
                try:
                    answer = client.post("/v2/events", content=json.dumps(body).encode())
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 202:
                    acked.append(body)
                n += 1

    senders = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in senders:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh_server.kill()  # while the senders still send
    stop.set()
    for thread in senders:
        thread.join(10)
    assert len(acked) >= 200
    fresh_server.start()
    for body in acked:
        assert post(fresh_server, "/v2/events", body).status_code == 202
    duplicates = metric(fresh_server, "kindred_batches_total", input="server", status="duplicate")
    assert duplicates == len(acked)
