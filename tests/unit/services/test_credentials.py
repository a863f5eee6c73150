"""Credential registry (config + store, revocation) and the token service (API-1)."""

from __future__ import annotations

import pytest

from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import InvalidToken, NotFound
from kindred.services.access.credentials import CredentialRegistry, OAuthRefusal, TokenService
from kindred.storage.memory import MemoryStore
from tests.fakes import CountingSecrets, FakeClock

AUDIENCE = "https://api.mparticle.com"
CONFIGURED = ApiCredential(
    client_id="cfg", secret_hash="plain$cfg-secret", workspaces=frozenset({1}), origin="config"
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def registry(store: MemoryStore, clock: FakeClock) -> CredentialRegistry:
    return CredentialRegistry([CONFIGURED], store, clock, CountingSecrets())


@pytest.fixture
def tokens(registry: CredentialRegistry, store: MemoryStore, clock: FakeClock) -> TokenService:
    return TokenService(
        registry, store, clock, CountingSecrets(), audiences=[AUDIENCE, "other"], ttl_s=28_800
    )


def bearer(tokens: TokenService, client_id: str = "cfg", secret: str = "cfg-secret") -> str:
    return "Bearer " + tokens.issue("client_credentials", client_id, secret, AUDIENCE)


def test_a_configured_credential_gets_a_token_that_authenticates(tokens: TokenService) -> None:
    assert tokens.authenticate(bearer(tokens)) == CONFIGURED


def test_created_credentials_keep_only_a_hash(
    registry: CredentialRegistry, store: MemoryStore, tokens: TokenService
) -> None:
    issued = registry.create([1, 2], name="recs", rate_limit_per_s=5, rate_limit_burst=7)
    (stored,) = store.list_credentials()
    assert stored.client_id == issued.client_id
    assert issued.client_secret not in stored.secret_hash
    assert stored.secret_hash.startswith("scrypt$")
    assert (stored.workspaces, stored.rate_limit_per_s, stored.rate_limit_burst) == (
        frozenset({1, 2}),
        5,
        7,
    )
    credential = tokens.authenticate(bearer(tokens, issued.client_id, issued.client_secret))
    assert credential.client_id == issued.client_id


@pytest.mark.parametrize(
    ("grant", "client_id", "secret", "audience", "status", "error"),
    [
        ("password", "cfg", "cfg-secret", AUDIENCE, 400, "unsupported_grant_type"),
        ("client_credentials", None, "cfg-secret", AUDIENCE, 400, "invalid_request"),
        ("client_credentials", "cfg", "wrong", AUDIENCE, 401, "invalid_client"),
        ("client_credentials", "nobody", "cfg-secret", AUDIENCE, 401, "invalid_client"),
        ("client_credentials", "cfg", "cfg-secret", "https://else", 403, "access_denied"),
    ],
)
def test_token_requests_are_refused_with_oauth_errors(  # noqa: PLR0917 - parametrized
    tokens: TokenService,
    grant: str,
    client_id: str | None,
    secret: str,
    audience: str,
    status: int,
    error: str,
) -> None:
    with pytest.raises(OAuthRefusal) as refused:
        tokens.issue(grant, client_id, secret, audience)
    assert (refused.value.status, refused.value.error) == (status, error)


def test_no_audience_means_the_first_one(tokens: TokenService) -> None:
    token = tokens.issue("client_credentials", "cfg", "cfg-secret", None)
    assert tokens.authenticate(f"Bearer {token}").client_id == "cfg"


def test_tokens_expire_after_their_lifetime(tokens: TokenService, clock: FakeClock) -> None:
    header = bearer(tokens)
    clock.advance(28_799_000)
    tokens.authenticate(header)
    clock.advance(1_000)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.authenticate(header)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer x.y.z"])
def test_requests_without_a_valid_bearer_token_are_refused(
    tokens: TokenService, header: str | None
) -> None:
    with pytest.raises(InvalidToken):
        tokens.authenticate(header)


def test_tokens_verify_in_another_process_sharing_the_store(
    tokens: TokenService, registry: CredentialRegistry, store: MemoryStore, clock: FakeClock
) -> None:
    other = TokenService(registry, store, clock, CountingSecrets(), audiences=[AUDIENCE], ttl_s=60)
    assert other.authenticate(bearer(tokens)).client_id == "cfg"


def test_revoking_stops_tokens_in_every_registry_at_once(
    registry: CredentialRegistry, store: MemoryStore, clock: FakeClock, tokens: TokenService
) -> None:
    header = bearer(tokens)
    elsewhere = CredentialRegistry([CONFIGURED], store, clock, CountingSecrets())
    assert elsewhere.get("cfg") is not None
    registry.revoke("cfg")
    with pytest.raises(InvalidToken, match="revoked"):
        tokens.authenticate(header)
    # The other registry (another process sharing the store) knows it as soon as the
    # revocation is committed: no refresh interval to wait out.
    assert elsewhere.get("cfg") is None
    assert [c.revoked_ms for c in elsewhere.all()] == [clock.now]


def test_revoking_an_unknown_client_is_not_found(registry: CredentialRegistry) -> None:
    with pytest.raises(NotFound):
        registry.revoke("nobody")


class _DashFirst:
    """Bytes whose URL-safe base64 spelling starts with '-'."""

    def token_bytes(self, n: int) -> bytes:
        return b"\xf8" * n


def test_a_client_id_never_reads_as_a_command_line_option(
    store: MemoryStore, clock: FakeClock
) -> None:
    issued = CredentialRegistry([], store, clock, _DashFirst()).create([1])
    assert not issued.client_id.startswith("-")
    assert all(c in "0123456789abcdef" for c in issued.client_id)
