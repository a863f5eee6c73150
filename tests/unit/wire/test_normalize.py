"""Normalizing a decoded batch into an Observation (ING-1, ING-2, PRF-6): identities, MPIDs,
attributes and their guardrails, consent, events, historical mode, time and IP."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.apply import device_key
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import ConsentFact, EventFact, Observation
from kindred.domain.tenancy import AccountPolicy, Guardrails, InputDef, SourceType, WorkspaceDef
from kindred.wire.batch import decode_batch
from kindred.wire.errors import as_invalid_batch
from kindred.wire.events import EVENT_TYPES
from kindred.wire.normalize import HISTORICAL_MIN_AGE_MS, normalize_batch, parse_mpid
from kindred.wire.observe import observe, observe_events
from tests.strategies import TS_BASE
from tests.unit.wire.test_decode import MINIMAL_DATA, WEB_SDK_BATCH

NOW = TS_BASE
LIMITS = Guardrails()


def normalize(
    payload: dict[str, Any],
    *,
    received_ms: int = NOW,
    guardrails: Guardrails = LIMITS,
    client_ip: str | None = None,
    historical: bool = False,
) -> Observation:
    return normalize_batch(
        decode_batch(json.dumps(payload).encode()),
        received_ms=received_ms,
        guardrails=guardrails,
        client_ip=client_ip,
        historical=historical,
    )


def refused(payload: dict[str, Any], **kwargs: Any) -> InvalidBatch:
    """The refusal a client would see: decode errors and normalize errors alike."""
    with pytest.raises((InvalidBatch, msgspec.ValidationError)) as info:
        normalize(payload, **kwargs)
    return as_invalid_batch(info.value)


def custom(name: str = "Play", ts: int | None = NOW, **data: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"event_name": name, "custom_event_type": "navigation", **data}
    if ts is not None:
        fields["timestamp_unixtime_ms"] = ts
    return {"event_type": "custom_event", "data": fields}


# --- user identities ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["customer_id", "customerid", "CustomerId", "customer"])
def test_customer_id_spellings_map_to_customer_id(key: str) -> None:
    assert normalize({"user_identities": {key: "c-1"}}).user_identities == {"customer_id": "c-1"}


def test_identity_keys_are_canonical_and_values_strings() -> None:
    observation = normalize(
        {
            "user_identities": {
                "email": " a@b.c ",
                "other2": "o2",
                "other_id_3": "o3",
                "facebookcustomaudienceid": "f",
                "mobile_number": 5551234,
                "yahoo": None,
            }
        }
    )
    assert observation.user_identities == {
        "email": "a@b.c",
        "other_id_2": "o2",
        "other_id_3": "o3",
        "facebook_custom_audience_id": "f",
        "mobile_number": "5551234",
    }


@pytest.mark.parametrize(
    ("identities", "path"),
    [
        ({"emial": "a@b.c"}, "user_identities.emial"),
        ({"ios_idfv": "v"}, "user_identities.ios_idfv"),
        ({"email": True}, "user_identities.email"),
        ({"email": 1.5}, "user_identities.email"),
        ({"email": "x" * 1025}, "user_identities.email"),
    ],
)
def test_bad_user_identities_are_refused_with_their_path(
    identities: dict[str, Any], path: str
) -> None:
    assert refused({"user_identities": identities}).path == path


def test_long_identity_value_at_the_limit_is_kept() -> None:
    assert normalize({"user_identities": {"email": "x" * 1024}}).user_identities["email"]


def test_junk_identity_values_pass_normalization_for_resolution_to_note() -> None:
    observation = normalize({"user_identities": {"email": "null", "other": ""}})
    assert observation.user_identities == {"email": "null", "other": ""}


def test_device_identities_come_from_device_info_and_mp_deviceid() -> None:
    observation = normalize(
        {
            "mp_deviceid": "das-1",
            "device_info": {
                "ios_advertising_id": "IDFA",
                "ios_idfv": "IDFV",
                "android_advertising_id": None,
                "push_token": "tok",
                "platform": "iOS",
                "os_version": "17.1",
                "limit_ad_tracking": False,
                "brand": None,
            },
        }
    )
    assert observation.device_identities == {
        "ios_advertising_id": "IDFA",
        "ios_idfv": "IDFV",
        "push_token": "tok",
        "device_application_stamp": "das-1",
    }
    assert observation.device_info == {
        "platform": "iOS",
        "os_version": "17.1",
        "limit_ad_tracking": False,
    }
    assert device_key(observation.device_identities) == "das-1"


def test_bad_device_identity_value_is_refused_with_its_path() -> None:
    assert refused({"device_info": {"ios_idfv": {"x": 1}}}).path == "device_info.ios_idfv"


# --- mpid ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8461384837716447251", 8461384837716447251),
        (8461384837716447251, 8461384837716447251),
        ("9223372036854775807", 2**63 - 1),
        (2**53 + 1, 2**53 + 1),
        ("9007199254740993", 9007199254740993),
        ("-9223372036854775808", -(2**63)),
        (-42, -42),
        ("-42", -42),
        (" 17 ", 17),
    ],
)
def test_mpid_from_string_or_number_is_exact(raw: int | str, expected: int) -> None:
    assert parse_mpid(raw) == expected
    assert normalize({"mpid": raw}).mpid == expected


def test_absent_mpid_is_none() -> None:
    assert normalize({"mpid": None}).mpid is None
    assert normalize({}).mpid is None


@pytest.mark.parametrize(
    "raw",
    [
        0,
        "0",
        "-0",
        2**63,
        "9223372036854775808",
        -(2**63) - 1,
        "-9223372036854775809",
        10**30,
        "1.5",
        "1e3",
        "",
        "abc",
        "+5",
        "0x1F",
        "1_000",
        "12a",
    ],
)
def test_bad_mpids_are_refused_at_mpid(raw: int | str) -> None:
    with pytest.raises(InvalidBatch) as info:
        parse_mpid(raw)
    assert info.value.path == "mpid"
    assert refused({"mpid": raw}).path == "mpid"


@pytest.mark.parametrize("raw", ["--5", "²", "1²"])
def test_odd_digit_strings_are_refused_as_invalid_batches(raw: str) -> None:
    with pytest.raises(InvalidBatch) as info:
        parse_mpid(raw)
    assert info.value.path == "mpid"


@given(st.integers(-(2**63), 2**63 - 1).filter(bool))
def test_every_nonzero_int64_is_an_mpid(mpid: int) -> None:
    assert parse_mpid(mpid) == mpid
    assert parse_mpid(str(mpid)) == mpid


def test_parse_mpid_names_the_given_path() -> None:
    with pytest.raises(InvalidBatch) as info:
        parse_mpid("x", "data.previous_mpid")
    assert info.value.path == "data.previous_mpid"


# --- user attributes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        ("$firstname", "$FirstName"),
        ("$FIRSTNAME", "$FirstName"),
        ("$FirstName", "$FirstName"),
        ("$age", "$Age"),
        ("$zip", "$Zip"),
        ("$notargeting", "$NoTargeting"),
        ("firstname", "firstname"),
        ("$custom", "$custom"),
        ("Tier", "Tier"),
    ],
)
def test_reserved_attribute_keys_are_canonicalized(key: str, canonical: str) -> None:
    observation = normalize({"user_attributes": {key: "v"}, "deleted_user_attributes": [key]})
    assert observation.user_attributes == {canonical: "v"}
    assert observation.deleted_user_attributes == (canonical,)


def test_attribute_values_scalars_lists_and_tags() -> None:
    observation = normalize(
        {
            "user_attributes": {
                "s": "x",
                "i": 3,
                "f": 2.5,
                "b": True,
                "tag": None,
                "l": ["a", None, 1],
            }
        }
    )
    assert observation.user_attributes == {
        "s": "x",
        "i": 3,
        "f": 2.5,
        "b": True,
        "tag": None,
        "l": ["a", 1],
    }


def test_deleted_attributes_skip_nulls_and_empty_names() -> None:
    observation = normalize({"deleted_user_attributes": ["a", None, "", "b"]})
    assert observation.deleted_user_attributes == ("a", "b")


@pytest.mark.parametrize(
    ("attributes", "path", "guardrails"),
    [
        ({"x": "v" * 4097}, "user_attributes.x", LIMITS),
        ({"x": ["a"] * 1001}, "user_attributes.x", LIMITS),
        ({"x": ["ok", "v" * 513]}, "user_attributes.x[1]", LIMITS),
        ({"k" * 257: "v"}, "user_attributes." + "k" * 257, LIMITS),
        ({"": "v"}, "user_attributes.", LIMITS),
        ({"  ": "v"}, "user_attributes.  ", LIMITS),
        ({"x": {"nested": 1}}, "user_attributes.x", LIMITS),
        ({"x": "abcd"}, "user_attributes.x", Guardrails(max_attribute_value_length=3)),
        ({"x": [1, 2, 3]}, "user_attributes.x", Guardrails(max_list_length=2)),
        ({"x": ["abc"]}, "user_attributes.x[0]", Guardrails(max_list_entry_length=2)),
        ({"abc": 1}, "user_attributes.abc", Guardrails(max_attribute_key_length=2)),
    ],
)
def test_attribute_guardrails_refuse_with_the_path(
    attributes: dict[str, Any], path: str, guardrails: Guardrails
) -> None:
    error = refused({"user_attributes": attributes}, guardrails=guardrails)
    assert error.path == path
    assert path in str(error)


def test_attributes_at_the_limits_are_kept_whole() -> None:
    value, items = "v" * 4096, ["e" * 512] * 1000
    observation = normalize({"user_attributes": {"k" * 256: value, "l": items}})
    assert observation.user_attributes == {"k" * 256: value, "l": items}


# --- consent -------------------------------------------------------------------------------------


def test_gdpr_and_ccpa_consent() -> None:
    observation = normalize(
        {
            "consent_state": {
                "gdpr": {
                    " Marketing ": {
                        "consented": True,
                        "document": "doc_v4",
                        "timestamp_unixtime_ms": NOW - 10,
                        "location": "home",
                        "hardware_id": "IDFA:1",
                    },
                    "analytics": None,
                },
                "ccpa": {"data_sale_opt_out": {"consented": False, "document": None}},
            }
        }
    )
    assert observation.gdpr == {
        "marketing": ConsentFact(
            consented=True,
            timestamp_ms=NOW - 10,
            document="doc_v4",
            location="home",
            hardware_id="IDFA:1",
        )
    }
    assert observation.ccpa == ConsentFact(consented=False, timestamp_ms=NOW)


def test_ccpa_has_only_data_sale_opt_out() -> None:
    error = refused({"consent_state": {"ccpa": {"marketing": {"consented": True}}}})
    assert error.path == "consent_state.ccpa.marketing"


def test_consent_needs_consented() -> None:
    error = refused({"consent_state": {"gdpr": {"m": {"document": "d"}}}})
    assert error.path == "consent_state.gdpr.m.consented"
    error = refused({"consent_state": {"ccpa": {"data_sale_opt_out": {}}}})
    assert error.path == "consent_state.ccpa.data_sale_opt_out.consented"


def test_consent_time_is_never_later_than_arrival() -> None:
    observation = normalize(
        {"consent_state": {"gdpr": {"m": {"consented": True, "timestamp_unixtime_ms": NOW + 99}}}}
    )
    assert observation.gdpr["m"].timestamp_ms == NOW


def test_null_consent_parts_are_absent() -> None:
    observation = normalize({"consent_state": {"gdpr": None, "ccpa": {"data_sale_opt_out": None}}})
    assert (observation.gdpr, observation.ccpa) == ({}, None)


# --- events --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_normalizes_to_its_type(event_type: str) -> None:
    data = {**MINIMAL_DATA.get(event_type, {}), "timestamp_unixtime_ms": NOW - 5}
    (fact,) = normalize({"events": [{"event_type": event_type, "data": data}]}).events
    assert fact.event_type == event_type
    assert fact.timestamp_ms == NOW - 5


def test_event_facts() -> None:
    observation = normalize(
        {
            "events": [
                custom("Play", NOW - 3, source_message_id="m1"),
                {"event_type": "screen_view", "data": {"screen_name": "Home"}},
                {
                    "event_type": "commerce_event",
                    "data": {"product_action": {"action": "purchase"}},
                },
                {
                    "event_type": "commerce_event",
                    "data": {"event_name": "Bought", "product_action": {"action": "purchase"}},
                },
                {
                    "event_type": "opt_out",
                    "data": {"is_opted_out": True, "timestamp_unixtime_ms": NOW - 1},
                },
                {"event_type": "first_run", "data": None},
                {
                    "event_type": "application_state_transition",
                    "data": {
                        "application_transition_type": "application_initialized",
                        "is_first_run": True,
                    },
                },
                {
                    "event_type": "application_state_transition",
                    "data": {"application_transition_type": "application_foreground"},
                },
            ]
        }
    )
    play, screen, purchase, bought, opt_out, first_run, install, foreground = observation.events
    assert play == EventFact(
        event_type="custom_event",
        timestamp_ms=NOW - 3,
        message_id="m1",
        name="Play",
        custom_event_type="navigation",
    )
    assert (screen.name, purchase.name, bought.name) == ("Home", "purchase", "Bought")
    assert screen.timestamp_ms == NOW  # no timestamp: server time
    assert (opt_out.is_opted_out, opt_out.timestamp_ms) == (True, NOW - 1)
    assert (first_run.is_install, install.is_install, foreground.is_install) == (True, True, False)


def test_observe_events_reads_the_events_alone() -> None:
    """A logged batch's events as `observe` reads them, the rest of the batch skipped;
    with `wanted`, only the events whose JSON text it accepts are decoded."""
    payload = {
        **WEB_SDK_BATCH,
        "events": [
            custom("Play", NOW - 3, source_message_id="m1", custom_attributes={"a": [1, "x"]}),
            {"event_type": "screen_view", "data": {"screen_name": "Home"}},
            {
                "event_type": "commerce_event",
                "data": {
                    "event_name": "Bought",
                    "timestamp_unixtime_ms": str(NOW - 2),
                    "product_action": {
                        "action": "purchase",
                        "total_amount": 9.5,
                        "products": [{"id": "p1", "price": 3, "custom_attributes": {"c": 1}}],
                    },
                },
            },
            {"event_type": "first_run", "data": None},
            custom("play", None),
        ],
    }
    body = json.dumps(payload).encode()
    workspace = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1))
    source = InputDef(
        name="web", workspace=workspace, source_type=SourceType.WEB, api_key="k", api_secret=None
    )
    everything = observe(body, source, NOW).events
    assert observe_events(body, NOW) == everything
    plays = observe_events(body, NOW, lambda text: b"play" in text.lower())
    assert plays == (everything[0], everything[4])
    assert observe_events(json.dumps({"events": None}).encode(), NOW) == ()
    with pytest.raises(msgspec.ValidationError):
        observe_events(b'{"events": [{"event_type": "nope"}]}', NOW)


def test_attribution_events() -> None:
    events = normalize(
        {
            "events": [
                custom(
                    "attribution",
                    custom_event_type="attribution",
                    custom_attributes={"publisher": "pub", "campaign": 7},
                ),
                custom(
                    "attribution",
                    custom_event_type="attribution",
                    custom_attributes={"action": "DELETE"},
                ),
                custom(
                    "re-engagement",
                    custom_event_type="attribution",
                    custom_attributes={"publisher": "p2"},
                ),
            ]
        }
    ).events
    install, delete, reengage = events
    assert (install.custom_event_type, install.attribution_publisher) == ("attribution", "pub")
    assert install.attribution_campaign == "7"
    assert not install.attribution_delete
    assert delete.attribution_delete
    assert (reengage.name, reengage.attribution_publisher) == ("re-engagement", "p2")


def test_event_name_too_long_is_refused_with_the_event_path() -> None:
    payload = {"events": [custom("ok"), custom("n" * 257)]}
    assert refused(payload).path == "events[1].data"
    assert normalize({"events": [custom("n" * 256)]}).events[0].name == "n" * 256


# --- time ----------------------------------------------------------------------------------------


def test_effective_time_is_the_batch_timestamp() -> None:
    observation = normalize({"timestamp_unixtime_ms": NOW - 100, "events": [custom(ts=NOW - 5)]})
    assert (observation.received_ms, observation.effective_ms) == (NOW, NOW - 100)


def test_effective_time_is_the_newest_event_without_a_batch_timestamp() -> None:
    observation = normalize(
        {"events": [custom(ts=NOW - 50), custom(ts=NOW - 20), custom(ts=NOW - 90)]}
    )
    assert observation.effective_ms == NOW - 20


def test_effective_time_is_arrival_without_any_timestamp() -> None:
    assert normalize({}).effective_ms == NOW
    assert normalize({"events": [custom(ts=None)]}).effective_ms == NOW


def test_a_future_client_clock_cannot_pin_a_value() -> None:
    observation = normalize(
        {"timestamp_unixtime_ms": NOW + 10**9, "events": [custom(ts=NOW + 10**9)]}
    )
    assert observation.effective_ms == NOW


@settings(max_examples=150, deadline=None)
@given(
    batch_ts=st.none() | st.integers(0, 2 * NOW),
    event_ts=st.lists(st.none() | st.integers(1, 2 * NOW), max_size=4),
    received=st.integers(1, 2 * NOW),
)
def test_effective_time_is_never_later_than_arrival(
    batch_ts: int | None, event_ts: list[int | None], received: int
) -> None:
    payload: dict[str, Any] = {"events": [custom(ts=ts) for ts in event_ts]}
    if batch_ts is not None:
        payload["timestamp_unixtime_ms"] = batch_ts
    observation = normalize(payload, received_ms=received)
    assert observation.effective_ms <= observation.received_ms == received
    if batch_ts is not None:
        assert observation.effective_ms == min(batch_ts, received)


# --- historical mode ------------------------------------------------------------------------------


def test_historical_accepts_events_at_least_72_hours_old() -> None:
    old = NOW - HISTORICAL_MIN_AGE_MS
    observation = normalize({"events": [custom(ts=old), custom(ts=old - 10**9)]}, historical=True)
    assert [e.timestamp_ms for e in observation.events] == [old, old - 10**9]
    assert HISTORICAL_MIN_AGE_MS == 72 * 3600 * 1000


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({}, "events"),
        ({"events": []}, "events"),
        (
            {"events": [custom(ts=NOW - HISTORICAL_MIN_AGE_MS + 1)]},
            "events[0].data.timestamp_unixtime_ms",
        ),
        (
            {"events": [custom(ts=NOW - 10**10), custom(ts=None)]},
            "events[1].data.timestamp_unixtime_ms",
        ),
        (
            {"events": [custom(ts=NOW - 10**10), {"event_type": "session_start", "data": None}]},
            "events[1].data.timestamp_unixtime_ms",
        ),
        ({"events": [custom(ts=NOW + 10**10)]}, "events[0].data.timestamp_unixtime_ms"),
    ],
)
def test_historical_refusals(payload: dict[str, Any], path: str) -> None:
    assert refused(payload, historical=True).path == path


def test_recent_events_are_fine_outside_historical_mode() -> None:
    assert normalize({"events": [custom(ts=NOW - 1)]}).events[0].timestamp_ms == NOW - 1


# --- IP, environment, request id ------------------------------------------------------------------


def test_client_ip_overrides_batch_ip() -> None:
    assert normalize({"ip": "10.0.0.1"}, client_ip="203.0.113.9").ip == "203.0.113.9"
    assert normalize({"ip": "10.0.0.1"}).ip == "10.0.0.1"
    assert normalize({}, client_ip="203.0.113.9").ip == "203.0.113.9"
    assert normalize({}).ip is None


def test_environment_defaults_to_production_and_request_id_is_kept() -> None:
    assert normalize({}).environment == "production"
    observation = normalize({"environment": "development", "source_request_id": "r-1"})
    assert (observation.environment, observation.source_request_id) == ("development", "r-1")


def test_web_sdk_batch_full_of_nulls_normalizes() -> None:
    observation = normalize(WEB_SDK_BATCH, received_ms=NOW + 500, client_ip="198.51.100.7")
    assert observation.mpid == 8461384837716447251
    assert observation.user_identities == {"email": "a@b.c"}
    assert observation.device_identities == {"device_application_stamp": "b3c8d1e0-das"}
    assert observation.user_attributes == {"$FirstName": "Ann", "vip": None, "l": ["a"]}
    assert observation.deleted_user_attributes == ()
    assert (observation.gdpr, observation.ccpa) == ({}, None)
    assert observation.ip == "198.51.100.7"
    assert observation.effective_ms == NOW
    assert [e.event_type for e in observation.events] == [
        "custom_event",
        "commerce_event",
        "screen_view",
        "opt_out",
    ]
    assert observation.events[1].timestamp_ms == NOW + 500
    assert observation.events[3].is_opted_out is None


# --- what event criteria test ------------------------------------------------------------------


def test_events_carry_their_attributes_product_action_and_products() -> None:
    purchase = {
        "event_type": "commerce_event",
        "data": {
            "timestamp_unixtime_ms": NOW,
            "custom_attributes": {"channel": "app", "total_amount": "overridden"},
            "product_action": {
                "action": "purchase",
                "transaction_id": "t-1",
                "total_amount": 30.5,
                "products": [
                    {
                        "id": "p1",
                        "category": "shoes",
                        "price": 20.5,
                        "custom_attributes": {"size": "42"},
                    },
                    {"id": "p2", "name": "Laces", "quantity": 2},
                ],
            },
        },
    }
    played = custom("Play", genre="ignored", custom_attributes={"genre": "jazz"})
    obs = normalize({"events": [purchase, played, custom("Stop")]})
    bought, play, stop = obs.events
    assert bought.action == "purchase"
    assert bought.attributes == {
        "transaction_id": "t-1",
        "total_amount": "overridden",
        "channel": "app",
    }
    assert bought.products == (
        {"size": "42", "id": "p1", "category": "shoes", "price": 20.5},
        {"id": "p2", "name": "Laces", "quantity": 2},
    )
    assert (play.attributes, play.action, play.products) == ({"genre": "jazz"}, None, ())
    assert stop.attributes == {}


def test_the_newest_location_of_the_batch_and_its_events_is_kept() -> None:
    paris = {"latitude": 48.8566, "longitude": 2.3522, "city_name": "Paris", "dma_code": 123}
    london = {"latitude": 51.5074, "longitude": -0.1278, "city_name": "London"}
    events = [custom("Play", ts=NOW - 5_000, location=paris), custom("Stop", ts=NOW - 9_000)]

    def newest(batch_ts: int) -> tuple[str | None, int]:
        batch = {"timestamp_unixtime_ms": batch_ts, "context": {"location": london}}
        location = normalize({**batch, "events": events}).location
        assert location is not None
        return location.city_name, location.ts_ms

    # The batch's own location counts at the batch's time, an event's at the event's.
    assert newest(NOW - 1_000) == ("London", NOW - 1_000)
    assert newest(NOW - 20_000) == ("Paris", NOW - 5_000)
    only = normalize({"events": events}).location
    assert only is not None
    assert (only.city_name, only.dma_code, only.latitude) == ("Paris", "123", 48.8566)
    assert normalize({"events": [custom("Stop")]}).location is None
