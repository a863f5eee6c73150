"""IDSync over HTTP (IDS-1, IDS-5): identify, search, login, logout, modify; the web SDK's
alias and remote-config calls.

Routes are matched on the raw ASGI scope (see `api.fastpath`) under every prefix the SDKs
use: `/v1/...` (server to server), `/identity/v1/...` (the web SDK's `domain` setting) and
custom `identityUrl`s ending in either. Successes are 200 (the web SDK accepts no other),
aliases 202; errors carry both `errors` and `Errors` (reference §2.4).

Who is calling: `x-mp-key` alone for client inputs (web, iOS, Android: their keys are
public), HTTP Basic or the HMAC digest (`x-mp-key`, `Date`, `x-mp-signature`) for server
inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import msgspec

from kindred.api.auth import InputAuthenticator
from kindred.api.ratelimit import InputRateLimiter
from kindred.bootstrap import Container
from kindred.domain.errors import AuthMissing, AuthRejected, InvalidBatch
from kindred.domain.identities import USER_IDENTITY_TYPES, canonical_identity_type, is_junk
from kindred.domain.observation import Observation
from kindred.domain.tenancy import CLIENT_SOURCES, InputDef
from kindred.services.writes.commands import AliasCall, IdentityCall, ModifyCall
from kindred.wire.batch import Mpid
from kindred.wire.idsync import (
    ChangeResult,
    IdentityRequest,
    IdentityResponse,
    ModifyResponse,
    decode_alias,
    decode_identity_request,
    decode_modify,
    identity_error_body,
)

__all__ = ["IdSyncApi", "identity_error_body", "identity_route"]

Header = tuple[bytes, bytes]
_CALLS = ("identify", "search", "login", "logout")
_ENCODER = msgspec.json.Encoder()
_JSON: list[Header] = [(b"content-type", b"application/json")]
_REMOTE_CONFIG = _ENCODER.encode({"kitConfigs": [], "pixelConfigs": [], "flags": {}})


def identity_route(method: str, path: str) -> tuple[str, str] | None:
    """(route, argument) for an IDSync, alias or config path; None when not one of ours.
    The argument is the MPID of a modify, the API key of an alias or config request."""
    parts = path.rstrip("/").split("/")
    if method == "POST" and len(parts) >= 3 and parts[-2] == "v1" and parts[-1] in _CALLS:
        return parts[-1], ""
    if method == "POST" and len(parts) >= 4 and parts[-1] == "modify" and parts[-3] == "v1":
        return "modify", parts[-2]
    if method == "POST" and len(parts) >= 5 and parts[-1] == "Alias" and parts[-3] == "identity":
        return "alias", parts[-2]
    if method == "GET" and len(parts) >= 5 and parts[-1] == "config" and parts[-3] == "v2":
        return "config", parts[-2]
    return None


class IdSyncApi:
    def __init__(self, container: Container) -> None:
        self._c = container
        self._auth = InputAuthenticator(container.tenancy)
        self._limits = InputRateLimiter()
        self._calls = container.identity_calls

    def caller(self, headers: Mapping[str, str], method: str, path: str, body: bytes) -> InputDef:
        """The input making an IDSync call, rate-limited (401/403/429 otherwise)."""
        source = self._authenticate(headers, method, path, body)
        self._limits.check(source, time.monotonic())
        return source

    async def call(self, route: str, argument: str, source: InputDef, body: bytes) -> bytes:
        """The 200 body of an identify/search/login/logout/modify call."""
        if route == "modify":
            return await self._modify(argument, source, body)
        request = decode_identity_request(body)
        call = _identity_call(route, source, request, self._c.clock.now_ms())
        answer = self._calls.read_only(call)
        if answer is None:
            answer = (await self._c.writer.submit_async(call)).answer
        return _ENCODER.encode(
            IdentityResponse(
                context=None,
                mpid=str(answer.mpid),
                matched_identities=answer.matched,
                is_ephemeral=False,
                is_logged_in=answer.is_logged_in,
            )
        )

    async def alias(self, api_key: str, body: bytes) -> None:
        """An SDK alias request (202 when done); the key in the path names the input."""
        source = self._auth.web_key(api_key) if api_key else None
        if source is None:
            raise AuthRejected("unknown API key")
        self._limits.check(source, time.monotonic())
        data = decode_alias(body).data
        call = AliasCall(
            max_merged=source.workspace.account.guardrails.max_profiles_merged,
            scope=source.workspace.identity_scope,
            received_ms=self._c.clock.now_ms(),
            source=int(data.source_mpid),
            destination=int(data.destination_mpid),
            start_ms=data.start_unixtime_ms,
            end_ms=data.end_unixtime_ms,
        )
        await self._c.writer.submit_async(call)

    def remote_config(self, api_key: str) -> bytes:
        """What the web SDK asks for at start: no kits, no flags (reference §3.1)."""
        self._auth.web_key(api_key)
        return _REMOTE_CONFIG

    async def _modify(self, mpid_text: str, source: InputDef, body: bytes) -> bytes:
        try:
            mpid = Mpid.parse(mpid_text)
        except ValueError as exc:
            raise InvalidBatch(str(exc), "mpid") from None
        request = decode_modify(body)
        changes = tuple(
            (canonical_identity_type(c.identity_type) or "", c.old_value, c.new_value)
            for c in request.identity_changes
        )
        now = self._c.clock.now_ms()
        call = ModifyCall(input=source, target_mpid=int(mpid), changes=changes, received_ms=now)
        self._calls.check_modify(call)  # refuses a bad change before it queues
        await self._c.writer.submit_async(call)
        results = [
            ChangeResult(identity_type=c.identity_type, modified_mpid=str(int(mpid)))
            for c in request.identity_changes
        ]
        return _ENCODER.encode(ModifyResponse(change_results=results))

    def _authenticate(
        self, headers: Mapping[str, str], method: str, path: str, body: bytes
    ) -> InputDef:
        authorization = headers.get("authorization")
        if authorization:
            return self._auth.basic(authorization)
        key = headers.get("x-mp-key")
        if not key:
            raise AuthMissing("missing x-mp-key header (or HTTP Basic key and secret)")
        source = self._c.tenancy.input_for_key(key)
        if source is None:
            raise AuthRejected("unknown API key")
        signature = headers.get("x-mp-signature")
        if signature is not None:
            _check_signature(source, signature, headers.get("date", ""), (method, path, body))
        elif source.source_type not in CLIENT_SOURCES:
            raise AuthRejected("a server key needs its secret: HTTP Basic or x-mp-signature")
        return source


def _check_signature(
    source: InputDef, signature: str, date: str, request: tuple[str, str, bytes]
) -> None:
    """HMAC-SHA256(secret, METHOD \\n DATE \\n PATH+BODY), hex (reference §2.2)."""
    method, path, body = request
    if source.api_secret is None:
        raise AuthRejected("this key has no secret to sign with")
    message = f"{method}\n{date}\n{path}".encode() + body
    expected = hmac.new(source.api_secret.encode(), message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise AuthRejected("x-mp-signature does not match")


def _identity_call(
    route: str, source: InputDef, request: IdentityRequest, now: int
) -> IdentityCall:
    user: dict[str, str] = {}
    device: dict[str, str] = {}
    spellings: dict[str, str] = {}
    for key, value in request.known_identities.items():
        canonical = canonical_identity_type(key)
        if value is None or canonical is None:
            continue
        (user if canonical in USER_IDENTITY_TYPES else device)[canonical] = value.strip()
        spellings[canonical] = key
    if route != "logout" and not user and not device:
        raise InvalidBatch("at least one identity is required", "known_identities")
    # Placeholders (`null`, `undefined`, empty strings ...) identify no one: a request with
    # nothing else is refused as the Events API refuses to make a profile of it (a logout
    # that names no identity at all is the SDK's ordinary one, answered an anonymous user).
    blocklist = source.workspace.account.identity.blocklist
    given = (*user.values(), *device.values())
    if given and all(is_junk(v, blocklist) for v in given):
        names = ", ".join(f"known_identities.{spellings[t]}" for t in (*user, *device))
        raise InvalidBatch(
            f"at least one usable identity is required; placeholder values identify "
            f"no one ({names})",
            "known_identities",
        )
    observation = Observation(
        received_ms=now,
        effective_ms=now,
        environment=request.environment,
        user_identities=user,
        device_identities=device,
    )
    previous = int(request.previous_mpid) if request.previous_mpid is not None else None
    return IdentityCall(
        kind=route,  # type: ignore[arg-type]  # one of _CALLS, checked by identity_route
        input=source,
        observation=observation,
        spellings=spellings,
        previous_mpid=previous,
    )
