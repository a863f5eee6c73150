"""Profile API credentials and bearer tokens (API-1).

Credentials come from two places: the config file, and the store (created and revoked with
`kindred credentials ...`, possibly by another process). The registry merges both, and
rebuilds the merge when the store's definitions version moves (`services.definitions`),
so a revocation takes effect in every process as soon as it is committed; a credential in
the store overrides one of the same client id in the config.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from kindred.domain.credentials import PROFILES_SCOPE, ApiCredential, hash_secret
from kindred.domain.errors import InvalidToken, NotFound
from kindred.domain.tokens import ISSUER, TokenClaims, sign_token, verify_token
from kindred.ports import Clock, CredentialStore, DefinitionsVersion, Secrets
from kindred.services.access.attempts import AttemptLimit, AttemptLimiter, SecretChecker
from kindred.services.access.server_keys import TOKEN_SIGNING_KEY, ServerKeys
from kindred.services.definitions import Versioned

__all__ = [
    "CredentialRegistry",
    "IssuedCredential",
    "OAuthRefusal",
    "TokenLimits",
    "TokenService",
]

_SIGNING_KEY = TOKEN_SIGNING_KEY
_VERIFIED_LIMIT = 10_000


class IssuedCredential(msgspec.Struct, frozen=True):
    """A newly created credential with its secret: the only time the secret is shown."""

    client_id: str
    client_secret: str
    workspaces: list[int]
    name: str
    scopes: list[str]


class OAuthRefusal(Exception):
    """A token request refused; `error` is the OAuth 2.0 error code."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        super().__init__(description)


class _Credentials(CredentialStore, DefinitionsVersion, Protocol):
    """The stored credentials and the definitions' version."""


class CredentialRegistry:
    def __init__(
        self,
        configured: Sequence[ApiCredential],
        store: _Credentials,
        clock: Clock,
        secrets: Secrets,
    ) -> None:
        """The credentials are the config file's and the store's, at the definitions
        version as last committed (a revocation in any process counts at once)."""
        self._configured = {c.client_id: c for c in configured}
        self._store = store
        self._clock = clock
        self._secrets = secrets
        self._merged = Versioned(store, self._load)

    def get(self, client_id: str, version: int | None = None) -> ApiCredential | None:
        """The active credential with this client id, if any: at the definitions `version`
        (the caller read it for the whole request) or else as last committed."""
        merged = self._current() if version is None else self._merged.at(version)
        credential = merged.get(client_id)
        return credential if credential is not None and credential.active else None

    def all(self) -> list[ApiCredential]:
        return sorted(self._current().values(), key=lambda c: (c.created_ms, c.client_id))

    def create(
        self,
        workspaces: Sequence[int],
        *,
        name: str = "",
        rate_limit_per_s: float = 15.0,
        rate_limit_burst: int = 30,
        scopes: Sequence[str] = (PROFILES_SCOPE,),
    ) -> IssuedCredential:
        # Hex: a client id is typed on command lines, where a leading '-' reads as an option.
        client_id = self._secrets.token_bytes(12).hex()
        secret = _token(self._secrets.token_bytes(32))
        credential = ApiCredential(
            client_id=client_id,
            secret_hash=hash_secret(secret, self._secrets.token_bytes(16)),
            workspaces=frozenset(workspaces),
            rate_limit_per_s=rate_limit_per_s,
            rate_limit_burst=rate_limit_burst,
            name=name,
            created_ms=self._clock.now_ms(),
            scopes=frozenset(scopes),
        )
        self._store.save_credential(credential)
        return IssuedCredential(client_id, secret, sorted(workspaces), name, sorted(scopes))

    def revoke(self, client_id: str) -> ApiCredential:
        credential = self._current().get(client_id)
        if credential is None:
            raise NotFound(f"no credential with client id {client_id!r}")
        revoked = msgspec.structs.replace(credential, revoked_ms=self._clock.now_ms())
        self._store.save_credential(revoked)
        return revoked

    def _current(self) -> dict[str, ApiCredential]:
        return self._merged.current()

    def _load(self) -> dict[str, ApiCredential]:
        merged = dict(self._configured)
        merged.update({c.client_id: c for c in self._store.list_credentials()})
        return merged


@dataclass(frozen=True)
class TokenLimits:
    """Token requests allowed per client id and per source address (see AttemptLimiter)."""

    per_client: AttemptLimit
    per_address: AttemptLimit


