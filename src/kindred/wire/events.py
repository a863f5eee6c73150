"""Event objects of an Events API batch: `{"event_type": ..., "data": {...}}`.

Each event type is a tagged Struct so that one msgspec decode validates the wrapper and its
type-specific `data`. Fields not named here are not rejected: the raw batch is stored as
received, so they are kept for replay and forwarding.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

from kindred.domain.observation import ProductActionName
from kindred.wire.limits import Instant, Int64

__all__ = [
    "CUSTOM_EVENT_TYPES",
    "EVENT_TYPES",
    "AnyEvent",
    "CommerceEvent",
    "CustomEvent",
    "EventData",
    "Location",
    "OptOut",
    "Product",
    "ProductAction",
    "StateTransition",
]

Scalar = str | Int64 | float | bool
AttributeMap = dict[str, Scalar | list[Scalar | None] | dict[str, Any] | None]

CustomEventType = Literal[
    "navigation",
    "location",
    "search",
    "transaction",
    "user_content",
    "user_preference",
    "social",
    "other",
    "media",
    "attribution",
    "unknown",
]
CUSTOM_EVENT_TYPES: frozenset[str] = frozenset(get_args(CustomEventType))


class Location(msgspec.Struct, kw_only=True, omit_defaults=True):
    latitude: float | None = None
    longitude: float | None = None
    accuracy: float | None = None
    country_code: str | None = None
    region_code: str | None = None
    city_name: str | None = None
    postal_code: str | None = None
    dma_code: str | Int64 | None = None
    location_source: str | None = None


class Product(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str | None = None
    name: str | None = None
    brand: str | None = None
    category: str | None = None
    variant: str | None = None
    position: Int64 | None = None
    price: float | None = None
    quantity: float | None = None
    coupon_code: str | None = None
    added_to_cart_time_ms: Int64 | None = None
    total_product_amount: float | None = None
    custom_attributes: AttributeMap | None = None


class ProductAction(msgspec.Struct, kw_only=True, omit_defaults=True):
    action: ProductActionName
    checkout_step: Int64 | None = None
    checkout_options: str | None = None
    product_action_list: str | None = None
    product_list_source: str | None = None
    transaction_id: str | None = None
    affiliation: str | None = None
    total_amount: float | None = None
    tax_amount: float | None = None
    shipping_amount: float | None = None
    coupon_code: str | None = None
    products: list[Product] | None = None


class Promotion(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str | None = None
    name: str | None = None
    creative: str | None = None
    position: str | Int64 | None = None


class PromotionAction(msgspec.Struct, kw_only=True, omit_defaults=True):
    action: Literal["view", "click"] | None = None
    promotions: list[Promotion] | None = None


class ProductImpression(msgspec.Struct, kw_only=True, omit_defaults=True):
    product_impression_list: str | None = None
    products: list[Product] | None = None


class ShoppingCart(msgspec.Struct, kw_only=True, omit_defaults=True):
    products: list[Product] | None = None


class EventData(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The `data` fields every event type shares."""

    timestamp_unixtime_ms: Instant | None = None
    source_message_id: str | None = None
    session_uuid: str | None = None
    session_id: Int64 | None = None
    session_start_unixtime_ms: Instant | None = None
    event_start_unixtime_ms: Instant | None = None
    event_id: Int64 | None = None
    event_num: Int64 | None = None
    custom_attributes: AttributeMap | None = None
    custom_flags: dict[str, Any] | None = None
    location: Location | None = None
    device_current_state: dict[str, Any] | None = None
    page_url: str | None = None
    active_time_on_site_ms: Int64 | None = None


class CustomEventData(EventData, kw_only=True, omit_defaults=True):
    event_name: str
    custom_event_type: CustomEventType = "other"
    media_info: dict[str, Any] | None = None


class ScreenViewData(EventData, kw_only=True, omit_defaults=True):
    screen_name: str | None = None
    activity_type: str | None = None


class CommerceEventData(EventData, kw_only=True, omit_defaults=True):
    product_action: ProductAction | None = None
    promotion_action: PromotionAction | None = None
    product_impressions: list[ProductImpression] | None = None
    shopping_cart: ShoppingCart | None = None
    currency_code: str | None = None
    screen_name: str | None = None
    is_non_interactive: bool | None = None
    event_name: str | None = None
    custom_event_type: str | None = None


class SessionEndData(EventData, kw_only=True, omit_defaults=True):
    session_duration_ms: Int64 | None = None


class CrashReportData(EventData, kw_only=True, omit_defaults=True):
    class_name: str | None = None
    severity: str | None = None
    message: str | None = None
    stack_trace: str | None = None
    exception_handled: bool | None = None
    topmost_context: str | None = None
    session_number: Int64 | None = None


class OptOutData(EventData, kw_only=True, omit_defaults=True):
    is_opted_out: bool | None = None


class PushRegistrationData(EventData, kw_only=True, omit_defaults=True):
    register: bool | None = None
    registration_token: str | None = None


class StateTransitionData(EventData, kw_only=True, omit_defaults=True):
    application_transition_type: Literal[
        "application_initialized",
        "application_exit",
        "application_background",
        "application_foreground",
    ]
    is_first_run: bool | None = None
    is_upgrade: bool | None = None
    successfully_closed: bool | None = None
    push_notification_payload: str | None = None
    launch_referral: str | None = None


