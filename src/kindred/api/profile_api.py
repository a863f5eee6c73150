"""Profile API over HTTP (API-1 … API-3): `POST /oauth/token` and the two profile reads.

Like ingest, these are hot paths answered on the raw ASGI scope (see `api.fastpath`): a
profile read is a token check, a bucket, one point read and one encode. Each handler takes
the request parts it needs and returns (status, body, headers).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable

import msgspec

from kindred.api.auth import decode_basic
from kindred.bootstrap import Container
from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import AuthRejected, InvalidBatch, KindredError, RateLimited
from kindred.domain.ratelimit import TokenBucket
from kindred.domain.tenancy import WorkspaceDef
from kindred.services.access.credentials import OAuthRefusal
from kindred.wire.errors import as_invalid_batch
from kindred.wire.limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    check_depth,
    strict_int,
    too_deep,
)
from kindred.wire.profile_api import (
    PROFILE_FIELDS,
    OAuthError,
    ResolveRequest,
    TokenRequest,
    TokenResponse,
)

__all__ = ["PROFILE_PREFIX", "Answer", "OAuthApi", "ProfileReadApi"]

PROFILE_PREFIX = "/userprofile/v1/"
Header = tuple[bytes, bytes]
Answer = tuple[int, bytes, list[Header]]

_JSON: list[Header] = [(b"content-type", b"application/json")]
_NO_STORE: list[Header] = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_ENCODER = msgspec.json.Encoder()
_RESOLVE = msgspec.json.Decoder(ResolveRequest)
_TOKEN_JSON = msgspec.json.Decoder(TokenRequest)
_ALLOWED = frozenset(PROFILE_FIELDS)
_QUERY_CACHE_LIMIT = 1024
_PROFILE_IDS = ("orgId", "accountId", "workspaceId", "mpid")
_ADMITTED_LIMIT = 4096
_Admitted = tuple[ApiCredential, WorkspaceDef]


class ProfileReadApi:
    """`GET /userprofile/v1/{org}/{account}/{workspace}/{mpid}` and
    `GET|POST /userprofile/v1/resolve/{org}/{account}/{workspace}` (both methods: the public
    docs show both)."""

    def __init__(self, container: Container, monotonic: Callable[[], float] = time.monotonic):
        self._tokens = container.tokens
        self._audience = container.tokens.profile_api_audience
        self._service = container.profile_api
        self._monotonic = monotonic
        self._buckets: dict[str, TokenBucket] = {}
        self._fields_by_query: dict[bytes, frozenset[str]] = {}
        # The definitions' version the last request read: what a point read's caller is
        # checked at before its read (see `_point_read`).
        self._seen_version: int | None = None
        # Callers admitted at that version, by Authorization header and workspace path:
        # their credential and workspace (the same at one version; emptied when it moves).
        self._admitted: dict[tuple[str | None, tuple[int, int, int]], _Admitted] = {}

    def route_of(self, method: str, path: str) -> str | None:
        """The route name for the metrics, or None when no route matches."""
        parts = path[len(PROFILE_PREFIX) :].split("/")
        if parts[0] == "resolve":
            return "profile_resolve" if len(parts) == 4 and method in ("GET", "POST") else None
        return "profile" if len(parts) == 4 and method == "GET" else None

    def handle(
        self, route: str, path: str, query: bytes, authorization: str | None, body: bytes
    ) -> Answer:
        parts = path[len(PROFILE_PREFIX) :].split("/")
        if route == "profile":
            answer = self._point_read(parts, query, authorization)
            if answer is not None:
                return answer
        # One read of the definitions' version for the request: its credential and the
        # profile's calculated values are taken at it.
        version = self._service.definitions_version()
        self._saw(version)
        credential = self._tokens.authenticate(authorization, version, audience=self._audience)
        self._limit(credential)
        fields = self._fields(query)
        if route == "profile":
            ids = _ids(parts, _PROFILE_IDS)
            workspace = (ids[0], ids[1], ids[2])
            response = self._service.by_mpid(credential, workspace, ids[3], fields, version)
        else:
            ids = _ids(parts[1:], ("orgId", "accountId", "workspaceId"))
            request = _resolve_request(body)
            workspace = (ids[0], ids[1], ids[2])
            response = self._service.resolve(credential, workspace, request, fields, version)
        return 200, _ENCODER.encode(response), _JSON

    def _point_read(
        self, parts: list[str], query: bytes, authorization: str | None
    ) -> Answer | None:
        """A read by MPID whose definitions' version comes with the profile, in one
        statement (one round trip) instead of two. Only for a caller who passes the checks
        made before any read (token, credential, workspace) at the version the last request
        read, so no read is made for one who fails them; they are made again at the version
        read, with the checks after them, in the order `handle` makes them. None: not such a
        request (a malformed path, a refused caller, no version read yet): `handle` answers
        it in order."""
        ids = _valid_ids(parts)
        seen = self._seen_version
        if ids is None or seen is None:
            return None
        path = (ids[0], ids[1], ids[2])
        # A bad token is refused the same at any version (its expiry checked every time).
        claims = self._tokens.verify(authorization, self._audience)
        admitted = self._admitted.get((authorization, path))
        if admitted is None:
            try:
                credential = self._tokens.credential(claims, seen)
                admitted = credential, self._service.check_access(credential, path)
            except KindredError:
                return None
            if len(self._admitted) >= _ADMITTED_LIMIT:
                self._admitted.clear()
            self._admitted[(authorization, path)] = admitted
        credential, workspace = admitted
        version, stored = self._service.versioned_profile(ids[3])
        moved = version != seen
        if moved:
            self._saw(version)
            credential = self._tokens.credential(claims, version)
        self._limit(credential)
        fields = self._fields(query)
        if moved:
            workspace = self._service.check_access(credential, path)
        response = self._service.read(workspace, (ids[3], stored), fields, version)
        return 200, _ENCODER.encode(response), _JSON

    def _saw(self, version: int) -> None:
        if version != self._seen_version:
            self._seen_version = version
            self._admitted.clear()

    def _limit(self, credential: ApiCredential) -> None:
        now = self._monotonic()
        bucket = self._buckets.get(credential.client_id)
        if bucket is None:
            bucket = TokenBucket(credential.rate_limit_per_s, credential.rate_limit_burst, now)
            self._buckets[credential.client_id] = bucket
        wait = bucket.take(now)
        if wait:
            raise RateLimited(wait, "credential")

    def _fields(self, query: bytes) -> frozenset[str]:
        fields = self._fields_by_query.get(query)
        if fields is None:
            fields = _parse_fields(query)
            if len(self._fields_by_query) < _QUERY_CACHE_LIMIT:
                self._fields_by_query[query] = fields
        return fields


def _parse_fields(query: bytes) -> frozenset[str]:
    try:
        params = urllib.parse.parse_qs(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        raise InvalidBatch("query string is malformed", "fields") from None
    unknown_params = sorted(set(params) - {"fields"})
    if unknown_params:
        raise InvalidBatch(f"unknown query parameter {unknown_params[0]!r}", unknown_params[0])
    names = [n.strip() for value in params.get("fields", []) for n in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise InvalidBatch(
            f"fields is required: a comma-separated list of {', '.join(PROFILE_FIELDS)}",
            "fields",
        )
    for name in names:
        if name not in _ALLOWED:
            raise InvalidBatch(
                f"unknown field {name!r}; known: {', '.join(PROFILE_FIELDS)}", "fields"
            )
    return frozenset(names)


def _valid_ids(parts: list[str]) -> list[int] | None:
    """A profile path's ids (org, account, workspace, MPID), None unless all are valid
    (`_ids` names what is wrong)."""
    found = [strict_int(text) for text in parts]
    ids = [value for value in found if value is not None]
    if len(ids) != len(found):
        return None
    for value in ids:
        if not INT64_MIN <= value <= INT64_MAX:
            return None
    return ids if len(ids) == len(_PROFILE_IDS) else None


def _ids(parts: list[str], names: tuple[str, ...]) -> list[int]:
    values = []
    for name, text in zip(names, parts, strict=True):
        value = strict_int(text)
        if value is None:
            raise InvalidBatch(f"{name} {text!r} is not an integer", name)
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidBatch(f"{name} {text} is out of the 64-bit range", name)
        values.append(value)
    return values


def _resolve_request(body: bytes) -> ResolveRequest:
    if not body.strip():
        raise InvalidBatch(
            "a JSON body is required: {environment_type, identity: {type, value}}", "body"
        )
    check_depth(body)
    try:
        return _RESOLVE.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise as_invalid_batch(exc) from None


class OAuthApi:
    """`POST /oauth/token` with the client credentials grant (JSON or form body; the client
    id and secret may come in an HTTP Basic header instead). The secret is checked off the
    event loop; past the attempts allowed to the client id or the source address the answer
    is 429 with `Retry-After`."""

    def __init__(self, container: Container) -> None:
        self._tokens = container.tokens

    async def token(
        self,
        content_type: str | None,
        authorization: str | None,
        body: bytes,
        address: str | None = None,
    ) -> Answer:
        try:
            request = _token_request(content_type, body)
            client_id, secret = request.client_id, request.client_secret
            basic = _basic(authorization)
            if basic is not None:
                client_id, secret = basic
            token = await self._tokens.issue(
                request.grant_type, client_id, secret, request.audience, address
            )
        except OAuthRefusal as refusal:
            error = OAuthError(refusal.error, str(refusal))
            return refusal.status, _ENCODER.encode(error), _JSON + _NO_STORE
        except RateLimited as limited:
            error = OAuthError("too_many_requests", str(limited))
            retry = [(b"retry-after", str(limited.retry_after_s).encode())]
            return 429, _ENCODER.encode(error), _JSON + _NO_STORE + retry
        answer = TokenResponse(access_token=token, expires_in=self._tokens.ttl_s)
        return 200, _ENCODER.encode(answer), _JSON + _NO_STORE


def _token_request(content_type: str | None, body: bytes) -> TokenRequest:
    media = (content_type or "").split(";")[0].strip().lower()
    if too_deep(body):
        message = f"token request: JSON nests deeper than {MAX_JSON_DEPTH} levels"
        raise OAuthRefusal(400, "invalid_request", message)
    try:
        if media == "application/x-www-form-urlencoded":
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
            return msgspec.convert({k: v[-1] for k, v in form.items()}, TokenRequest)
        return _TOKEN_JSON.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise OAuthRefusal(400, "invalid_request", f"token request: {exc}") from None


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        return decode_basic(authorization)
    except AuthRejected as exc:
        raise OAuthRefusal(401, "invalid_client", str(exc)) from None
