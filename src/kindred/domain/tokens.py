"""Bearer tokens of the Profile API: JSON Web Tokens signed with HMAC-SHA256 (PyJWT).

A token carries who it was issued to, for which audience and until when; any process
holding the signing key verifies it without a lookup, so tokens survive restarts and work
across server processes. What a token may read is not in it: that is looked up on the
credential, so a revoked credential's tokens stop working at once.

Verification is strict: the header must be exactly the one this server writes (`HS256`,
no other algorithm, no extra parameters), the claims `iss`, `sub`, `aud`, `iat`, `exp` and
`jti` must all be there with their types, `aud` must be the audience the caller serves, and
the signature must be spelled exactly as this server spells it (base64url decoding is
lenient: other spellings of the same bytes are refused). The time is passed in.
"""

from __future__ import annotations

import hmac

import jwt
import msgspec
from jwt.algorithms import HMACAlgorithm
from jwt.types import Options
from jwt.utils import base64url_encode

from kindred.domain.errors import InvalidToken

__all__ = ["ISSUER", "TokenClaims", "sign_token", "verify_token"]

ISSUER = "kindred"
_ALGORITHM = "HS256"
_HEADER = {"alg": _ALGORITHM, "typ": "JWT"}
_REQUIRED = ["iss", "sub", "aud", "iat", "exp", "jti"]
# Claims are checked here against the time passed in, not by PyJWT against the system clock.
_OPTIONS: Options = {
    "require": _REQUIRED,
    "verify_signature": True,
    "verify_aud": True,
    "verify_iss": True,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_sub": True,
    "verify_jti": True,
    "strict_aud": True,
}
# Far longer than any token this server issues: a longer one is refused before decoding.
_MAX_LENGTH = 2048
# Clocks of processes sharing a store may differ a little.
_IAT_LEEWAY_S = 60
_HMAC = HMACAlgorithm(HMACAlgorithm.SHA256)


class TokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    iss: str
    sub: str  # the client id
    aud: str
    iat: int  # seconds since the epoch
    exp: int
    jti: str


def sign_token(claims: TokenClaims, key: bytes) -> str:
    return jwt.encode(msgspec.structs.asdict(claims), key, algorithm=_ALGORITHM)


def verify_token(token: str, key: bytes, now_s: int, audience: str) -> TokenClaims:
    """The token's claims; InvalidToken unless it is ours, intact, issued for `audience`
    and not expired at `now_s`."""
    if len(token) > _MAX_LENGTH or token.count(".") != 2:
        raise InvalidToken("bearer token is not a token issued by this server")
    try:
        if jwt.get_unverified_header(token) != _HEADER:
            raise InvalidToken("bearer token is not a token issued by this server")
        payload = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options=_OPTIONS,
        )
    except jwt.InvalidSignatureError:
        raise InvalidToken("bearer token signature does not match") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("bearer token was issued for another audience") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"bearer token lacks the claim {exc.claim!r}") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("bearer token is not a token issued by this server") from None
    signing_input, _, signature = token.rpartition(".")
    expected = base64url_encode(_HMAC.sign(signing_input.encode(), key))
    # Compared as text: two encodings that differ only in the last character's unused
    # bits (or in padding) decode to the same bytes; only the one this server writes is
    # its token.
    if not hmac.compare_digest(signature.encode(), expected):
        raise InvalidToken("bearer token signature does not match")
    try:
        claims = msgspec.convert(payload, TokenClaims)
    except msgspec.ValidationError as exc:
        raise InvalidToken(f"bearer token claims are malformed: {exc}") from None
    if claims.exp <= now_s:
        raise InvalidToken("bearer token has expired")
    if claims.iat > now_s + _IAT_LEEWAY_S:
        raise InvalidToken("bearer token was issued in the future")
    return claims
