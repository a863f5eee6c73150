"""What one batch tells us about a user, normalized: the input of resolution and apply."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "AttrValue",
    "ConsentFact",
    "EventFact",
    "LocationFact",
    "Observation",
    "ProductActionName",
]

# The product actions of commerce events (reference §1.10).
ProductActionName = Literal[
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "checkout_option",
    "click",
    "view_detail",
    "purchase",
    "refund",
    "add_to_wishlist",
    "remove_from_wish_list",
    "remove_from_wishlist",
    "unknown",
]

Scalar = str | int | float | bool
# A user attribute value: a scalar, a list, or None for a tag (an attribute with no value).
AttrValue = Scalar | list[Scalar] | None


class ConsentFact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    consented: bool
    timestamp_ms: int
    document: str | None = None
    location: str | None = None
    hardware_id: str | None = None


class LocationFact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where the user was (a batch's or an event's location), and when."""

    ts_ms: int
    latitude: float | None = None
    longitude: float | None = None
    country_code: str | None = None
    region_code: str | None = None
    city_name: str | None = None
    postal_code: str | None = None
    dma_code: str | None = None


class EventFact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The parts of an event the profile itself depends on."""

    event_type: str
    timestamp_ms: int
    message_id: str | None = None
    name: str | None = None
    custom_event_type: str | None = None
    is_opted_out: bool | None = None
    attribution_publisher: str | None = None
    attribution_campaign: str | None = None
    attribution_delete: bool = False
    is_install: bool = False
    # What audience event conditions test: the event's attributes (for commerce events
    # also the product action's own fields), its product action and products.
    attributes: dict[str, object] = msgspec.field(default_factory=dict)
    action: str | None = None
    products: tuple[dict[str, object], ...] = ()


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """A batch after decoding and normalization; identity types are canonical."""

    received_ms: int
    # The write time of the batch's user data (PRF-3): never later than `received_ms`.
    effective_ms: int
    environment: str = "production"
    mpid: int | None = None
    user_identities: dict[str, str] = msgspec.field(default_factory=dict)
    device_identities: dict[str, str] = msgspec.field(default_factory=dict)
    device_info: dict[str, object] = msgspec.field(default_factory=dict)
    user_attributes: dict[str, AttrValue] = msgspec.field(default_factory=dict)
    deleted_user_attributes: tuple[str, ...] = ()
    gdpr: dict[str, ConsentFact] = msgspec.field(default_factory=dict)
    ccpa: ConsentFact | None = None
    ip: str | None = None
    events: tuple[EventFact, ...] = ()
    source_request_id: str | None = None
    # The newest location the batch or its events give.
    location: LocationFact | None = None
