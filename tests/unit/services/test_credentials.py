"""Credential registry (config + store, revocation) and the token service (API-1)."""

from __future__ import annotations

import asyncio

import pytest

from kindred.domain import credentials as domain_credentials
from kindred.domain.credentials import DECOY_HASH, ApiCredential
from kindred.domain.errors import InvalidToken, NotFound, RateLimited
from kindred.services.access.attempts import AttemptLimit, SecretChecker
from kindred.services.access.credentials import (
    CredentialRegistry,
    OAuthRefusal,
    TokenLimits,
    TokenService,
)
from kindred.services.access.server_keys import ServerKeys
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


PLENTY = TokenLimits(per_client=AttemptLimit(600, 100), per_address=AttemptLimit(600, 100))


def token_service(
    registry: CredentialRegistry,
    store: MemoryStore,
    clock: FakeClock,
    audiences: tuple[str, ...] = (AUDIENCE, "other"),
    limits: TokenLimits = PLENTY,
) -> TokenService:
    return TokenService(
        registry,
        ServerKeys(store, CountingSecrets()),
        clock,
        CountingSecrets(),
        audiences=audiences,
        ttl_s=28_800,
        limits=limits,
        checker=SecretChecker(),
    )


@pytest.fixture
def tokens(registry: CredentialRegistry, store: MemoryStore, clock: FakeClock) -> TokenService:
    return token_service(registry, store, clock)


def issue(
    tokens: TokenService,
    client_id: str | None = "cfg",
    secret: str | None = "cfg-secret",
    audience: str | None = AUDIENCE,
    *,
    address: str | None = "192.0.2.1",
    grant: str = "client_credentials",
) -> str:
    return asyncio.run(tokens.issue(grant, client_id, secret, audience, address))


def bearer(tokens: TokenService, client_id: str = "cfg", secret: str = "cfg-secret") -> str:
    return "Bearer " + issue(tokens, client_id, secret)


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
        issue(tokens, client_id, secret, audience, grant=grant)
    assert (refused.value.status, refused.value.error) == (status, error)


def test_no_audience_means_the_first_one(tokens: TokenService) -> None:
    token = issue(tokens, audience=None)
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
    other = token_service(registry, store, clock, audiences=(AUDIENCE,))
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


def test_the_profile_api_accepts_only_tokens_for_its_audience(tokens: TokenService) -> None:
    """Both audiences may be asked for; a route accepts only the one it serves (the
    Profile API: the first configured), also for a token it has verified before."""
    assert tokens.profile_api_audience == AUDIENCE
    for_other = "Bearer " + issue(tokens, audience="other")
    with pytest.raises(InvalidToken, match="another audience"):
        tokens.authenticate(for_other)
    assert tokens.authenticate(for_other, audience="other").client_id == "cfg"
    with pytest.raises(InvalidToken, match="another audience"):
        tokens.authenticate(for_other, audience=AUDIENCE)
    for_api = bearer(tokens)
    assert tokens.authenticate(for_api).client_id == "cfg"
    with pytest.raises(InvalidToken, match="another audience"):
        tokens.authenticate(for_api, audience="other")


def test_token_requests_are_limited_per_client_id(
    registry: CredentialRegistry, store: MemoryStore, clock: FakeClock
) -> None:
    limits = TokenLimits(per_client=AttemptLimit(60, 3), per_address=AttemptLimit(600, 100))
    tokens = token_service(registry, store, clock, limits=limits)
    for n in range(3):  # from addresses of their own: the client id's limit counts
        with pytest.raises(OAuthRefusal):
            issue(tokens, secret="wrong", address=f"192.0.2.{n}")
    with pytest.raises(RateLimited) as limited:
        issue(tokens, address="198.51.100.7")  # even with the right secret
    assert (limited.value.scope, limited.value.retry_after_s) == ("client", 1)
    # Another client id is not held back.
    with pytest.raises(OAuthRefusal):
        issue(tokens, client_id="nobody")
    clock.advance(1_000)  # 60 a minute: one more a second
    assert issue(tokens)


