"""Bearer tokens (signed, expiring, tamper-evident) and credential secrets (hashed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.credentials import (
    ApiCredential,
    hash_secret,
    is_secret_hash,
    verify_secret,
)
from kindred.domain.errors import AuthMissing, InvalidToken
from kindred.domain.tokens import TokenClaims, sign_token, verify_token

KEY = b"k" * 32
AUD = "https://api"
CLAIMS = TokenClaims(iss="kindred", sub="client-1", aud=AUD, iat=1_000, exp=2_000, jti="x")


def verify(token: str, now_s: int = 1_500, key: bytes = KEY, audience: str = AUD) -> TokenClaims:
    return verify_token(token, key, now_s, audience)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed(header: dict[str, Any], claims: dict[str, Any], key: bytes = KEY) -> str:
    """A token with this header and these claims, correctly signed with `key`."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


HEADER = {"alg": "HS256", "typ": "JWT"}
FIELDS = {"iss": "kindred", "sub": "client-1", "aud": AUD, "iat": 1_000, "exp": 2_000, "jti": "x"}


def test_a_signed_token_verifies_until_it_expires() -> None:
    token = sign_token(CLAIMS, KEY)
    assert verify(token, now_s=1_999) == CLAIMS
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, now_s=2_000)


def test_a_token_is_a_standard_hs256_jwt() -> None:
    header, payload, _ = sign_token(CLAIMS, KEY).split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(payload + "=="))["sub"] == "client-1"
    # Any HS256 library makes the same token from the same header, claims and key.
    assert verify(_signed(HEADER, FIELDS)) == CLAIMS


def test_another_key_does_not_verify() -> None:
    with pytest.raises(InvalidToken, match="signature"):
        verify(sign_token(CLAIMS, KEY), key=b"o" * 32)


def test_invalid_tokens_are_authentication_failures() -> None:
    assert issubclass(InvalidToken, AuthMissing)  # answered 401, like a missing token


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_is_refused(position: int, value: int) -> None:
    token = sign_token(CLAIMS, KEY).encode()
    index = position % len(token)
    changed = token[:index] + bytes([value]) + token[index + 1 :]
    if changed == token:
        return
    with pytest.raises(InvalidToken):
        verify(changed.decode("latin-1"))


def test_a_signature_spelled_another_way_is_refused() -> None:
    """The last base64 character of a 32-byte signature carries 2 unused bits: the
    spellings that differ only there decode alike, and only the issued one is accepted."""
    token = sign_token(CLAIMS, KEY)
    head, _, signature = token.rpartition(".")
    decoded = base64.urlsafe_b64decode(signature + "=")
    alphabet = string.ascii_letters + string.digits + "-_"
    others = [
        c
        for c in alphabet
        if c != signature[-1] and base64.urlsafe_b64decode(signature[:-1] + c + "=") == decoded
    ]
    assert others  # such spellings exist
    for other in others:
        with pytest.raises(InvalidToken):
            verify(f"{head}.{signature[:-1]}{other}")


def test_a_padded_signature_is_refused() -> None:
    """PyJWT alone accepts a signature with its base64 padding written out."""
    token = sign_token(CLAIMS, KEY)
    assert len(token.rpartition(".")[2]) % 4 == 3  # one "=" would pad it
    with pytest.raises(InvalidToken, match="signature"):
        verify(token + "=")
    for padding in ("==", "==="):
        with pytest.raises(InvalidToken):
            verify(token + padding)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "a.b.c.d", "eyJhbGciOiJub25lIn0.e30.", "x" * 5000],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(token)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "typ": "JWT"},
        {"alg": "HS512", "typ": "JWT"},
        {"alg": "HS384", "typ": "JWT"},
        {"alg": "RS256", "typ": "JWT"},
        {"alg": "hs256", "typ": "JWT"},
        {"typ": "JWT"},
        # HS256, but with parameters this server never writes
        {"alg": "HS256", "typ": "JWT", "kid": "other"},
        {"alg": "HS256", "typ": "JWT", "b64": False, "crit": ["b64"]},
        {"alg": "HS256"},
    ],
)
def test_a_token_with_any_other_header_is_refused(header: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken, match="not a token issued"):
        verify(_signed(header, FIELDS))


def test_an_unsigned_token_is_refused() -> None:
    _, payload, _ = sign_token(CLAIMS, KEY).split(".")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    for signature in ("", _b64(b"")):
        with pytest.raises(InvalidToken):
            verify(f"{header}.{payload}.{signature}")


def test_a_token_for_another_audience_is_refused() -> None:
    token = sign_token(msgspec.structs.replace(CLAIMS, aud="https://elsewhere"), KEY)
    with pytest.raises(InvalidToken, match="another audience"):
        verify(token)
    assert verify(token, audience="https://elsewhere").aud == "https://elsewhere"


@pytest.mark.parametrize("aud", [[AUD], [AUD, "https://elsewhere"], "", 1])
def test_an_audience_that_is_not_exactly_the_one_served_is_refused(aud: object) -> None:
    with pytest.raises(InvalidToken):
        verify(_signed(HEADER, {**FIELDS, "aud": aud}))


@pytest.mark.parametrize("claim", sorted(FIELDS))
def test_a_token_without_a_required_claim_is_refused(claim: str) -> None:
    claims = {k: v for k, v in FIELDS.items() if k != claim}
    with pytest.raises(InvalidToken):
        verify(_signed(HEADER, claims))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"exp": "2000"},
        {"exp": 2000.5},
        {"iat": True},
        {"sub": 7},
        {"jti": None},
        {"iat": 1_500 + 3_600},  # issued an hour from now
    ],
)
def test_a_token_with_a_wrong_claim_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        verify(_signed(HEADER, {**FIELDS, **changes}))


def test_secret_hashes_verify_only_their_secret() -> None:
    encoded = hash_secret("s3cret", salt=b"0123456789abcdef")
    assert is_secret_hash(encoded)
    assert "s3cret" not in encoded
    assert verify_secret("s3cret", encoded)
    assert not verify_secret("s3cret ", encoded)
    assert not verify_secret("", encoded)


def test_the_salt_makes_equal_secrets_hash_apart() -> None:
    assert hash_secret("same", b"a" * 16) != hash_secret("same", b"b" * 16)


def test_a_config_file_secret_is_compared_as_written() -> None:
    assert verify_secret("demo-secret", "plain$demo-secret")
    assert not verify_secret("demo", "plain$demo-secret")


@pytest.mark.parametrize("encoded", ["", "md5$abc", "scrypt$1$2", "scrypt$x$8$1$c2FsdA$aA"])
def test_unknown_hash_formats_verify_nothing(encoded: str) -> None:
    assert not verify_secret("anything", encoded)


def test_a_credential_covers_only_its_workspaces() -> None:
    credential = ApiCredential(client_id="c", secret_hash="plain$s", workspaces=frozenset({1, 3}))
    assert credential.covers(1)
    assert credential.covers(3)
    assert not credential.covers(2)
    assert credential.active
