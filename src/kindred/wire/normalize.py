"""Turn a decoded batch into a domain Observation, enforcing the per-batch guardrails.

Every refusal raises `InvalidBatch` with the path of the offending field, so that the
client learns exactly what to fix (ING-1, PRF-6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import (
    DEVICE_IDENTITY_TYPES,
    canonical_identity_type,
)
from kindred.domain.observation import (
    AttrValue,
    ConsentFact,
    EventFact,
    LocationFact,
    Observation,
)
from kindred.domain.tenancy import Guardrails
from kindred.wire.batch import Batch, ConsentPurpose, Mpid
from kindred.wire.events import (
    AnyEvent,
    CommerceEvent,
    CustomEvent,
    FirstRun,
    Location,
    OptOut,
    Product,
    ProductAction,
    ScreenView,
    StateTransition,
)

_EVENT_TYPE: dict[type, str] = {cls: cls.__struct_config__.tag for cls in get_args(AnyEvent)}

__all__ = [
    "HISTORICAL_MIN_AGE_MS",
    "MAX_EVENT_NAME_LENGTH",
    "event_fact",
    "identity_value",
    "normalize_batch",
    "parse_mpid",
]

HISTORICAL_MIN_AGE_MS = 72 * 3600 * 1000
MAX_EVENT_NAME_LENGTH = 256

# Reserved attribute keys are matched case-insensitively and stored in the SDKs' casing.
_RESERVED_KEYS = {
    k.lower(): k
    for k in (
        "$Age",
        "$FirstName",
        "$LastName",
        "$Gender",
        "$Mobile",
        "$Address",
        "$City",
        "$State",
        "$Zip",
        "$Country",
        "$NoTargeting",
    )
}


def parse_mpid(value: int | str, path: str = "mpid") -> int:
    """An MPID from user input (a string or an integer); InvalidBatch names the problem."""
    try:
        return int(Mpid.parse(value))
    except ValueError as exc:
        raise InvalidBatch(str(exc), path) from None


def normalize_batch(
    batch: Batch,
    *,
    received_ms: int,
    guardrails: Guardrails,
    client_ip: str | None = None,
    historical: bool = False,
) -> Observation:
    """`client_ip` is the caller's address for client SDK inputs (None for server inputs,
    whose batches carry the user's `ip`)."""
    events = tuple(event_fact(e, i, received_ms) for i, e in enumerate(batch.events or ()))
    if historical:
        _check_historical(batch, events, received_ms)
    gdpr, ccpa = _consent(batch, received_ms)
    effective_ms = _effective_ms(batch, events, received_ms)
    return Observation(
        received_ms=received_ms,
        effective_ms=effective_ms,
        environment=batch.environment or "production",
        mpid=None if batch.mpid is None else int(batch.mpid),
        user_identities=_user_identities(batch.user_identities or {}),
        device_identities=_device_identities(batch),
        device_info=_device_info(batch.device_info or {}),
        user_attributes=_user_attributes(batch.user_attributes or {}, guardrails),
        deleted_user_attributes=_deleted_attributes(batch.deleted_user_attributes or ()),
        gdpr=gdpr,
        ccpa=ccpa,
        ip=client_ip if client_ip is not None else batch.ip,
        events=events,
        source_request_id=batch.source_request_id,
        location=_location(batch, events, effective_ms),
    )


def _location(
    batch: Batch, events: tuple[EventFact, ...], effective_ms: int
) -> LocationFact | None:
    """The newest location given: an event's at its time, the batch's at the batch's."""
    found: list[tuple[int, Location]] = []
    for context in (batch.context, batch.batch_context):
        if context is not None and context.location is not None:
            found.append((effective_ms, context.location))
    for event, fact in zip(batch.events or (), events, strict=True):
        if event.data is not None and event.data.location is not None:
            found.append((fact.timestamp_ms, event.data.location))
    if not found:
        return None
    ts_ms, newest = max(found, key=lambda pair: pair[0])
    return LocationFact(
        ts_ms=ts_ms,
        latitude=newest.latitude,
        longitude=newest.longitude,
        country_code=newest.country_code,
        region_code=newest.region_code,
        city_name=newest.city_name,
        postal_code=newest.postal_code,
        dma_code=None if newest.dma_code is None else str(newest.dma_code),
    )


def _effective_ms(batch: Batch, events: tuple[EventFact, ...], received_ms: int) -> int:
    """When the batch's user data was true: its own timestamp, else its newest event;
    never later than its arrival, so a client clock in the future cannot pin a value."""
    if batch.timestamp_unixtime_ms is not None:
        candidate = batch.timestamp_unixtime_ms
    elif events:
        candidate = max(e.timestamp_ms for e in events)
    else:
        candidate = received_ms
    return min(candidate, received_ms)


