"""Who is calling: HTTP Basic with an input's key and secret, or a web key in the path."""

from __future__ import annotations

import base64
import binascii
import hmac

from kindred.domain.errors import AuthMissing, AuthRejected
from kindred.domain.tenancy import InputDef, SourceType, Tenancy

__all__ = ["InputAuthenticator", "decode_basic"]

_CACHE_LIMIT = 4096


class InputAuthenticator:
    def __init__(self, tenancy: Tenancy) -> None:
        self._tenancy = tenancy
        # Decoded and checked Authorization headers; the hot path skips base64 and hmac.
        self._verified: dict[str, InputDef] = {}

    def basic(self, header: str | None) -> InputDef:
        """The input a `Basic key:secret` header names (401 when absent, 403 when wrong)."""
        if not header:
            raise AuthMissing("missing Authorization header (HTTP Basic with key and secret)")
        cached = self._verified.get(header)
        if cached is not None:
            return cached
        key, secret = decode_basic(header)
        source = self._tenancy.input_for_key(key)
        if source is None or source.api_secret is None:
            raise AuthRejected("unknown API key")
        if not hmac.compare_digest(source.api_secret.encode(), secret.encode()):
            raise AuthRejected("wrong API secret")
        if len(self._verified) < _CACHE_LIMIT:
            self._verified[header] = source
        return source

    def web_key(self, api_key: str) -> InputDef:
        """A web input named by the key in the URL; web SDKs send no secret."""
        source = self._tenancy.input_for_key(api_key)
        if source is None or source.source_type is not SourceType.WEB:
            raise AuthRejected("unknown web API key")
        return source


def decode_basic(header: str) -> tuple[str, str]:
    """Key and secret from a `Basic base64(key:secret)` header; AuthRejected when malformed."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthRejected("Authorization must be HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        # ValueError: characters beyond ASCII, which base64 never holds.
        raise AuthRejected("Authorization header is not valid base64") from None
    key, sep, secret = decoded.partition(":")
    if not sep:
        raise AuthRejected("Authorization must be key:secret")
    return key, secret
