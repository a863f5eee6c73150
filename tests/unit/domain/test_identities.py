"""Identity types, their spellings across mParticle's APIs, the default priority, junk values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.identities import (
    DEFAULT_BLOCKLIST,
    DEFAULT_PRIORITY,
    DEVICE_IDENTITY_TYPES,
    USER_IDENTITY_TYPES,
    IdentityKey,
    canonical_identity_type,
    is_junk,
)
from kindred.domain.tenancy import IdentityPolicy
from tests.strategies import identity_values, junk_values


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("customer_id", "customer_id"),
        ("customerid", "customer_id"),
        ("CustomerID", "customer_id"),
        (" customer_id ", "customer_id"),
        ("customer", "customer_id"),
        ("email", "email"),
        ("EMAIL", "email"),
        ("other", "other"),
        ("other2", "other_id_2"),
        ("other10", "other_id_10"),
        ("other_id_5", "other_id_5"),
        ("facebookcustomaudienceid", "facebook_custom_audience_id"),
        ("mobile_number", "mobile_number"),
        ("phone_number_3", "phone_number_3"),
        ("ios_idfa", "ios_advertising_id"),
        ("ios_advertising_id", "ios_advertising_id"),
        ("ios_vendor_id", "ios_idfv"),
        ("android_aaid", "android_advertising_id"),
        ("google_advertising_id", "android_advertising_id"),
        ("android_id", "android_uuid"),
        ("roku_aid", "roku_advertising_id"),
        ("fire_aid", "fire_advertising_id"),
        ("das", "device_application_stamp"),
        ("mp_deviceid", "device_application_stamp"),
        ("device_application_stamp", "device_application_stamp"),
    ],
)
def test_canonical_identity_type(spelling: str, canonical: str) -> None:
    assert canonical_identity_type(spelling) == canonical


@pytest.mark.parametrize("spelling", ["emial", "", "other1", "other11", "customer-id", "idfa"])
def test_unknown_identity_types_have_no_canonical_name(spelling: str) -> None:
    assert canonical_identity_type(spelling) is None


def test_every_canonical_type_maps_to_itself() -> None:
    for id_type in USER_IDENTITY_TYPES | DEVICE_IDENTITY_TYPES:
        assert canonical_identity_type(id_type) == id_type


def test_user_and_device_types_are_disjoint() -> None:
    assert not USER_IDENTITY_TYPES & DEVICE_IDENTITY_TYPES
    assert {"customer_id", "email", "other_id_2", "other_id_10"} <= USER_IDENTITY_TYPES
    assert "device_application_stamp" in DEVICE_IDENTITY_TYPES


def test_default_priority_follows_the_reference_hierarchy() -> None:
    assert DEFAULT_PRIORITY[:4] == ("customer_id", "mobile_number", "email", "other")
    assert DEFAULT_PRIORITY[-1] == "device_application_stamp"
    assert len(set(DEFAULT_PRIORITY)) == len(DEFAULT_PRIORITY)
    assert set(DEFAULT_PRIORITY) <= USER_IDENTITY_TYPES | DEVICE_IDENTITY_TYPES


def test_policy_rank_puts_unlisted_types_last() -> None:
    policy = IdentityPolicy()
    assert policy.rank("customer_id") == 0
    assert policy.rank("email") < policy.rank("ios_advertising_id")
    assert policy.rank("other_id_7") == len(DEFAULT_PRIORITY)
    assert policy.rank("other_id_7") > policy.rank("device_application_stamp")


@pytest.mark.parametrize(
    "value",
    [
        "null",
        "NULL",
        "Null",
        "undefined",
        "Undefined",
        "0",
        "anonymous",
        "ANONYMOUS",
        "",
        "   ",
        " null ",
        "none",
        "nil",
        "NaN",
        "-1",
        "unknown",
        "N/A",
        "na",
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_junk_values(value: str) -> None:
    assert is_junk(value, DEFAULT_BLOCKLIST)


@pytest.mark.parametrize("value", ["a@b.c", "c-1", "00", "10", "nullable", "anonymous1", "0.0"])
def test_real_values_are_not_junk(value: str) -> None:
    assert not is_junk(value, DEFAULT_BLOCKLIST)


@given(junk_values())
def test_generated_junk_is_junk(value: str) -> None:
    assert is_junk(value, DEFAULT_BLOCKLIST)


@given(identity_values())
def test_generated_identity_values_are_not_junk(value: str) -> None:
    assert not is_junk(value, DEFAULT_BLOCKLIST)


def test_blocklist_is_a_parameter() -> None:
    assert not is_junk("guest", DEFAULT_BLOCKLIST)
    assert is_junk("Guest ", frozenset({"guest"}))
    assert not is_junk("null", frozenset({"guest"}))


@given(st.text(max_size=5), st.text(max_size=5))
def test_identity_key_is_a_value(id_type: str, value: str) -> None:
    key = IdentityKey(id_type, value)
    assert key == IdentityKey(id_type, value)
    assert hash(key) == hash(IdentityKey(id_type, value))
    assert (key.type, key.value) == (id_type, value)
