"""The Events API batch (reference §1.3) and its decoders."""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from kindred.wire.events import AnyEvent, AttributeMap, Location, Scalar
from kindred.wire.limits import INT64_MAX, INT64_MIN, MAX_JSON_DEPTH, Instant, Int64, check_depth

__all__ = [
    "Batch",
    "ConsentPurpose",
    "ConsentState",
    "DataPlan",
    "Mpid",
    "decode_batch",
    "decode_bulk",
    "decode_hook",
]

Environment = Literal["production", "development", "unknown"]

_INTEGER = re.compile(r"-?[0-9]+")


class Mpid(int):
    """An MPID exactly as sent: a JSON integer or a string of digits, signed 64-bit and
    non-zero. Never read through a float: `1.0`, `1e3` and `9007199254740993.0` are refused."""

    @classmethod
    def parse(cls, value: object) -> Mpid:
        """Raises ValueError naming the problem (msgspec adds the field path)."""
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"MPID must be an integer or a string of digits, got {value!r}")
        if value == 0 or not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"MPID must be a non-zero signed 64-bit integer, got {value}")
        return cls(value)


def decode_hook(type_: type, value: object) -> object:
    if type_ is Mpid:
        return Mpid.parse(value)
    raise NotImplementedError(f"no decoder for {type_}")


class ConsentPurpose(msgspec.Struct, kw_only=True, omit_defaults=True):
    consented: bool | None = None
    document: str | None = None
    timestamp_unixtime_ms: Instant | None = None
    location: str | None = None
    hardware_id: str | None = None


class ConsentState(msgspec.Struct, kw_only=True, omit_defaults=True):
    gdpr: dict[str, ConsentPurpose | None] | None = None
    ccpa: dict[str, ConsentPurpose | None] | None = None


class DataPlan(msgspec.Struct, kw_only=True, omit_defaults=True):
    plan_id: str | None = None
    plan_version: Int64 | str | None = None


class BatchContext(msgspec.Struct, kw_only=True, omit_defaults=True):
    data_plan: DataPlan | None = None
    location: Location | None = None


class ApplicationInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    application_name: str | None = None
    application_version: str | None = None
    application_build_number: str | None = None
    install_referrer: str | None = None
    package: str | None = None
    os: str | None = None
    apple_search_ads_attributes: dict[str, Any] | None = None
    sideloaded_kits_count: Int64 | None = None


class AttributionInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    service_provider: str | None = None
    publisher: str | None = None
    campaign: str | None = None


class Batch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One Events API batch. `null` anywhere means absent."""

    events: list[AnyEvent] | None = None
    environment: Environment | None = None
    source_request_id: str | None = None
    mpid: Mpid | None = None
    mp_deviceid: str | None = None
    ip: str | None = None
    device_info: dict[str, Any] | None = None
    application_info: ApplicationInfo | None = None
    user_attributes: AttributeMap | None = None
    deleted_user_attributes: list[str | None] | None = None
    user_identities: dict[str, Scalar | None] | None = None
    partner_identities: dict[str, str | None] | None = None
    integration_attributes: dict[str, dict[str, Any] | None] | None = None
    consent_state: ConsentState | None = None
    context: BatchContext | None = None
    batch_context: BatchContext | None = None
    schema_version: Int64 | None = None
    timestamp_unixtime_ms: Instant | None = None
    sdk_version: str | None = None
    api_key: str | None = None
    attribution_info: AttributionInfo | None = None


# Lax mode accepts numeric strings for int fields, which real clients send (reference §0.8).
_BATCH_DECODER = msgspec.json.Decoder(Batch, strict=False, dec_hook=decode_hook)
_BULK_DECODER = msgspec.json.Decoder(list[msgspec.Raw])


def decode_batch(body: bytes | memoryview) -> Batch:
    """Decode one batch; raises `msgspec.ValidationError`/`DecodeError` naming the path."""
    return _BATCH_DECODER.decode(body)


def decode_bulk(body: bytes) -> list[msgspec.Raw]:
    """Split a bulk body into its batches' raw JSON without decoding them yet; raises
    InvalidBatch naming the place where a batch nests too deep (`[3].a.b`)."""
    check_depth(body, MAX_JSON_DEPTH + 1)
    return _BULK_DECODER.decode(body)
