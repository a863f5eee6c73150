"""IDSync wire shapes (reference §2.3-2.5, §2.8): identify/search/login/logout, modify, and
the SDKs' alias request. MPIDs travel as strings (an integer is accepted too)."""

from __future__ import annotations

from typing import Literal

import msgspec

from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import canonical_identity_type
from kindred.wire.batch import Mpid, decode_hook
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import Int64, check_depth
from kindred.wire.normalize import identity_value

__all__ = [
    "AliasData",
    "AliasRequest",
    "ClientSdk",
    "IdentityChange",
    "IdentityRequest",
    "IdentityResponse",
    "ModifyRequest",
    "ModifyResponse",
    "decode_alias",
    "decode_identity_request",
    "decode_modify",
    "identity_error_body",
]

Environment = Literal["production", "development"]


class ClientSdk(msgspec.Struct, kw_only=True):
    platform: str | None = None
    sdk_vendor: str | None = None
    sdk_version: str | None = None


class IdentityRequest(msgspec.Struct, kw_only=True):
    environment: Environment
    known_identities: dict[str, str | None]
    previous_mpid: Mpid | None = None
    context: str | None = None
    request_id: str | None = None
    request_timestamp_ms: Int64 | None = None
    client_sdk: ClientSdk | None = None


class IdentityChange(msgspec.Struct, kw_only=True):
    identity_type: str
    old_value: str | None = None
    new_value: str | None = None


class ModifyRequest(msgspec.Struct, kw_only=True):
    environment: Environment = "production"
    identity_changes: list[IdentityChange]
    request_id: str | None = None
    request_timestamp_ms: Int64 | None = None
    client_sdk: ClientSdk | None = None


class IdentityResponse(msgspec.Struct, kw_only=True):
    context: str | None
    mpid: str
    matched_identities: dict[str, str]
    is_ephemeral: bool
    is_logged_in: bool


class ChangeResult(msgspec.Struct, kw_only=True):
    identity_type: str
    modified_mpid: str


class ModifyResponse(msgspec.Struct, kw_only=True):
    change_results: list[ChangeResult]


class AliasData(msgspec.Struct, kw_only=True):
    source_mpid: Mpid
    destination_mpid: Mpid
    start_unixtime_ms: Int64
    end_unixtime_ms: Int64
    device_application_stamp: str | None = None
    scope: str | None = None


class AliasRequest(msgspec.Struct, kw_only=True):
    data: AliasData
    request_id: str | None = None
    request_type: str = "alias"
    environment: str = "production"
    api_key: str | None = None


_IDENTITY = msgspec.json.Decoder(IdentityRequest, dec_hook=decode_hook)
_MODIFY = msgspec.json.Decoder(ModifyRequest, dec_hook=decode_hook)
_ALIAS = msgspec.json.Decoder(AliasRequest, dec_hook=decode_hook)
_ENCODER = msgspec.json.Encoder()


def decode_identity_request(body: bytes) -> IdentityRequest:
    """Raises InvalidBatch naming the field; identity keys must be known types."""
    check_depth(body)
    try:
        request = _IDENTITY.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None
    for key, value in request.known_identities.items():
        _check_type(key, f"known_identities.{key}")
        if value is not None:
            identity_value(value, f"known_identities.{key}")
    return request


def decode_modify(body: bytes) -> ModifyRequest:
    check_depth(body)
    try:
        request = _MODIFY.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None
    for n, change in enumerate(request.identity_changes):
        _check_type(change.identity_type, f"identity_changes[{n}].identity_type")
        for name in ("old_value", "new_value"):
            value = getattr(change, name)
            if value is not None:
                identity_value(value, f"identity_changes[{n}].{name}")
    return request


def decode_alias(body: bytes) -> AliasRequest:
    check_depth(body)
    try:
        return _ALIAS.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None


def _check_type(name: str, path: str) -> None:
    if canonical_identity_type(name) is None:
        raise InvalidBatch(f"unknown identity type {name!r}", path)


def identity_error_body(code: str, message: str) -> bytes:
    """Both spellings clients read: `errors` (the docs) and `Errors` (the web SDK's type)."""
    items = [{"code": code, "message": message}]
    return _ENCODER.encode({"errors": items, "Errors": items, "ErrorCode": code})