class TokenService:
    """Issues bearer tokens for client credentials and checks them on every request.

    The signing key comes from ServerKeys (`profile-api-token-signing-key`). A token's
    `aud` is the audience its request named; a route accepts only tokens for the audience
    it serves: the Profile API serves the first of the configured audiences
    (`profile_api_audience`)."""

    def __init__(
        self,
        registry: CredentialRegistry,
        keys: ServerKeys,
        clock: Clock,
        secrets: Secrets,
        *,
        audiences: Sequence[str],
        ttl_s: int,
        limits: TokenLimits,
        checker: SecretChecker,
    ) -> None:
        """`keys`: where the signing key comes from (environment, key file or store); none:
        the store."""
        self._registry = registry
        self._keys = keys
        self._clock = clock
        self._secrets = secrets
        self._audiences = tuple(audiences)
        self._ttl_s = ttl_s
        self._checker = checker
        self._per_client = AttemptLimiter("client", limits.per_client, clock)
        self._per_address = AttemptLimiter("address", limits.per_address, clock)
        self._key: bytes | None = None
        # Tokens already verified: a service sends the same token for hours, so the hot
        # path skips the decoding and the HMAC (expiry and audience are still checked on
        # every request).
        self._verified: dict[str, TokenClaims] = {}

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    @property
    def profile_api_audience(self) -> str:
        """The audience the Profile API serves: the first configured."""
        return self._audiences[0]

    async def issue(
        self,
        grant_type: str,
        client_id: str | None,
        secret: str | None,
        audience: str | None,
        address: str | None = None,
    ) -> str:
        """A signed token; OAuthRefusal for a bad request or wrong credentials, RateLimited
        past the attempts allowed to the client id or the source `address` (None: unknown,
        counted as one address). The secret is checked off the event loop."""
        if grant_type != "client_credentials":
            raise OAuthRefusal(
                400, "unsupported_grant_type", f"grant_type {grant_type!r}: only client_credentials"
            )
        if not client_id or not secret:
            raise OAuthRefusal(400, "invalid_request", "client_id and client_secret are required")
        audience = audience or self._audiences[0]
        if audience not in self._audiences:
            raise OAuthRefusal(403, "access_denied", f"audience {audience!r} is not served here")
        self._per_address.take(address or "")
        self._per_client.take(client_id)
        credential = self._registry.get(client_id)
        # An unknown or revoked client id is checked against a decoy: the same time.
        encoded = credential.secret_hash if credential is not None else None
        if not await self._checker.check(secret, encoded) or credential is None:
            raise OAuthRefusal(401, "invalid_client", "unknown client or wrong client secret")
        now_s = self._clock.now_ms() // 1000
        claims = TokenClaims(
            iss=ISSUER,
            sub=client_id,
            aud=audience,
            iat=now_s,
            exp=now_s + self._ttl_s,
            jti=self._secrets.token_bytes(9).hex(),
        )
        return sign_token(claims, self._signing_key())

    def authenticate(
        self, authorization: str | None, version: int | None = None, *, audience: str | None = None
    ) -> ApiCredential:
        """The credential behind an `Authorization: Bearer ...` header (at the definitions
        `version`, see CredentialRegistry.get) for a route serving `audience` (None: the
        Profile API's); InvalidToken else."""
        return self.credential(self.verify(authorization, audience), version)

    def verify(self, authorization: str | None, audience: str | None = None) -> TokenClaims:
        """The claims of the header's bearer token, checked as `authenticate` checks them
        (signature, expiry, audience) but not yet its credential; InvalidToken else."""
        if not authorization:
            raise InvalidToken("missing Authorization header (Bearer token from /oauth/token)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Authorization header must be 'Bearer <token>'")
        token = token.strip()
        audience = audience or self._audiences[0]
        now_s = self._clock.now_ms() // 1000
        claims = self._verified.get(token)
        if claims is None:
            claims = verify_token(token, self._signing_key(), now_s, audience)
            if len(self._verified) >= _VERIFIED_LIMIT:
                self._verified.clear()
            self._verified[token] = claims
        elif claims.exp <= now_s:
            raise InvalidToken("bearer token has expired")
        elif claims.aud != audience:
            raise InvalidToken("bearer token was issued for another audience")
        return claims

    def credential(self, claims: TokenClaims, version: int | None = None) -> ApiCredential:
        """The active credential a verified token was issued to, at the definitions
        `version`; InvalidToken once it is revoked."""
        credential = self._registry.get(claims.sub, version)
        if credential is None:
            raise InvalidToken("the credential of this token was revoked")
        return credential

    def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = self._keys.key(_SIGNING_KEY)
        return self._key


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
