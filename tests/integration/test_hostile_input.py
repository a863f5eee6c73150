"""Bad input gets a 4xx naming the field, never a 500 (SEC-2), on every route: JSON nested
too deep, integers beyond 64 bits in paths, queries and bodies, timestamps outside the years
1970 to 9999; web batches are quarantined instead (202). The real ASGI app in this process."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import msgspec
import pytest

from kindred.api.app import create_app
from kindred.bootstrap import Container
from kindred.domain.observation import ConsentFact, EventFact, Observation
from kindred.services.writes.commands import Accepted
from kindred.wire.limits import INSTANT_END_MS, MAX_JSON_DEPTH
from tests.integration.hostile import (
    ADMIN,
    SERVER_AUTH,
    WEB_EVENTS,
    WEB_KEY,
    Client,
    refusal,
    serving,
)

BIG = 99_999_999_999_999_999_999  # beyond 64 bits


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Container]]:
    yield from serving(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def client(app: tuple[Client, Container]) -> Client:
    return app[0]


@pytest.fixture
def container(app: tuple[Client, Container]) -> Container:
    return app[1]


def deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def batch(customer_id: str, **fields: Any) -> dict[str, Any]:
    return {"environment": "production", "user_identities": {"customerid": customer_id}, **fields}


# --- nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, 900, 5_000])
def test_events_refuse_a_body_nested_too_deep(client: Client, depth: int) -> None:
    body = '{"environment":"production","user_identities":{"customerid":"deep"},"device_info":'
    answer = client.post("/v2/events", content=body + deep(depth) + "}", auth=SERVER_AUTH)
    if 1 + depth <= MAX_JSON_DEPTH:  # the batch itself is the first level
        assert answer.status_code == 202, answer.text
        return
    message = refusal(answer, "device_info.a.a")
    assert f"nests deeper than {MAX_JSON_DEPTH} levels" in message


def test_bulk_events_refuse_a_batch_nested_too_deep(client: Client) -> None:
    body = '[{"environment":"production"},{"environment":"production","x":' + deep(5_000) + "}]"
    refusal(client.post("/v2/bulkevents", content=body, auth=SERVER_AUTH), "[1].x.a.a")


def test_a_web_batch_nested_too_deep_is_quarantined(client: Client, container: Container) -> None:
    body = '{"environment":"production","mpid":"77","x":' + deep(5_000) + "}"
    answer = client.post(WEB_EVENTS, content=body, headers={"content-type": "text/plain"})
    assert answer.status_code == 202, answer.text
    kept = container.store.list_rejects("quarantined", 100)
    assert any(r.body == body.encode() and "nests deeper" in r.reason for r in kept)
    # The Live Stream shows it (as text) without reading into it.
    live = client.get("/ui/live", params={"environment": "all"})
    assert live.status_code == 200
    assert "nests deeper" in live.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/identify", '{"environment":"production","known_identities":{"email":"d@x.y"},"x":'),
        ("/v1/login", '{"environment":"production","known_identities":{"email":"d@x.y"},"x":'),
        ("/v1/77/modify", '{"identity_changes":[],"x":'),
        ("/webevents/v1/identity/web-key/Alias", '{"data":{},"x":'),
    ],
)
def test_idsync_refuses_a_body_nested_too_deep(client: Client, path: str, body: str) -> None:
    answer = client.post(path, content=body + deep(5_000) + "}", headers=WEB_KEY)
    refusal(answer, "x.a.a")
    assert answer.json()["Errors"] == answer.json()["errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/v1/audiences",
        "/admin/v1/calculated-attributes",
        "/admin/v1/alias",
        "/admin/v1/outputs",
        "/admin/v1/connections/events",
        "/admin/v1/dead-letters/replay",
    ],
)
def test_admin_bodies_nested_too_deep_are_refused(client: Client, path: str) -> None:
    answer = client.post(path, content='{"x":' + deep(5_000) + "}", headers=ADMIN)
    refusal(answer, "x.a.a")


def test_the_profile_api_and_tokens_refuse_bodies_nested_too_deep(client: Client) -> None:
    token = client.post("/oauth/token", content='{"x":' + deep(5_000) + "}")
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_request"
    granted = client.post(
        "/oauth/token",
        json={
            "client_id": "e2e-client",
            "client_secret": "e2e-secret",
            "grant_type": "client_credentials",
        },
    )
    bearer = {"authorization": f"Bearer {granted.json()['access_token']}"}
    answer = client.post(
        "/userprofile/v1/resolve/1/1/1?fields=user_identities",
        content='{"x":' + deep(5_000) + "}",
        headers=bearer,
    )
    refusal(answer, "x.a.a")


# --- integers beyond 64 bits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", f"/admin/v1/merges?mpid={BIG}", None, "mpid"),
        ("GET", f"/admin/v1/merges?limit={BIG}", None, "limit"),
        ("POST", f"/admin/v1/merges/{BIG}/unmerge", None, "merge_id"),
        ("GET", f"/admin/v1/audiences/{BIG}", None, "audience_id"),
        ("PUT", f"/admin/v1/audiences/{BIG}", {}, "audience_id"),
        ("DELETE", f"/admin/v1/audiences/{BIG}", None, "audience_id"),
        ("POST", f"/admin/v1/audiences/{BIG}/activate", None, "audience_id"),
        ("GET", f"/admin/v1/audiences/{BIG}/metrics", None, "audience_id"),
        ("GET", f"/admin/v1/audiences/1/members?at={BIG}", None, "at"),
        ("GET", f"/admin/v1/profiles/{BIG}/audiences", None, "mpid"),
        ("GET", f"/admin/v1/profiles/1/audiences?at={BIG}", None, "at"),
        ("GET", f"/admin/v1/calculated-attributes/{BIG}", None, "def_id"),
        ("POST", f"/admin/v1/calculated-attributes/{BIG}/activation", None, "def_id"),
        ("GET", f"/admin/v1/dead-letters?limit={BIG}", None, "limit"),
        ("POST", "/admin/v1/dead-letters/replay", {"ids": [1, BIG]}, "ids[1]"),
        (
            "POST",
            "/admin/v1/alias",
            {
                "source_mpid": 1,
                "destination_mpid": 2,
                "start_unixtime_ms": 0,
                "end_unixtime_ms": BIG,
            },
            "end_unixtime_ms",
        ),
        (
            "POST",
            "/admin/v1/audiences",
            {"name": "a", "workspaces": [BIG], "criteria": {"attribute": "t", "op": "exists"}},
            "workspaces[0]",
        ),
        (
            "POST",
            "/admin/v1/audiences",
            {
                "name": "a",
                "workspaces": [1],
                "criteria": {"attribute": "n", "op": "equals", "value": BIG},
            },
            "criteria.value",
        ),
        (
            "POST",
            "/admin/v1/audiences",
            {
                "name": "a",
                "workspaces": [1],
                "lookback_days": 2**62,
                "criteria": {"attribute": "t", "op": "exists"},
            },
            "lookback_days",
        ),
        (
            "POST",
            "/admin/v1/audiences",
            {
                "name": "a",
                "workspaces": [1],
                "criteria": {"event": "custom_event", "within_days": 2**62},
            },
            "criteria.within_days",
        ),
        (
            "POST",
            "/admin/v1/audiences",
            {
                "name": "a",
                "workspaces": [1],
                "criteria": {"attribute": "d", "op": "within_last_days", "value": 2**62},
            },
            "criteria.value",
        ),
        (
            "POST",
            "/admin/v1/calculated-attributes",
            {"name": "c", "workspace_id": BIG, "definition": {}},
            "workspace_id",
        ),
        (
            "POST",
            "/admin/v1/connections/audiences",
            {"name": "c", "audience_id": BIG, "output": "o"},
            "audience_id",
        ),
    ],
)
def test_admin_integers_beyond_64_bits_are_refused_naming_them(
    client: Client, method: str, path: str, body: object, field: str
) -> None:
    answer = client.request(method, path, json=body, headers=ADMIN)
    refusal(answer, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v2/events", batch("i1", mpid=BIG), "mpid"),
        ("/v2/events", batch("i2", user_attributes={"n": BIG}), "user_attributes"),
        ("/v2/events", batch("i3", schema_version=-BIG), "schema_version"),
        (
            "/v2/events",
            batch("i4", events=[{"event_type": "session_start", "data": {"session_id": BIG}}]),
            "events[0].data.session_id",
        ),
        (
            "/v2/bulkevents",
            [
                batch("i5"),
                batch("i5", events=[{"event_type": "first_run", "data": {"event_id": BIG}}]),
            ],
            "[1].events[0].data.event_id",
        ),
    ],
)
def test_ingest_integers_beyond_64_bits_are_refused_naming_them(
    client: Client, path: str, body: object, field: str
) -> None:
    refusal(client.post(path, json=body, auth=SERVER_AUTH), field)


def test_idsync_integers_beyond_64_bits_are_refused_naming_them(client: Client) -> None:
    identify = {
        "environment": "production",
        "request_timestamp_ms": BIG,
        "known_identities": {"email": "big@x.y"},
    }
    refusal(client.post("/v1/identify", json=identify, headers=WEB_KEY), "request_timestamp_ms")
    refusal(
        client.post(f"/v1/{BIG}/modify", json={"identity_changes": []}, headers=WEB_KEY), "mpid"
    )
    alias = {
        "data": {
            "source_mpid": "1",
            "destination_mpid": "2",
            "start_unixtime_ms": -BIG,
            "end_unixtime_ms": 1,
        }
    }
    answer = client.post("/v1/identity/web-key/Alias", json=alias)
    refusal(answer, "data.start_unixtime_ms")


def test_ui_parameters_beyond_64_bits_are_refused_naming_them(client: Client) -> None:
    for path, field in [
        (f"/ui/profiles/{BIG}", "mpid"),
        (f"/ui/profiles?type=mpid&q={BIG}", "q"),
        (f"/ui/audiences/{BIG}", "audience_id"),
    ]:
        answer = client.get(path)
        assert answer.status_code == 400, path
        assert f"`{field}`" in answer.text, answer.text
    refusal(client.get(f"/ui/api/live?after={BIG}-0"), "after")


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (batch("ts1", timestamp_unixtime_ms=INSTANT_END_MS), "timestamp_unixtime_ms"),
        (batch("ts2", timestamp_unixtime_ms=-1), "timestamp_unixtime_ms"),
        (
            batch(
                "ts3", events=[{"event_type": "first_run", "data": {"timestamp_unixtime_ms": BIG}}]
            ),
            "events[0].data.timestamp_unixtime_ms",
        ),
        (
            batch(
                "ts4",
                consent_state={
                    "ccpa": {
                        "data_sale_opt_out": {"consented": True, "timestamp_unixtime_ms": -(2**63)}
                    }
                },
            ),
            "consent_state.ccpa",
        ),
    ],
)
def test_timestamps_outside_the_years_1970_to_9999_are_refused(
    client: Client, container: Container, body: dict[str, Any], field: str
) -> None:
    refusal(client.post("/v2/events", json=body, auth=SERVER_AUTH), field)
    web = client.post(WEB_EVENTS, json=body)
    assert web.status_code == 202
    reasons = [r.reason for r in container.store.list_rejects("quarantined", 100)]
    assert any(f"`{field}" in reason for reason in reasons), reasons


def test_the_last_instant_of_9999_is_accepted_and_shown(client: Client) -> None:
    last = INSTANT_END_MS - 1
    body = batch(
        "ts-last",
        timestamp_unixtime_ms=last,
        events=[{"event_type": "first_run", "data": {"timestamp_unixtime_ms": last}}],
    )
    assert client.post("/v2/events", json=body, auth=SERVER_AUTH).status_code == 202
    found = client.get("/ui/profiles?type=customer_id&q=ts-last", follow_redirects=True)
    assert found.status_code == 200
    assert "9999-12-31 23:59:59 UTC" in found.text


def test_a_profile_page_shows_any_stored_instant(client: Client, container: Container) -> None:
    """Values stored before the range was checked (one batch with an event in the year
    10000 and a batch timestamp of -1 once broke the profile's page for good) render as
    their raw numbers."""
    source = container.tenancy.inputs_by_name["server"]
    now = container.clock.now_ms()
    body = msgspec.json.encode(
        batch(
            "stored-odd",
            timestamp_unixtime_ms=-1,
            user_attributes={"tier": "gold"},
            consent_state={"gdpr": {"p": {"consented": True, "timestamp_unixtime_ms": -(2**62)}}},
            events=[
                {"event_type": "first_run", "data": {"timestamp_unixtime_ms": INSTANT_END_MS}},
                {"event_type": "first_run", "data": {"timestamp_unixtime_ms": BIG}},
                {"event_type": "first_run", "data": {"timestamp_unixtime_ms": -(2**63)}},
            ],
        )
    )
    consent = ConsentFact(consented=True, timestamp_ms=-(2**62))
    observation = Observation(
        received_ms=now,
        effective_ms=-1,  # a batch timestamp of -1, kept as the attributes' write time
        user_identities={"customer_id": "stored-odd"},
        user_attributes={"tier": "gold"},
        gdpr={"p": consent},
        events=(
            EventFact(event_type="first_run", timestamp_ms=INSTANT_END_MS),
            EventFact(event_type="first_run", timestamp_ms=2**63 - 1),
            EventFact(event_type="first_run", timestamp_ms=-(2**63)),
        ),
    )
    outcome = container.writer.submit(Accepted(source, observation, body)).result(timeout=30)
    assert outcome.mpid is not None
    page = client.get(f"/ui/profiles/{outcome.mpid}")
    assert page.status_code == 200, page.text
    for raw in (INSTANT_END_MS, BIG, -(2**63), -(2**62)):
        assert str(raw) in page.text
    assert "<td>-1</td>" in page.text  # the attribute's write time
    # The same batch on the Live Stream and in the audiences' pages.
    assert client.get("/ui/live", params={"environment": "all"}).status_code == 200
    assert client.get("/ui/audiences").status_code == 200


# --- bytes that are not UTF-8, loose integers, odd headers ------------------------------

NOT_UTF8 = b'{"environment":"production","user_identities":{"customerid":"x\xff"}}'


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/events", None),
        ("/v1/identify", WEB_KEY),
        ("/webevents/v1/identity/web-key/Alias", WEB_KEY),
        ("/admin/v1/audiences", ADMIN),
        ("/admin/v1/audiences/estimate", ADMIN),
        ("/admin/v1/outputs", ADMIN),
        ("/admin/v1/connections/audiences", ADMIN),
        ("/admin/v1/profiles/delete", ADMIN),
    ],
)
def test_a_body_that_is_not_utf8_is_refused_naming_it(
    client: Client, path: str, headers: dict[str, str] | None
) -> None:
    if headers is None:
        answer = client.post(path, content=NOT_UTF8, auth=SERVER_AUTH)
    else:
        answer = client.post(path, content=NOT_UTF8, headers=headers)
    message = refusal(answer, "body")
    assert "not UTF-8: byte 62 (0xff)" in message


def test_bulk_events_refuse_a_body_that_is_not_utf8(client: Client) -> None:
    answer = client.post("/v2/bulkevents", content=b"[" + NOT_UTF8 + b"]", auth=SERVER_AUTH)
    assert answer.status_code == 400, answer.text
    assert "not UTF-8" in answer.text


def test_a_web_batch_that_is_not_utf8_is_quarantined(client: Client, container: Container) -> None:
    answer = client.post(WEB_EVENTS, content=NOT_UTF8, headers={"content-type": "text/plain"})
    assert answer.status_code == 202, answer.text
    kept = container.store.list_rejects("quarantined", 100)
    assert any(r.body == NOT_UTF8 and "not UTF-8" in r.reason for r in kept)
    assert client.get("/ui/live", params={"environment": "all"}).status_code == 200


@pytest.mark.parametrize("text", ["1_0", "%201", "+1", "%D9%A1", "%C2%B2", "9" * 50])
def test_an_id_in_a_path_is_ascii_digits_or_refused(client: Client, text: str) -> None:
    made = client.post(
        "/admin/v1/audiences",
        json={
            "name": "kept",
            "workspaces": [1],
            "criteria": {"attribute": "tier", "op": "equals", "value": "gold"},
        },
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    for method, path in (
        ("DELETE", f"/admin/v1/audiences/{text}"),
        ("GET", f"/admin/v1/audiences/{text}"),
        ("DELETE", f"/admin/v1/calculated-attributes/{text}"),
    ):
        answer = client.request(method, path, headers=ADMIN)
        assert answer.status_code == 400, (method, path, answer.text)
    assert client.get(f"/admin/v1/audiences/{made.json()['id']}", headers=ADMIN).status_code == 200
    profile = client.get(f"/userprofile/v1/1/1/1/{text}?fields=user_identities")
    assert profile.status_code in (400, 401), profile.text  # never read as another id


@pytest.mark.parametrize("text", ["%C2%B2", "9" * 5_000])
def test_ui_ids_and_numbers_that_python_reads_loosely_are_no_500(client: Client, text: str) -> None:
    for path in (
        f"/ui/api/audiences/suggestions?workspaces={text}",
        f"/ui/calculated/{text}",
    ):
        assert client.get(path).status_code < 500, path


def test_a_basic_header_beyond_ascii_is_refused(client: Client) -> None:
    answer = client.post(
        "/v2/events",
        content=b'{"environment":"production"}',
        headers={"authorization": b"Basic \xff\xfe"},
    )
    assert answer.status_code == 403, answer.text  # as any malformed credential
    assert "not valid base64" in answer.text


def test_a_csv_cell_over_the_readers_limit_is_a_row_error(client: Client) -> None:
    body = "customer_id,email\nok-1,a@b.c\n" + "c" * 200_000 + ",x@y.z\n"
    answer = client.post(
        "/v2/import/csv",
        content=body.encode(),
        headers={"content-type": "text/csv"},
        auth=("csv-key", "csv-secret"),
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["applied"] == 1  # the row before it stands
    ((line, reason),) = [(e["line"], e["error"]) for e in report["errors"]]
    assert line == 3
    assert "not CSV, reading stopped: field larger than field limit" in reason


def test_a_connection_to_no_audience_is_refused(client: Client) -> None:
    output = {"name": "hostile-files", "kind": "jsonl", "directory": "hostile-out"}
    assert client.post("/admin/v1/outputs", json=output, headers=ADMIN).status_code == 201
    body = {
        "name": "to-nothing",
        "audience_id": 99_999,
        "output": "hostile-files",
        "identity_types": ["email"],
    }
    answer = client.post("/admin/v1/connections/audiences", json=body, headers=ADMIN)
    assert "no audience 99999" in refusal(answer, "audience_id")
    listed = client.get("/admin/v1/connections", headers=ADMIN).json()
    assert "to-nothing" not in [c["name"] for c in listed["audience_connections"]]


@pytest.mark.parametrize(
    ("value", "said"),
    [("a" * 2_000 + "@x.y", "longer than 1024"), ("a\u0000@x.y", "NUL")],
)
def test_idsync_refuses_identity_values_that_ingest_refuses(
    client: Client, value: str, said: str
) -> None:
    for path in ("/v1/identify", "/v1/search", "/v1/login"):
        body = {"environment": "production", "known_identities": {"email": value}}
        answer = client.post(path, json=body, headers=WEB_KEY)
        assert said in refusal(answer, "known_identities.email"), path
    known = client.post(
        "/v1/identify",
        json={"environment": "production", "known_identities": {"email": "fine@x.y"}},
        headers=WEB_KEY,
    )
    assert known.status_code == 200, known.text
    change = {"identity_type": "email", "old_value": "fine@x.y", "new_value": value}
    answer = client.post(
        f"/v1/{known.json()['mpid']}/modify",
        json={"identity_changes": [change]},
        headers=WEB_KEY,
    )
    assert said in refusal(answer, "identity_changes[0].new_value")


@pytest.mark.parametrize(
    "path", ["/admin/v1/audiences", "/admin/v1/outputs", "/v3/requests", "/ui/login"]
)
def test_a_body_over_the_servers_limit_is_413_on_every_route(client: Client, path: str) -> None:
    body = b'{"name":"' + b"n" * 300_000 + b'"}'
    answer = client.post(path, content=body, headers={**ADMIN, "content-type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert "request body over 262144 bytes" in answer.text


def test_a_csv_import_keeps_its_own_larger_bound(client: Client) -> None:
    rows = "".join(f"big-{n},big{n}@x.y\n" for n in range(20_000))  # ~430 KB
    answer = client.post(
        "/v2/import/csv",
        content=("customer_id,email\n" + rows).encode(),
        headers={"content-type": "text/csv"},
        auth=("csv-key", "csv-secret"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == 20_000


GZIP_BATCH = b'{"environment":"production","user_identities":{"customerid":"gz"}}'


@pytest.mark.parametrize("path", ["/v2/events", "/v1/identify", "/admin/v1/audiences"])
def test_a_body_in_another_content_encoding_is_refused_415(client: Client, path: str) -> None:
    answer = client.post(
        path,
        content=zlib.compress(GZIP_BATCH),
        headers={**ADMIN, **WEB_KEY, "content-encoding": "deflate"},
        auth=SERVER_AUTH if path == "/v2/events" else None,
    )
    assert answer.status_code == 415, answer.text
    assert "Content-Encoding 'deflate' is not accepted" in answer.text


def test_a_gzip_body_is_read_on_every_route(client: Client) -> None:
    zipped = {"content-encoding": "gzip", "content-type": "application/json"}
    sent = client.post(
        "/v2/events", content=gzip.compress(GZIP_BATCH), headers=zipped, auth=SERVER_AUTH
    )
    assert sent.status_code == 202, sent.text
    identify = b'{"environment":"production","known_identities":{"customerid":"gz"}}'
    found = client.post(
        "/v1/identify", content=gzip.compress(identify), headers={**zipped, **WEB_KEY}
    )
    assert found.status_code == 200, found.text
    definition = (
        b'{"name":"gz","workspaces":[1],'
        b'"criteria":{"attribute":"tier","op":"equals","value":"gold"}}'
    )
    made = client.post(
        "/admin/v1/audiences", content=gzip.compress(definition), headers={**zipped, **ADMIN}
    )
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "gz"


@pytest.mark.parametrize("path", ["/v2/events", "/admin/v1/audiences"])
def test_a_gzip_body_that_is_not_gzip_or_too_large_is_refused(client: Client, path: str) -> None:
    headers = {**ADMIN, "content-encoding": "gzip", "content-type": "application/json"}
    auth = SERVER_AUTH if path == "/v2/events" else None
    plain = client.post(path, content=GZIP_BATCH, headers=headers, auth=auth)
    assert "not gzip" in refusal(plain, "body")
    bomb = gzip.compress(b'{"x":"' + b"a" * 5_000_000 + b'"}')  # ~5 KB, 5 MB inside
    refused = client.post(path, content=bomb, headers=headers, auth=auth)
    assert refused.status_code == 413, refused.text
    assert "once decompressed" in refused.text


@pytest.mark.parametrize("path", ["/admin/v1/merges", "/admin/v1/dead-letters"])
def test_a_negative_limit_is_refused_naming_it(client: Client, path: str) -> None:
    assert "not a whole number from 0" in refusal(
        client.get(f"{path}?limit=-5", headers=ADMIN), "limit"
    )
    assert client.get(f"{path}?limit=3", headers=ADMIN).status_code == 200


def test_a_client_gone_mid_body_is_no_server_error(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(container, manage_lifecycle=False)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/admin/v1/audiences",
        "raw_path": b"/admin/v1/audiences",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer e2e-admin-token"), (b"content-length", b"99")],
        "client": ("127.0.0.1", 5000),
        "server": ("kindred.test", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    messages = [{"type": "http.request", "body": b'{"na', "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    with caplog.at_level(logging.ERROR):
        asyncio.run(app(scope, receive, send))
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
