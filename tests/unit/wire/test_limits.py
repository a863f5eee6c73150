"""What any JSON body may hold (SEC-2): nesting depth, 64-bit integers, the instants of
timestamps; each refusal names the field."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.errors import InvalidBatch
from kindred.domain.tenancy import AccountPolicy, InputDef, SourceType, WorkspaceDef
from kindred.wire.batch import decode_batch, decode_bulk
from kindred.wire.idsync import decode_alias, decode_identity_request
from kindred.wire.limits import (
    INSTANT_END_MS,
    MAX_JSON_DEPTH,
    check_depth,
    check_json_body,
    int64_param,
    is_instant,
    too_deep,
)
from kindred.wire.observe import observe

BEYOND_64_BITS = [2**63, -(2**63) - 1, 10**20, -(10**30)]
SERVER = InputDef(
    name="server",
    workspace=WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1)),
    source_type=SourceType.SERVER,
    api_key="k",
    api_secret="s",
)


def nested(depth: int, leaf: object = 1, key: str | None = None) -> object:
    """`depth` arrays (or objects under `key`) inside one another around `leaf`."""
    value = leaf
    for _ in range(depth):
        value = [value] if key is None else {key: value}
    return value


def deep_text(depth: int, key: str | None = None) -> str:
    """The JSON text of `nested(depth, 1, key)`, for depths `json.dumps` cannot reach."""
    if key is None:
        return "[" * depth + "1" + "]" * depth
    return f'{{"{key}":' * depth + "1" + "}" * depth


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


# Strings full of what a naive bracket count would get wrong: brackets, quotes, backslashes.
_tricky_text = st.text(alphabet='[]{}"\\ab', max_size=6)
json_values = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=40,
)


@given(json_values, st.integers(min_value=1, max_value=8))
def test_too_deep_agrees_with_the_depth_of_the_value(value: object, limit: int) -> None:
    body = json.dumps(value).encode()
    assert too_deep(body, limit) == (depth_of(value) > limit)


def test_the_limit_itself_is_accepted_and_one_more_level_refused() -> None:
    check_depth(json.dumps(nested(MAX_JSON_DEPTH)).encode())
    with pytest.raises(InvalidBatch, match=f"nests deeper than {MAX_JSON_DEPTH} levels"):
        check_depth(json.dumps(nested(MAX_JSON_DEPTH + 1)).encode())


def test_the_refusal_names_the_place_where_the_body_gets_too_deep() -> None:
    body = {"events": [{"x": 1}, {"data": {"k[": nested(70, key="a")}}]}
    with pytest.raises(InvalidBatch) as refused:
        check_depth(json.dumps(body).encode())
    path = refused.value.path
    assert path.startswith("events[1].data.k[.a.a.a")
    assert path.count(".a") == MAX_JSON_DEPTH - 4


def test_an_unterminated_deep_body_is_refused_too() -> None:
    with pytest.raises(InvalidBatch) as refused:
        check_depth(b"[" * 100_000)
    assert refused.value.path == "[0]" * MAX_JSON_DEPTH


def test_brackets_inside_strings_do_not_count() -> None:
    check_depth(json.dumps({"text": "[" * 5000, "escaped": '\\"[[[' * 100}).encode())


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
def test_a_deep_batch_is_refused_naming_the_field_before_any_decoder_recurses(depth: int) -> None:
    body = '{"environment":"production","device_info":' + deep_text(depth, key="a") + "}"
    with pytest.raises(InvalidBatch) as refused:
        observe(body.encode(), SERVER, 1_700_000_000_000)
    assert refused.value.path.startswith("device_info.a.a")


def test_a_bulk_request_names_the_batch_that_is_too_deep() -> None:
    body = ('[{},{"user_attributes":{"x":' + deep_text(5_000) + "}}]").encode()
    with pytest.raises(InvalidBatch) as refused:
        decode_bulk(body)
    assert refused.value.path.startswith("[1].user_attributes.x[0][0]")


def test_idsync_bodies_are_bounded_too() -> None:
    body = '{"environment":"production","known_identities":{},"x":' + deep_text(5_000) + "}"
    with pytest.raises(InvalidBatch, match="nests deeper"):
        decode_identity_request(body.encode())


@pytest.mark.parametrize(
    ("batch", "path"),
    [
        ({"timestamp_unixtime_ms": INSTANT_END_MS}, "timestamp_unixtime_ms"),
        ({"timestamp_unixtime_ms": -1}, "timestamp_unixtime_ms"),
        ({"timestamp_unixtime_ms": str(INSTANT_END_MS)}, "timestamp_unixtime_ms"),
        (
            {"events": [{"event_type": "first_run", "data": {"timestamp_unixtime_ms": -5}}]},
            "events[0].data.timestamp_unixtime_ms",
        ),
        (
            {"events": [{"event_type": "first_run", "data": {"session_start_unixtime_ms": 2**70}}]},
            "events[0].data.session_start_unixtime_ms",
        ),
        (
            {"consent_state": {"gdpr": {"p": {"consented": True, "timestamp_unixtime_ms": -1}}}},
            "consent_state.gdpr[...].timestamp_unixtime_ms",
        ),
    ],
)
def test_timestamps_outside_1970_to_9999_are_refused(batch: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        decode_batch(json.dumps(batch).encode())
    assert str(refused.value).endswith(f" - at `$.{path}`")


@pytest.mark.parametrize("ts", [0, INSTANT_END_MS - 1])
def test_the_ends_of_the_timestamp_range_are_accepted(ts: int) -> None:
    batch = {
        "timestamp_unixtime_ms": ts,
        "events": [{"event_type": "first_run", "data": {"timestamp_unixtime_ms": ts}}],
    }
    assert decode_batch(json.dumps(batch).encode()).timestamp_unixtime_ms == ts


@pytest.mark.parametrize("big", BEYOND_64_BITS)
@pytest.mark.parametrize(
    ("where", "path"),
    [
        # msgspec names a value of a map `[...]`
        (lambda v: {"user_attributes": {"n": v}}, "user_attributes[...]"),
        (lambda v: {"user_attributes": {"l": [1, v]}}, "user_attributes[...][1]"),
        (lambda v: {"schema_version": v}, "schema_version"),
        (
            lambda v: {"events": [{"event_type": "first_run", "data": {"event_id": v}}]},
            "events[0].data.event_id",
        ),
        (
            lambda v: {"events": [{"event_type": "first_run", "data": {"session_id": v}}]},
            "events[0].data.session_id",
        ),
        (
            lambda v: {
                "events": [
                    {
                        "event_type": "custom_event",
                        "data": {
                            "event_name": "e",
                            "custom_event_type": "other",
                            "custom_attributes": {"n": v},
                        },
                    }
                ]
            },
            "events[0].data.custom_attributes[...]",
        ),
    ],
)
def test_integers_beyond_64_bits_are_refused_naming_the_field(
    big: int, where: Any, path: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match="at `\\$") as refused:
        decode_batch(json.dumps(where(big)).encode())
    assert str(refused.value).endswith(f".{path}`")


def test_an_alias_request_bounds_its_integers() -> None:
    body = {
        "data": {
            "source_mpid": "1",
            "destination_mpid": "2",
            "start_unixtime_ms": 0,
            "end_unixtime_ms": 2**64,
        }
    }
    with pytest.raises(InvalidBatch) as refused:
        decode_alias(json.dumps(body).encode())
    assert refused.value.path == "data.end_unixtime_ms"


def test_free_form_bodies_name_the_first_integer_beyond_64_bits() -> None:
    check_json_body(json.dumps({"a": [1, {"b": 2**63 - 1}], "c": -(2**63)}).encode())
    with pytest.raises(InvalidBatch) as refused:
        check_json_body(json.dumps({"a": [1, {"b": 2**63}]}).encode())
    assert refused.value.path == "a[1].b"
    check_json_body(b"not json")  # left to the route's own decoder


def test_parameters_are_signed_64_bit_integers() -> None:
    assert int64_param("-9223372036854775808", "mpid") == -(2**63)
    # Only ASCII digits: Python's int would read each of these as another number.
    for loose in (" 1", "+1", "1_0", "\u0661", "\u00b2", "1 ", "9" * 5_000):
        with pytest.raises(InvalidBatch, match="not an integer"):
            int64_param(loose, "mpid")
    with pytest.raises(InvalidBatch) as refused:
        int64_param("9223372036854775808", "mpid")
    assert refused.value.path == "mpid"
    with pytest.raises(InvalidBatch, match="not an integer"):
        int64_param("12.5", "limit")


def test_instants_are_the_milliseconds_of_the_years_1970_to_9999() -> None:
    assert is_instant(0)
    assert is_instant(INSTANT_END_MS - 1)
    assert not is_instant(INSTANT_END_MS)
    assert not is_instant(-1)
    assert not is_instant(True)
    assert not is_instant(1.5)
