"""Bearer tokens (signed, expiring, tamper-evident) and credential secrets (hashed)."""

from __future__ import annotations

import base64
import json
import string

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
CLAIMS = TokenClaims(
    iss="kindred", sub="client-1", aud="https://api", iat=1_000, exp=2_000, jti="x"
)


def test_a_signed_token_verifies_until_it_expires() -> None:
    token = sign_token(CLAIMS, KEY)
    assert verify_token(token, KEY, now_s=1_999) == CLAIMS
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, KEY, now_s=2_000)


def test_a_token_is_a_standard_hs256_jwt() -> None:
    header, payload, _ = sign_token(CLAIMS, KEY).split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(payload + "=="))["sub"] == "client-1"


def test_another_key_does_not_verify() -> None:
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(sign_token(CLAIMS, KEY), b"other-key", now_s=1_500)


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
        verify_token(changed.decode("latin-1"), KEY, now_s=1_500)


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
            verify_token(f"{head}.{signature[:-1]}{other}", KEY, now_s=1_500)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 5000],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(token, KEY, now_s=1_500)


def test_a_token_naming_another_algorithm_is_refused() -> None:
    _, payload, signature = sign_token(CLAIMS, KEY).split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    with pytest.raises(InvalidToken, match="not a token issued"):
        verify_token(f"{header}.{payload}.{signature}", KEY, now_s=1_500)


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
