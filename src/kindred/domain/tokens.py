"""Bearer tokens of the Profile API: JSON Web Tokens signed with HMAC-SHA256.

A token carries who it was issued to and until when; any process holding the signing key
verifies it without a lookup, so tokens survive restarts and work across server processes.
What a token may read is not in it: that is looked up on the credential, so a revoked
credential's tokens stop working at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

from kindred.domain.errors import InvalidToken

__all__ = ["TokenClaims", "sign_token", "verify_token"]

# Only this header is ever accepted: a token naming another algorithm is not ours.
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")


class TokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    iss: str
    sub: str  # the client id
    aud: str
    iat: int  # seconds since the epoch
    exp: int
    jti: str


_DECODER = msgspec.json.Decoder(TokenClaims)
_ENCODER = msgspec.json.Encoder()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signature(signing_input: bytes, key: bytes) -> bytes:
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def sign_token(claims: TokenClaims, key: bytes) -> str:
    signing_input = f"{_HEADER}.{_b64(_ENCODER.encode(claims))}"
    return f"{signing_input}.{_b64(_signature(signing_input.encode(), key))}"


def verify_token(token: str, key: bytes, now_s: int) -> TokenClaims:
    """The token's claims; InvalidToken unless it is ours, intact and not expired."""
    header, dot, rest = token.partition(".")
    payload, dot2, signature = rest.partition(".")
    if header != _HEADER or not dot or not dot2:
        raise InvalidToken("bearer token is not a token issued by this server")
    expected = _b64(_signature(f"{header}.{payload}".encode(), key))
    # Compared as text: two encodings that differ only in the last character's unused
    # bits decode to the same bytes, and only the one this server issued is its token.
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise InvalidToken("bearer token signature does not match")
    try:
        claims = _DECODER.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidToken("bearer token is malformed") from None
    if claims.exp <= now_s:
        raise InvalidToken("bearer token has expired")
    return claims