class PushMessageData(EventData, kw_only=True, omit_defaults=True):
    push_message_type: str | None = None
    push_message_token: str | None = None
    message: str | None = None
    network: str | None = None
    push_notification_payload: str | None = None
    application_state: str | None = None
    action_identifier: str | None = None
    push_message_behavior: Int64 | str | None = None


class NetworkPerformanceData(EventData, kw_only=True, omit_defaults=True):
    http_verb: str | None = None
    url: str | None = None
    time_elapsed: Int64 | None = None
    bytes_in: Int64 | None = None
    bytes_out: Int64 | None = None
    response_code: Int64 | str | None = None


class BreadcrumbData(EventData, kw_only=True, omit_defaults=True):
    label: str | None = None
    session_number: Int64 | None = None


class ProfileEventData(EventData, kw_only=True, omit_defaults=True):
    previous_mpid: Int64 | str | None = None
    current_mpid: Int64 | str | None = None
    profile_event_type: str | None = None
    profile_name: str | None = None
    previous_profile_name: str | None = None


class UserAttributeChangeData(EventData, kw_only=True, omit_defaults=True):
    user_attribute_name: str | None = None
    new: Scalar | list[Scalar | None] | None = None
    old: Scalar | list[Scalar | None] | None = None
    deleted: bool | None = None
    is_new_attribute: bool | None = None


class UserIdentityChangeData(EventData, kw_only=True, omit_defaults=True):
    new: dict[str, Any] | None = None
    old: dict[str, Any] | None = None


class _Event(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="event_type"):
    """Base of the tagged wrappers; `data` absent or null means no type-specific fields."""


class SessionStart(_Event, tag="session_start", kw_only=True, omit_defaults=True):
    data: EventData | None = None


class SessionEnd(_Event, tag="session_end", kw_only=True, omit_defaults=True):
    data: SessionEndData | None = None


class ScreenView(_Event, tag="screen_view", kw_only=True, omit_defaults=True):
    data: ScreenViewData | None = None


class CustomEvent(_Event, tag="custom_event", kw_only=True, omit_defaults=True):
    data: CustomEventData | None = None


class CommerceEvent(_Event, tag="commerce_event", kw_only=True, omit_defaults=True):
    data: CommerceEventData | None = None


class CrashReport(_Event, tag="crash_report", kw_only=True, omit_defaults=True):
    data: CrashReportData | None = None


class OptOut(_Event, tag="opt_out", kw_only=True, omit_defaults=True):
    data: OptOutData | None = None


class FirstRun(_Event, tag="first_run", kw_only=True, omit_defaults=True):
    data: EventData | None = None


class PreAttribution(_Event, tag="pre_attribution", kw_only=True, omit_defaults=True):
    data: EventData | None = None


class PushRegistration(_Event, tag="push_registration", kw_only=True, omit_defaults=True):
    data: PushRegistrationData | None = None


class StateTransition(_Event, tag="application_state_transition", kw_only=True, omit_defaults=True):
    data: StateTransitionData | None = None


class PushMessage(_Event, tag="push_message", kw_only=True, omit_defaults=True):
    data: PushMessageData | None = None


class PushReaction(_Event, tag="push_reaction", kw_only=True, omit_defaults=True):
    data: PushMessageData | None = None


class NetworkPerformance(_Event, tag="network_performance", kw_only=True, omit_defaults=True):
    data: NetworkPerformanceData | None = None


class Breadcrumb(_Event, tag="breadcrumb", kw_only=True, omit_defaults=True):
    data: BreadcrumbData | None = None


class ProfileEvent(_Event, tag="profile", kw_only=True, omit_defaults=True):
    data: ProfileEventData | None = None


class UserAttributeChange(_Event, tag="user_attribute_change", kw_only=True, omit_defaults=True):
    data: UserAttributeChangeData | None = None


class UserIdentityChange(_Event, tag="user_identity_change", kw_only=True, omit_defaults=True):
    data: UserIdentityChangeData | None = None


class Uninstall(_Event, tag="uninstall", kw_only=True, omit_defaults=True):
    data: EventData | None = None


class UnknownEvent(_Event, tag="unknown", kw_only=True, omit_defaults=True):
    data: EventData | None = None


class ValidationResult(_Event, tag="validation_result", kw_only=True, omit_defaults=True):
    data: EventData | None = None


AnyEvent = (
    SessionStart
    | SessionEnd
    | ScreenView
    | CustomEvent
    | CommerceEvent
    | CrashReport
    | OptOut
    | FirstRun
    | PreAttribution
    | PushRegistration
    | StateTransition
    | PushMessage
    | PushReaction
    | NetworkPerformance
    | Breadcrumb
    | ProfileEvent
    | UserAttributeChange
    | UserIdentityChange
    | Uninstall
    | UnknownEvent
    | ValidationResult
)

EVENT_TYPES: frozenset[str] = frozenset(
    (
        "session_start",
        "session_end",
        "screen_view",
        "custom_event",
        "commerce_event",
        "crash_report",
        "opt_out",
        "first_run",
        "pre_attribution",
        "push_registration",
        "application_state_transition",
        "push_message",
        "push_reaction",
        "network_performance",
        "breadcrumb",
        "profile",
        "user_attribute_change",
        "user_identity_change",
        "uninstall",
        "unknown",
        "validation_result",
    )
)
