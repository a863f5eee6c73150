"""Identity types, their aliases across mParticle's APIs, the default priority and junk values."""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DEFAULT_BLOCKLIST",
    "DEFAULT_PRIORITY",
    "DEVICE_IDENTITY_TYPES",
    "USER_IDENTITY_TYPES",
    "IdentityKey",
    "canonical_identity_type",
    "is_junk",
]

USER_IDENTITY_TYPES: frozenset[str] = frozenset(
    {
        "customer_id",
        "email",
        "other",
        *(f"other_id_{n}" for n in range(2, 11)),
        "mobile_number",
        "phone_number_2",
        "phone_number_3",
        "facebook",
        "twitter",
        "google",
        "microsoft",
        "yahoo",
        "alias",
        "facebook_custom_audience_id",
    }
)

# Device identities use the Events API `device_info` names, plus the device application stamp.
DEVICE_IDENTITY_TYPES: frozenset[str] = frozenset(
    {
        "ios_advertising_id",
        "ios_idfv",
        "android_advertising_id",
        "android_uuid",
        "push_token",
        "roku_advertising_id",
        "roku_publisher_id",
        "fire_advertising_id",
        "microsoft_advertising_id",
        "microsoft_publisher_id",
        "amp_id",
        "device_application_stamp",
    }
)

_ALIASES: dict[str, str] = {
    "customerid": "customer_id",
    "customer": "customer_id",
    **{f"other{n}": f"other_id_{n}" for n in range(2, 11)},
    "facebookcustomaudienceid": "facebook_custom_audience_id",
    "ios_idfa": "ios_advertising_id",
    "android_aaid": "android_advertising_id",
    "google_advertising_id": "android_advertising_id",
    "android_id": "android_uuid",
    "ios_vendor_id": "ios_idfv",
    "roku_aid": "roku_advertising_id",
    "fire_aid": "fire_advertising_id",
    "das": "device_application_stamp",
    "mp_deviceid": "device_application_stamp",
}

# Highest first; ties in resolution go to the identity listed earlier (reference §2.6).
DEFAULT_PRIORITY: tuple[str, ...] = (
    "customer_id",
    "mobile_number",
    "email",
    "other",
    "facebook",
    "google",
    "twitter",
    "microsoft",
    "yahoo",
    "ios_advertising_id",
    "ios_idfv",
    "android_advertising_id",
    "android_uuid",
    "roku_advertising_id",
    "roku_publisher_id",
    "microsoft_publisher_id",
    "microsoft_advertising_id",
    "device_application_stamp",
)

# Values that real clients send when they have no identity; they never identify anyone.
DEFAULT_BLOCKLIST: frozenset[str] = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "nan",
        "0",
        "-1",
        "anonymous",
        "unknown",
        "n/a",
        "na",
        "00000000-0000-0000-0000-000000000000",
    }
)


class IdentityKey(NamedTuple):
    """One identity: its canonical type and its value."""

    type: str
    value: str


def canonical_identity_type(name: str) -> str | None:
    """The canonical type for any spelling a client uses, or None when unknown."""
    lowered = name.strip().lower()
    lowered = _ALIASES.get(lowered, lowered)
    if lowered in USER_IDENTITY_TYPES or lowered in DEVICE_IDENTITY_TYPES:
        return lowered
    return None


def is_junk(value: str, blocklist: frozenset[str]) -> bool:
    """True for placeholder values that must never link two users."""
    return value.strip().lower() in blocklist
