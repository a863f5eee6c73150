"""Decoding Events API batches (ING-2, reference §0-§1): every event type, nulls as absent,
unknown fields accepted, numeric strings for ints, errors that name the field path."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.wire.batch import Batch, decode_batch, decode_bulk
from kindred.wire.events import (
    EVENT_TYPES,
    CommerceEvent,
    CustomEvent,
    OptOut,
    StateTransition,
)
from tests.strategies import TS_BASE

# The smallest `data` each event type accepts (required fields only).
MINIMAL_DATA: dict[str, dict[str, Any]] = {
    "custom_event": {"event_name": "Play", "custom_event_type": "navigation"},
    "application_state_transition": {"application_transition_type": "application_initialized"},
}
# A realistic `data` for each event type, with its type-specific fields.
RICH_DATA: dict[str, dict[str, Any]] = {
    "session_start": {"session_uuid": "s-1"},
    "session_end": {"session_duration_ms": 1234},
    "screen_view": {"screen_name": "Home", "activity_type": "activity_started"},
    "custom_event": {
        "event_name": "Play",
        "custom_event_type": "media",
        "custom_attributes": {"k": "v", "n": 1, "b": True, "l": ["a", None]},
        "custom_flags": {"flag": ["x", "y"]},
        "media_info": {"action": "play"},
    },
    "commerce_event": {
        "product_action": {
            "action": "purchase",
            "transaction_id": "t-1",
            "total_amount": 9.99,
            "products": [{"id": "p1", "price": 9.99, "quantity": 1, "position": 1}],
        },
        "currency_code": "EUR",
    },
    "crash_report": {"message": "boom", "exception_handled": True, "session_number": 3},
    "opt_out": {"is_opted_out": True},
    "first_run": {},
    "pre_attribution": {},
    "push_registration": {"register": True, "registration_token": "tok"},
    "application_state_transition": {
        "application_transition_type": "application_background",
        "is_first_run": False,
        "is_upgrade": True,
    },
    "push_message": {"push_message_type": "received", "push_message_behavior": "DirectOpen"},
    "push_reaction": {"push_message_behavior": 2},
    "network_performance": {"http_verb": "GET", "url": "https://x", "response_code": "200"},
    "breadcrumb": {"label": "tapped", "session_number": 1},
    "profile": {"previous_mpid": "1", "current_mpid": 2, "profile_event_type": "login"},
    "user_attribute_change": {
        "user_attribute_name": "tier",
        "new": ["a", "b"],
        "old": "c",
        "deleted": False,
        "is_new_attribute": False,
    },
    "user_identity_change": {
        "new": {"identity_type": "email", "identity": "a@b.c", "timestamp_unixtime_ms": 1},
        "old": None,
    },
    "uninstall": {},
    "unknown": {},
    "validation_result": {},
}


def error_path(exc: BaseException) -> str:
    """The field path of a msgspec error, without its `$.` root."""
    text = str(exc)
    assert " - at `" in text, text
    path = text.rsplit(" - at `", 1)[1].rstrip("`")
    return path.removeprefix("$").removeprefix(".")


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def event(event_type: str, data: dict[str, Any] | None) -> dict[str, Any]:
    return {"event_type": event_type, "data": data}


def test_rich_data_covers_every_event_type() -> None:
    assert set(RICH_DATA) == EVENT_TYPES
    assert len(EVENT_TYPES) == 21


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_decodes(event_type: str) -> None:
    data = {"timestamp_unixtime_ms": TS_BASE, "source_message_id": "m-1", **RICH_DATA[event_type]}
    decoded = decode_batch(body(events=[event(event_type, data)]))
    assert decoded.events is not None
    (only,) = decoded.events
    assert only.__struct_config__.tag == event_type
    assert only.data is not None
    assert only.data.timestamp_unixtime_ms == TS_BASE
    assert only.data.source_message_id == "m-1"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_decodes_with_minimal_or_null_data(event_type: str) -> None:
    minimal = decode_batch(body(events=[event(event_type, MINIMAL_DATA.get(event_type, {}))]))
    assert minimal.events is not None
    assert minimal.events[0].__struct_config__.tag == event_type
    null_data = decode_batch(body(events=[event(event_type, None)]))
    assert null_data.events is not None
    assert null_data.events[0].data is None


def test_typed_event_data() -> None:
    decoded = decode_batch(
        body(
            events=[
                event("custom_event", RICH_DATA["custom_event"]),
                event("commerce_event", RICH_DATA["commerce_event"]),
                event("opt_out", {"is_opted_out": False}),
                event("application_state_transition", RICH_DATA["application_state_transition"]),
            ]
        )
    )
    assert decoded.events is not None
    custom, commerce, opt_out, transition = decoded.events
    assert isinstance(custom, CustomEvent)
    assert custom.data is not None
    assert (custom.data.event_name, custom.data.custom_event_type) == ("Play", "media")
    assert isinstance(commerce, CommerceEvent)
    assert commerce.data is not None
    assert commerce.data.product_action is not None
    assert commerce.data.product_action.action == "purchase"
    assert commerce.data.product_action.products is not None
    assert commerce.data.product_action.products[0].price == 9.99
    assert isinstance(opt_out, OptOut)
    assert opt_out.data is not None
    assert opt_out.data.is_opted_out is False
    assert isinstance(transition, StateTransition)
    assert transition.data is not None
    assert transition.data.is_upgrade is True


def test_custom_event_type_defaults_to_other() -> None:
    decoded = decode_batch(body(events=[event("custom_event", {"event_name": "x"})]))
    assert decoded.events is not None
    first = decoded.events[0]
    assert isinstance(first, CustomEvent)
    assert first.data is not None
    assert first.data.custom_event_type == "other"


def test_python_sdk_crash_report_sent_as_commerce_event_is_accepted() -> None:
    crash = {"class_name": "ValueError", "message": "boom", "stack_trace": "..."}
    decoded = decode_batch(body(events=[event("commerce_event", crash)]))
    assert decoded.events is not None
    assert isinstance(decoded.events[0], CommerceEvent)


# --- mpid -------------------------------------------------------------------------------------


def _mpid_of(raw: bytes) -> int | None:
    mpid = decode_batch(b'{"mpid": ' + raw + b"}").mpid
    return None if mpid is None else int(mpid)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'"8461384837716447251"', 8461384837716447251),
        (b"8461384837716447251", 8461384837716447251),
        (b"9223372036854775807", 2**63 - 1),
        (b"9007199254740993", 2**53 + 1),
        (b"-9223372036854775808", -(2**63)),
        (b'"-42"', -42),
        (b"-42", -42),
        (b"null", None),
    ],
)
def test_mpid_decodes_exactly_as_string_or_number(raw: bytes, expected: int | None) -> None:
    assert _mpid_of(raw) == expected


@pytest.mark.parametrize(
    "raw", [b"1.5", b"true", b"[1]", b'{"a": 1}', b"1.0", b"9007199254740993.0", b"1e3", b'"1e3"']
)
def test_mpid_of_other_json_types_and_floats_is_refused_at_mpid(raw: bytes) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        _mpid_of(raw)
    assert error_path(info.value) == "mpid"


@given(st.integers(-(2**63), 2**63 - 1).filter(bool))
def test_any_int64_mpid_round_trips_as_number_and_string(mpid: int) -> None:
    assert _mpid_of(b"%d" % mpid) == mpid
    assert _mpid_of(b'"%d"' % mpid) == mpid


# --- nulls, unknown fields, lax ints -----------------------------------------------------------

WEB_SDK_BATCH: dict[str, Any] = {
    "source_request_id": "7d0b3c1e",
    "mpid": "8461384837716447251",
    "timestamp_unixtime_ms": TS_BASE,
    "environment": "development",
    "sdk_version": "2.71.2",
    "mp_deviceid": "b3c8d1e0-das",
    "ip": None,
    "device_info": {"platform": "web", "screen_width": 1440, "screen_height": 900},
    "application_info": {"application_name": None, "sideloaded_kits_count": 0},
    "user_attributes": {"$firstname": "Ann", "vip": None, "l": ["a", None]},
    "deleted_user_attributes": None,
    "user_identities": {"customer_id": None, "email": "a@b.c", "other": None},
    "consent_state": None,
    "integration_attributes": None,
    "partner_identities": None,
    "context": None,
    "batch_context": None,
    "attribution_info": None,
    "events": [
        {
            "event_type": "custom_event",
            "data": {
                "event_name": "Clicked",
                "custom_event_type": "navigation",
                "custom_attributes": None,
                "custom_flags": None,
                "location": None,
                "timestamp_unixtime_ms": TS_BASE - 1000,
                "source_message_id": "m-1",
                "session_uuid": None,
                "session_start_unixtime_ms": None,
                "device_current_state": None,
                "page_url": None,
                "active_time_on_site_ms": None,
            },
        },
        {
            "event_type": "commerce_event",
            "data": {
                "product_action": {
                    "action": "add_to_cart",
                    "products": [{"id": "p1", "custom_attributes": None, "price": None}],
                    "transaction_id": None,
                },
                "promotion_action": None,
                "product_impressions": None,
                "shopping_cart": None,
                "currency_code": None,
                "timestamp_unixtime_ms": None,
                "event_name": None,
            },
        },
        {"event_type": "screen_view", "data": None},
        {"event_type": "opt_out", "data": {"is_opted_out": None}},
    ],
}


def test_web_sdk_batch_full_of_nulls_decodes() -> None:
    decoded = decode_batch(json.dumps(WEB_SDK_BATCH).encode())
    assert decoded.mpid == 8461384837716447251
    assert decoded.ip is None
    assert decoded.consent_state is None
    assert decoded.user_identities == {"customer_id": None, "email": "a@b.c", "other": None}
    assert decoded.events is not None
    assert len(decoded.events) == 4


def test_null_everywhere_is_absent() -> None:
    decoded = decode_batch(json.dumps(dict.fromkeys(Batch.__struct_fields__)).encode())
    assert decoded == Batch()


def test_empty_object_is_a_batch() -> None:
    assert decode_batch(b"{}") == Batch()


def test_unknown_fields_are_accepted_at_every_level() -> None:
    decoded = decode_batch(
        body(
            brand_new_field={"x": [1, 2]},
            api_keys=["k"],
            job_id="j",
            source_info={"channel": "server_to_server"},
            device_info={"new_device_field": 1},
            application_info={"surprise": True},
            context={"data_plan": {"plan_id": "p", "plan_version": 2, "extra": 1}},
            events=[
                {
                    "event_type": "custom_event",
                    "unexpected": 1,
                    "data": {"event_name": "x", "is_goal_defined": False, "canonical_name": "c"},
                }
            ],
        )
    )
    assert decoded.events is not None
    assert decoded.device_info == {"new_device_field": 1}


def test_context_and_batch_context_are_both_accepted() -> None:
    plan = {"data_plan": {"plan_id": "plan", "plan_version": "3"}}
    decoded = decode_batch(body(context=plan, batch_context=plan))
    assert decoded.context is not None
    assert decoded.context.data_plan is not None
    assert decoded.context.data_plan.plan_id == "plan"
    assert decoded.batch_context is not None


def test_numeric_strings_are_accepted_for_int_fields() -> None:
    decoded = decode_batch(
        body(
            timestamp_unixtime_ms="1573828863888",
            schema_version="2",
            events=[
                event(
                    "session_end",
                    {"timestamp_unixtime_ms": "1573828863888", "session_duration_ms": "60000"},
                )
            ],
            consent_state={"gdpr": {"m": {"consented": True, "timestamp_unixtime_ms": "12"}}},
        )
    )
    assert decoded.timestamp_unixtime_ms == 1573828863888
    assert decoded.schema_version == 2
    assert decoded.events is not None
    data = decoded.events[0].data
    assert data is not None
    assert data.timestamp_unixtime_ms == 1573828863888
    assert decoded.consent_state is not None
    assert decoded.consent_state.gdpr is not None
    purpose = decoded.consent_state.gdpr["m"]
    assert purpose is not None
    assert purpose.timestamp_unixtime_ms == 12


def test_scalar_attribute_and_identity_values_of_any_json_scalar_type() -> None:
    decoded = decode_batch(
        body(
            user_attributes={
                "s": "x",
                "i": 1,
                "f": 1.5,
                "b": False,
                "l": ["a", 1, None],
                "t": None,
            },
            user_identities={"customerid": 12345},
        )
    )
    assert decoded.user_attributes == {
        "s": "x",
        "i": 1,
        "f": 1.5,
        "b": False,
        "l": ["a", 1, None],
        "t": None,
    }
    assert decoded.user_identities == {"customerid": 12345}


# --- malformed input names the field -----------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"events": [event("custom_event", {})]}, "events[0].data"),
        (
            {"events": [event("custom_event", {"event_name": "x"}), event("bogus", {})]},
            "events[1].event_type",
        ),
        ({"events": [{"data": {}}]}, "events[0]"),
        (
            {"events": [event("custom_event", {"event_name": "x", "custom_event_type": "bogus"})]},
            "events[0].data.custom_event_type",
        ),
        ({"events": [event("application_state_transition", {})]}, "events[0].data"),
        (
            {"events": [event("commerce_event", {"product_action": {}})]},
            "events[0].data.product_action",
        ),
        (
            {"events": [event("commerce_event", {"product_action": {"action": "steal"}})]},
            "events[0].data.product_action.action",
        ),
        (
            {
                "events": [
                    event("custom_event", {"event_name": "x", "timestamp_unixtime_ms": "soon"})
                ]
            },
            "events[0].data.timestamp_unixtime_ms",
        ),
        ({"events": {}}, "events"),
        ({"environment": "staging"}, "environment"),
        ({"user_attributes": ["a"]}, "user_attributes"),
        ({"deleted_user_attributes": "a"}, "deleted_user_attributes"),
        (
            {"consent_state": {"gdpr": {"m": {"consented": "maybe"}}}},
            "consent_state.gdpr[...].consented",
        ),
        ({"device_info": []}, "device_info"),
        ({"source_request_id": 5}, "source_request_id"),
    ],
)
def test_malformed_batches_name_the_field_path(payload: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        decode_batch(json.dumps(payload).encode())
    assert error_path(info.value) == path


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,", b"not json", b'{"mpid": 1,}'])
def test_broken_json_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_batch(raw)


def test_a_batch_must_be_an_object() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_batch(b"[]")


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_splits_into_raw_batches_without_decoding_them() -> None:
    parts = decode_bulk(b'[{"mpid": "1"}, {"events": "not yet checked"}, {}]')
    assert len(parts) == 3
    assert decode_batch(bytes(parts[0])).mpid == 1
    with pytest.raises(msgspec.ValidationError):
        decode_batch(bytes(parts[1]))


def test_bulk_must_be_an_array() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_bulk(b'{"mpid": 1}')


@settings(max_examples=50, deadline=None)
@given(st.lists(st.fixed_dictionaries({"mpid": st.integers(1, 2**63 - 1)}), max_size=10))
def test_bulk_keeps_every_batch_in_order(batches: list[dict[str, int]]) -> None:
    parts = decode_bulk(json.dumps(batches).encode())
    assert [decode_batch(bytes(p)).mpid for p in parts] == [b["mpid"] for b in batches]
