"""The OpenAPI 3.1 document of the Profile API and its token endpoint, assembled from the
msgspec wire schemas so that the document and the code cannot drift apart."""

from __future__ import annotations

from typing import Any

import msgspec

from kindred.wire.profile_api import (
    PROFILE_FIELDS,
    OAuthError,
    ProfileResponse,
    ResolveRequest,
    TokenRequest,
    TokenResponse,
)

__all__ = ["openapi_document"]


class ErrorItem(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every refused Profile API request is answered with this body."""

    errors: list[ErrorItem]


_REF = "#/components/schemas/{name}"


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=schema_name)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ErrorBody")}


_INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}


def _id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": _INT64,
    }


_FIELDS_PARAM = {
    "name": "fields",
    "in": "query",
    "required": True,
    "style": "form",
    "explode": False,
    "description": "Comma-separated: which parts of the profile to return.",
    "schema": {"type": "array", "minItems": 1, "items": {"enum": list(PROFILE_FIELDS)}},
}
_TENANT = [
    _id("orgId", "The organization."),
    _id("accountId", "The account the workspace belongs to."),
    _id("workspaceId", "The workspace whose view of the profile is returned."),
]
_READ_ERRORS = {
    "400": _error("A missing or unknown field, a malformed id or body"),
    "401": _error(
        "No bearer token, or one that is invalid, expired or issued for another audience"
    ),
    "403": _error("The token's credential does not cover the workspace"),
    "404": _error("No such profile, or it has aged out (a merged MPID answers with its survivor)"),
    "429": {
        **_error("The credential's rate limit is exceeded"),
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    },
    "503": _error("Overloaded or the store is unavailable"),
}
_PROFILE_OK = {"200": {"description": "The profile", "content": _json("ProfileResponse")}}
_RESOLVE_BODY = {"required": True, "content": _json("ResolveRequest")}


def _resolve_operation(operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": "A profile by the account's immutable identity",
        "security": [{"bearer": []}],
        "parameters": [*_TENANT, _FIELDS_PARAM],
        "requestBody": _RESOLVE_BODY,
        "responses": {**_PROFILE_OK, **_READ_ERRORS},
    }


def _paths() -> dict[str, Any]:
    oauth_errors = {
        code: {"description": text, "content": _json("OAuthError")}
        for code, text in (
            ("400", "Malformed request or unsupported grant type"),
            ("401", "Unknown client or wrong secret"),
            ("403", "Audience not served"),
        )
    }
    oauth_errors["429"] = {
        "description": "Too many token requests for the client id or from the source address",
        "content": _json("OAuthError"),
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    }
    token_body = {
        "required": True,
        "content": {
            **_json("TokenRequest"),
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": _REF.format(name="TokenRequest")}
            },
        },
    }
    return {
        "/oauth/token": {
            "post": {
                "operationId": "createToken",
                "summary": "A bearer token for client credentials",
                "requestBody": token_body,
                "responses": {
                    "200": {"description": "The token", "content": _json("TokenResponse")},
                    **oauth_errors,
                },
            }
        },
        "/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}": {
            "get": {
                "operationId": "getProfile",
                "summary": "A profile by MPID",
                "security": [{"bearer": []}],
                "parameters": [*_TENANT, _id("mpid", "The profile's MPID."), _FIELDS_PARAM],
                "responses": {**_PROFILE_OK, **_READ_ERRORS},
            }
        },
        "/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}": {
            "get": _resolve_operation("resolveProfile"),
            "post": _resolve_operation("resolveProfileByPost"),
        },
    }


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [ProfileResponse, ResolveRequest, TokenRequest, TokenResponse, OAuthError, ErrorBody],
        ref_template=_REF,
    )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Kindred Profile API",
            "version": "1",
            "description": "Profiles for backend services, authenticated by bearer tokens.",
        },
        "paths": _paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
