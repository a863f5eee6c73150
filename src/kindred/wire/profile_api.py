"""Profile API and OAuth token wire shapes (API-1, API-2), as the public docs show them.

A field absent from `fields=` is left out of the response entirely (UNSET); a field that
is asked for and empty is there, empty. MPIDs are JSON integers, written exactly.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "PROFILE_FIELDS",
    "AttributionItem",
    "AudienceMembership",
    "IdentityItem",
    "OAuthError",
    "ProfileResponse",
    "ResolveIdentity",
    "ResolveRequest",
    "TokenRequest",
    "TokenResponse",
]

PROFILE_FIELDS: tuple[str, ...] = (
    "device_identities",
    "user_identities",
    "user_attributes",
    "audience_memberships",
    "attribution",
)

AttributeValue = str | list[str] | None


class IdentityItem(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    encoding: str = "none"
    value: str


class AudienceMembership(msgspec.Struct, frozen=True):
    audience_id: int
    audience_name: str
    expiration_timestamp_ms: int | None = None


class AttributionItem(msgspec.Struct, frozen=True, omit_defaults=True):
    """Install attribution of one of the user's devices in the workspace."""

    publisher: str | None = None
    campaign: str | None = None
    timestamp_ms: int = 0


class ProfileResponse(msgspec.Struct, kw_only=True):
    mpid: int
    created_timestamp_ms: int
    last_stored_timestamp_ms: int
    is_opted_out: bool
    limit_ad_tracking: bool | None
    device_identities: list[IdentityItem] | UnsetType = UNSET
    user_identities: list[IdentityItem] | UnsetType = UNSET
    account_user_attributes: dict[str, AttributeValue] | UnsetType | None = UNSET
    user_attributes: dict[str, AttributeValue] | UnsetType = UNSET
    audience_memberships: list[AudienceMembership] | UnsetType = UNSET
    attribution: list[AttributionItem] | UnsetType = UNSET


class ResolveIdentity(msgspec.Struct, frozen=True):
    type: str
    value: str


class ResolveRequest(msgspec.Struct, frozen=True):
    """Body of a resolve call: find the profile by the account's immutable identity."""

    environment_type: Literal["development", "production"]
    identity: ResolveIdentity


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`POST /oauth/token`, as JSON or as a form (client id and secret may instead come in
    an HTTP Basic header)."""

    grant_type: str
    client_id: str | None = None
    client_secret: str | None = None
    audience: str | None = None


class TokenResponse(msgspec.Struct, frozen=True):
    access_token: str
    expires_in: int
    token_type: str = "Bearer"


class OAuthError(msgspec.Struct, frozen=True):
    """The OAuth 2.0 error body (RFC 6749 §5.2)."""

    error: str
    error_description: str
