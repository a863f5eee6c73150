"""API credentials of the Profile API (API-1): who may read which workspaces, how often.

Secrets are kept as scrypt hashes. A secret declared in plain text in the config file is
compared as it is (it is already on disk in that form); a hash never holds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

__all__ = [
    "CREDENTIAL_SCOPES",
    "DECOY_HASH",
    "PROFILES_SCOPE",
    "ApiCredential",
    "check_secret",
    "hash_secret",
    "is_secret_hash",
    "verify_secret",
]

# scrypt cost: ~0.1 s per check here. Token requests are rare (a token lasts hours), so a
# guessed secret stays expensive without slowing anyone down.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


PROFILES_SCOPE = "profiles"
CREDENTIAL_SCOPES = frozenset({PROFILES_SCOPE, "platform"})


class ApiCredential(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    # "scrypt$N$r$p$salt$hash" (see hash_secret) or "plain$SECRET" for a config-file secret.
    secret_hash: str
    workspaces: frozenset[int]
    rate_limit_per_s: float = 15.0
    rate_limit_burst: int = 30
    name: str = ""
    created_ms: int = 0
    revoked_ms: int | None = None
    # "config" (declared in the config file) or "store" (created with the CLI).
    origin: str = "store"
    # What its tokens may do: "profiles" (the Profile API), "platform" (the Platform API's
    # audience list). Credentials stored before scopes existed read profiles only.
    scopes: frozenset[str] = frozenset({PROFILES_SCOPE})

    @property
    def active(self) -> bool:
        return self.revoked_ms is None

    def covers(self, workspace_id: int) -> bool:
        return workspace_id in self.workspaces


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def is_secret_hash(text: str) -> bool:
    parts = text.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(p.isdigit() for p in parts[1:4])


def verify_secret(secret: str, encoded: str) -> bool:
    """Constant-time comparison against a hash (or a config file's plain secret)."""
    scheme, _, rest = encoded.partition("$")
    if scheme == "plain":
        return hmac.compare_digest(secret.encode(), rest.encode())
    if scheme != "scrypt" or not is_secret_hash(encoded):
        return False
    n, r, p, salt, digest = rest.split("$")
    computed = hashlib.scrypt(
        secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM
    )
    return hmac.compare_digest(computed, _unb64(digest))


# A hash of no secret, with the cost of every other: checked against when there is no hash to
# check (an unknown client id or user name, a config file's plain secret), so that each
# check costs one scrypt whatever the outcome, and the time taken tells nothing.
DECOY_HASH = f"scrypt${_N}${_R}${_P}${_b64(bytes(16))}${_b64(bytes(64))}"


def check_secret(secret: str, encoded: str | None) -> bool:
    """verify_secret at the cost of exactly one scrypt: against `encoded` when it is a hash,
    else against DECOY_HASH (never a match) before comparing a plain secret. None: no
    credential, never a match."""
    if encoded is not None and is_secret_hash(encoded):
        return verify_secret(secret, encoded)
    verify_secret(secret, DECOY_HASH)
    return encoded is not None and encoded.startswith("plain$") and verify_secret(secret, encoded)