def _check_historical(batch: Batch, events: tuple[EventFact, ...], received_ms: int) -> None:
    if not events:
        raise InvalidBatch("historical batches need at least one event", "events")
    for i, event in enumerate(batch.events or ()):
        data = event.data
        if data is None or data.timestamp_unixtime_ms is None:
            raise InvalidBatch(
                "historical events need timestamp_unixtime_ms",
                f"events[{i}].data.timestamp_unixtime_ms",
            )
        if received_ms - events[i].timestamp_ms < HISTORICAL_MIN_AGE_MS:
            raise InvalidBatch(
                "historical events must be at least 72 hours old",
                f"events[{i}].data.timestamp_unixtime_ms",
            )


# --- identities -------------------------------------------------------------------------


def _user_identities(raw: Mapping[str, object]) -> dict[str, str]:
    identities: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        path = f"user_identities.{key}"
        id_type = canonical_identity_type(key)
        if id_type is None or id_type in DEVICE_IDENTITY_TYPES:
            raise InvalidBatch(f"unknown user identity type {key!r}", path)
        identities[id_type] = identity_value(value, path)
    return identities


def identity_value(value: object, path: str) -> str:
    """An identity's value as stored (trimmed); InvalidBatch at `path` for one that is not a
    string, holds a NUL or is over 1,024 characters. IDSync's values pass the same checks."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidBatch("identity values must be strings", path)
    text = str(value).strip()
    if "\x00" in text:
        raise InvalidBatch("identity values must not contain NUL characters", path)
    if len(text) > 1024:
        raise InvalidBatch("identity value longer than 1024 characters", path)
    return text


def _device_identities(batch: Batch) -> dict[str, str]:
    identities: dict[str, str] = {}
    for key, value in (batch.device_info or {}).items():
        if key in DEVICE_IDENTITY_TYPES and value is not None:
            identities[key] = identity_value(value, f"device_info.{key}")
    if batch.mp_deviceid:
        identities["device_application_stamp"] = identity_value(batch.mp_deviceid, "mp_deviceid")
    return identities


def _device_info(raw: Mapping[str, Any]) -> dict[str, object]:
    return {k: v for k, v in raw.items() if v is not None and k not in DEVICE_IDENTITY_TYPES}


# --- user attributes --------------------------------------------------------------------


def _user_attributes(raw: Mapping[str, object], limits: Guardrails) -> dict[str, AttrValue]:
    attributes: dict[str, AttrValue] = {}
    for key, value in raw.items():
        path = f"user_attributes.{key}"
        if not key.strip():
            raise InvalidBatch("user attribute names must not be empty", path)
        if "\x00" in key:
            raise InvalidBatch("user attribute names must not contain NUL characters", path)
        if len(key) > limits.max_attribute_key_length:
            raise InvalidBatch(
                f"user attribute name longer than {limits.max_attribute_key_length} characters",
                path,
            )
        attributes[_RESERVED_KEYS.get(key.lower(), key)] = _attribute_value(value, path, limits)
    return attributes


def _attribute_value(value: object, path: str, limits: Guardrails) -> AttrValue:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidBatch("user attribute values must not contain NUL characters", path)
        if len(value) > limits.max_attribute_value_length:
            raise InvalidBatch(
                f"user attribute value longer than {limits.max_attribute_value_length} characters",
                path,
            )
        return value
    if isinstance(value, list):
        return _attribute_list(value, path, limits)
    raise InvalidBatch("user attribute values must be strings, numbers, booleans or lists", path)


def _attribute_list(values: list[object], path: str, limits: Guardrails) -> AttrValue:
    if len(values) > limits.max_list_length:
        raise InvalidBatch(f"user attribute list longer than {limits.max_list_length}", path)
    result: list[str | int | float | bool] = []
    for i, item in enumerate(values):
        if item is None:
            continue
        if not isinstance(item, str | int | float | bool):
            raise InvalidBatch("list entries must be strings or numbers", f"{path}[{i}]")
        if isinstance(item, str) and "\x00" in item:
            raise InvalidBatch("list entries must not contain NUL characters", f"{path}[{i}]")
        if isinstance(item, str) and len(item) > limits.max_list_entry_length:
            raise InvalidBatch(
                f"list entry longer than {limits.max_list_entry_length} characters",
                f"{path}[{i}]",
            )
        result.append(item)
    return result


def _deleted_attributes(raw: Any) -> tuple[str, ...]:
    return tuple(_RESERVED_KEYS.get(k.lower(), k) for k in raw if k)


# --- consent ----------------------------------------------------------------------------


def _consent(batch: Batch, received_ms: int) -> tuple[dict[str, ConsentFact], ConsentFact | None]:
    state = batch.consent_state
    if state is None:
        return {}, None
    gdpr: dict[str, ConsentFact] = {}
    for purpose, raw in (state.gdpr or {}).items():
        if raw is not None:
            path = f"consent_state.gdpr.{purpose}"
            gdpr[purpose.strip().lower()] = _consent_fact(raw, path, received_ms)
    ccpa = None
    for purpose, raw in (state.ccpa or {}).items():
        if raw is None:
            continue
        if purpose != "data_sale_opt_out":
            raise InvalidBatch(
                "CCPA has one purpose, data_sale_opt_out", f"consent_state.ccpa.{purpose}"
            )
        ccpa = _consent_fact(raw, f"consent_state.ccpa.{purpose}", received_ms)
    return gdpr, ccpa


def _consent_fact(raw: ConsentPurpose, path: str, received_ms: int) -> ConsentFact:
    if raw.consented is None:
        raise InvalidBatch("consent needs `consented`", f"{path}.consented")
    return ConsentFact(
        consented=raw.consented,
        timestamp_ms=min(raw.timestamp_unixtime_ms or received_ms, received_ms),
        document=raw.document,
        location=raw.location,
        hardware_id=raw.hardware_id,
    )


# --- events -----------------------------------------------------------------------------


def event_fact(event: AnyEvent, index: int, received_ms: int) -> EventFact:
    """Everything the profile needs from one event (the batch's `index`th), built in one
    go (this runs for every event of every batch)."""
    data = event.data
    given = data.timestamp_unixtime_ms if data else None
    ts = received_ms if given is None else given
    facts: dict[str, Any] = {}
    name: str | None = None
    if data is not None:
        if isinstance(event, CustomEvent):
            name = event.data.event_name  # type: ignore[union-attr]
            facts = _custom_event_facts(event)
        elif isinstance(event, ScreenView):
            name = event.data.screen_name  # type: ignore[union-attr]
        elif isinstance(event, CommerceEvent):
            commerce = event.data
            assert commerce is not None
            action = commerce.product_action.action if commerce.product_action else None
            name = commerce.event_name or action
            facts = _commerce_facts(commerce.product_action)
        elif isinstance(event, OptOut):
            facts = {"is_opted_out": event.data.is_opted_out}  # type: ignore[union-attr]
        elif isinstance(event, StateTransition):
            facts = {"is_install": bool(event.data.is_first_run)}  # type: ignore[union-attr]
    if isinstance(event, FirstRun):
        facts = {"is_install": True}
    if name is not None and len(name) > MAX_EVENT_NAME_LENGTH:
        raise InvalidBatch(
            f"event name longer than {MAX_EVENT_NAME_LENGTH} characters", f"events[{index}].data"
        )
    if data is not None and data.custom_attributes:
        own = facts.get("attributes")
        facts["attributes"] = {**own, **data.custom_attributes} if own else data.custom_attributes
    return EventFact(
        event_type=_EVENT_TYPE[type(event)],
        timestamp_ms=ts,
        message_id=data.source_message_id if data else None,
        name=name,
        **facts,
    )


_ACTION_FIELDS = (
    "transaction_id",
    "affiliation",
    "total_amount",
    "tax_amount",
    "shipping_amount",
    "coupon_code",
    "checkout_step",
)


def _commerce_facts(action: ProductAction | None) -> dict[str, Any]:
    """The product action, its fields (as attributes) and its products, for criteria."""
    if action is None:
        return {}
    fields = {f: v for f in _ACTION_FIELDS if (v := getattr(action, f)) is not None}
    products = tuple(_product_fields(p) for p in action.products or ())
    return {"action": action.action, "attributes": fields, "products": products}


def _product_fields(product: Product) -> dict[str, object]:
    """A product's fields and, beside them, its custom attributes."""
    fields: dict[str, object] = dict(product.custom_attributes or {})
    fields.update(
        (f, v)
        for f in product.__struct_fields__
        if f != "custom_attributes" and (v := getattr(product, f)) is not None
    )
    return fields


def _custom_event_facts(event: CustomEvent) -> dict[str, Any]:
    data = event.data
    assert data is not None
    if data.custom_event_type != "attribution":
        return {"custom_event_type": data.custom_event_type}
    attrs = data.custom_attributes or {}
    return {
        "custom_event_type": data.custom_event_type,
        "attribution_publisher": _str_or_none(attrs.get("publisher")),
        "attribution_campaign": _str_or_none(attrs.get("campaign")),
        "attribution_delete": str(attrs.get("action", "")).lower() == "delete",
    }


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