def test_token_requests_are_limited_per_source_address(
    registry: CredentialRegistry, store: MemoryStore, clock: FakeClock
) -> None:
    limits = TokenLimits(per_client=AttemptLimit(600, 100), per_address=AttemptLimit(6, 2))
    tokens = token_service(registry, store, clock, limits=limits)
    for client_id in ("a", "b"):
        with pytest.raises(OAuthRefusal):
            issue(tokens, client_id=client_id)
    with pytest.raises(RateLimited) as limited:
        issue(tokens, client_id="c")
    assert (limited.value.scope, limited.value.retry_after_s) == ("address", 10)
    assert issue(tokens, address="192.0.2.99")  # another address is not held back


def test_a_malformed_request_takes_no_attempt(
    registry: CredentialRegistry, store: MemoryStore, clock: FakeClock
) -> None:
    limits = TokenLimits(per_client=AttemptLimit(1, 1), per_address=AttemptLimit(1, 1))
    tokens = token_service(registry, store, clock, limits=limits)
    for _ in range(3):
        with pytest.raises(OAuthRefusal):
            issue(tokens, grant="password")
        with pytest.raises(OAuthRefusal):
            issue(tokens, audience="https://else")
    assert issue(tokens)


@pytest.mark.parametrize("client_id", ["nobody", "cfg", "revoked"])
def test_every_token_request_checks_one_scrypt_hash(
    tokens: TokenService,
    registry: CredentialRegistry,
    monkeypatch: pytest.MonkeyPatch,
    client_id: str,
) -> None:
    """An unknown client id, a revoked one and a config file's plain secret are all
    checked against the decoy hash: one scrypt each, the time of any other check."""
    revoked = registry.create([1])
    registry.revoke(revoked.client_id)
    checked: list[str] = []
    verify = domain_credentials.verify_secret

    def spy(secret: str, encoded: str) -> bool:
        checked.append(encoded)
        return verify(secret, encoded)

    monkeypatch.setattr(domain_credentials, "verify_secret", spy)
    with pytest.raises(OAuthRefusal) as refused:
        issue(
            tokens,
            client_id=revoked.client_id if client_id == "revoked" else client_id,
            secret="wrong",
        )
    assert refused.value.status == 401
    assert [e for e in checked if e.startswith("scrypt$")] == [DECOY_HASH]


def test_a_created_credential_is_checked_against_its_own_hash(
    tokens: TokenService, registry: CredentialRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = registry.create([1])
    checked: list[str] = []
    verify = domain_credentials.verify_secret

    def spy(secret: str, encoded: str) -> bool:
        checked.append(encoded)
        return verify(secret, encoded)

    monkeypatch.setattr(domain_credentials, "verify_secret", spy)
    assert issue(tokens, client_id=issued.client_id, secret=issued.client_secret)
    (encoded,) = checked
    assert encoded.startswith("scrypt$")
    assert encoded != DECOY_HASH


def test_secrets_are_checked_off_the_event_loop(tokens: TokenService) -> None:
    """While a wrong secret is being checked (~0.1 s of scrypt) the loop runs other work."""

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        started = loop.time()
        with pytest.raises(OAuthRefusal):
            await tokens.issue("client_credentials", "nobody", "wrong", AUDIENCE, "192.0.2.1")
        elapsed = loop.time() - started
        stop = True
        await task
        return ticks, elapsed

    ticks, elapsed = asyncio.run(main())
    assert elapsed > 0.02  # it did run scrypt
    assert ticks >= elapsed / 0.005 / 4


def test_too_many_checks_waiting_are_refused_at_once() -> None:
    checker = SecretChecker(threads=1, max_waiting=2)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(checker.check("wrong", DECOY_HASH) for _ in range(4)), return_exceptions=True
        )

    results = asyncio.run(main())
    checker.close()
    assert results[:2] == [False, False]
    assert all(isinstance(r, RateLimited) and r.scope == "server" for r in results[2:])
