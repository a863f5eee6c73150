"""Fuzzing the ingest routes and IDSync with hostile bodies (SEC-2): JSON nested past the
limit, integers beyond 64 bits, negative ones, floats where integers go, timestamps outside
the years 1970 to 9999. Whatever the body, no answer is a 5xx, every 400 names a field, and
a web batch is always answered 202; the page of a profile a batch made always renders. The
real ASGI app in this process, on SQLite."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.bootstrap import Container
from kindred.wire.limits import INSTANT_END_MS, MAX_JSON_DEPTH
from tests.integration.hostile import SERVER_AUTH, WEB_EVENTS, WEB_KEY, Client, serving

NAMES_A_FIELD = re.compile(r"`[^`]+`")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Container]]:
    yield from serving(Path(tmp_path_factory.mktemp("fuzz")))


# --- hostile values ------------------------------------------------------------------------

edge_integers = st.sampled_from(
    [
        0,
        -1,
        1,
        2**31,
        2**53 + 1,
        2**63 - 1,
        2**63,
        2**64,
        -(2**63),
        -(2**63) - 1,
        10**30,
        -(10**30),
        INSTANT_END_MS - 1,
        INSTANT_END_MS,
        -INSTANT_END_MS,
    ]
)
integers = edge_integers | st.integers(min_value=-(2**80), max_value=2**80)
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.5, -1.0, 1e300])
numbers = integers | floats | integers.map(str)
junk = st.sampled_from(["", "null", "undefined", "0", " NaN ", "anonymous", "n/a"])
texts = junk | st.text(max_size=12)
scalars = st.none() | st.booleans() | numbers | texts


# A deep value stands in the body as a placeholder string that `dumps` replaces by its JSON
# text: json.dumps itself would recurse once per level.
_DEEP = re.compile(r'"deep:(\d+):(object|array)"')


def _deep_text(match: re.Match[str]) -> str:
    depth = int(match.group(1))
    if match.group(2) == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


deep = st.builds(
    "deep:{}:{}".format,
    st.sampled_from([MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 900, 5_000]),
    st.sampled_from(["object", "array"]),
)
values = (
    scalars | deep | st.lists(scalars, max_size=3) | st.dictionaries(texts, scalars, max_size=3)
)

# Where a hostile value goes in a batch, and in an event's data.
BATCH_FIELDS = [
    "mpid",
    "timestamp_unixtime_ms",
    "schema_version",
    "device_info",
    "integration_attributes",
    "unknown_field",
    "environment",
    "source_request_id",
]
EVENT_FIELDS = [
    "timestamp_unixtime_ms",
    "session_start_unixtime_ms",
    "session_id",
    "event_id",
    "event_num",
    "custom_attributes",
    "session_duration_ms",
]


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "environment": "production",
        "user_identities": {
            "customerid": draw(st.uuids().map(str) | junk | numbers),
            "email": draw(junk | texts),
        },
    }
    for field in draw(st.lists(st.sampled_from(BATCH_FIELDS), max_size=3, unique=True)):
        body[field] = draw(values)
    if draw(st.booleans()):
        body["user_attributes"] = {draw(texts): draw(values)}
    if draw(st.booleans()):
        body["consent_state"] = {
            "gdpr": {"p": {"consented": True, "timestamp_unixtime_ms": draw(numbers)}}
        }
    event_type = draw(st.sampled_from(["custom_event", "session_end", "first_run", "screen_view"]))
    data: dict[str, Any] = {"event_name": "e", "custom_event_type": "other", "screen_name": "s"}
    for field in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=3, unique=True)):
        data[field] = draw(values)
    body["events"] = [{"event_type": event_type, "data": data}]
    return body


@st.composite
def identity_requests(draw: st.DrawFn) -> dict[str, Any]:
    known_types = ["email", "customerid", "other", "device_application_stamp", "ios_idfa"]
    known = draw(st.dictionaries(st.sampled_from(known_types), junk | texts, max_size=3))
    body: dict[str, Any] = {"environment": "production", "known_identities": known}
    for field in draw(
        st.lists(
            st.sampled_from(["request_timestamp_ms", "previous_mpid", "context", "extra"]),
            max_size=2,
            unique=True,
        )
    ):
        body[field] = draw(values)
    return body


def dumps(body: object) -> bytes:
    return _DEEP.sub(_deep_text, json.dumps(body, separators=(",", ":"))).encode()


def check(answer: Any, *, route: str) -> None:
    assert answer.status_code < 500, (route, answer.status_code, answer.text)
    if answer.status_code == 400:
        message = answer.json()["errors"][0]["message"]
        assert NAMES_A_FIELD.search(message), (route, message)


# --- the properties ------------------------------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(body=batches(), bulk_extra=st.lists(batches(), max_size=2))
def test_no_batch_gets_a_server_error(
    app: tuple[Client, Container], body: dict[str, Any], bulk_extra: list[dict[str, Any]]
) -> None:
    client, _ = app
    raw = dumps(body)
    answer = client.post("/v2/events", content=raw, auth=SERVER_AUTH)
    check(answer, route="events")
    customer_id = body["user_identities"]["customerid"]
    if answer.status_code == 202 and isinstance(customer_id, str):
        # Whatever was accepted, the profile's page shows it.
        found = client.get("/ui/profiles", params={"type": "customer_id", "q": customer_id})
        if found.status_code == 302:
            page = client.get(found.headers["location"])
            assert page.status_code == 200, (raw, page.text)
    bulk = b"[" + b",".join([raw, *(dumps(b) for b in bulk_extra)]) + b"]"
    check(client.post("/v2/bulkevents", content=bulk, auth=SERVER_AUTH), route="bulkevents")
    web = client.post(WEB_EVENTS, content=raw, headers={"content-type": "text/plain"})
    assert web.status_code == 202, web.text


@FUZZ
@given(body=identity_requests(), call=st.sampled_from(["identify", "login", "logout", "search"]))
def test_no_identity_call_gets_a_server_error(
    app: tuple[Client, Container], body: dict[str, Any], call: str
) -> None:
    client, _ = app
    answer = client.post(f"/v1/{call}", content=dumps(body), headers=WEB_KEY)
    check(answer, route=call)
