"""Signing in to the web UI: a signed cookie naming a session the store keeps, which ends
with its lifetime, at sign-out (for every process sharing the store) or when its user is
taken out of the config; sign-in attempts are limited and checked off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from kindred.domain import credentials as domain_credentials
from kindred.domain.credentials import DECOY_HASH, hash_secret
from kindred.domain.errors import RateLimited
from kindred.domain.users import UserRecord
from kindred.services.access.attempts import AttemptLimit, SecretChecker
from kindred.services.access.server_keys import ServerKeys
from kindred.services.access.sessions import SignInLimits, UiSessions
from kindred.services.access.users import UserDirectory
from kindred.storage.memory import MemoryStore
from kindred.system import SecureSecrets
from tests.fakes import FakeClock

USERS = {"ann": hash_secret("pw-ann", b"salt-ann")}
PLENTY = SignInLimits(per_user=AttemptLimit(600, 100), per_address=AttemptLimit(600, 100))


def sessions_on(
    clock: FakeClock,
    store: MemoryStore,
    users: dict[str, str] = USERS,
    limits: SignInLimits = PLENTY,
) -> UiSessions:
    """The sessions of one server process on `store`."""
    keys = ServerKeys(store, SecureSecrets())
    configured = [UserRecord(name=n, role="admin", password_hash=h) for n, h in users.items()]
    return UiSessions(
        UserDirectory(configured, store, clock, SecureSecrets()),
        600,
        store,
        keys,
        clock,
        secrets=SecureSecrets(),
        limits=limits,
        checker=SecretChecker(),
    )


def sign_in(
    sessions: UiSessions, name: str = "ann", password: str = "pw-ann", address: str = "192.0.2.1"
) -> str | None:
    return asyncio.run(sessions.sign_in(name, password, address))


def signed_in(sessions: UiSessions, cookie: str | None) -> str | None:
    visitor = sessions.visitor_of(cookie)
    return None if visitor is None else visitor.name


def test_a_right_password_gives_a_cookie_that_names_the_user() -> None:
    clock, store = FakeClock(), MemoryStore()
    sessions = sessions_on(clock, store)
    cookie = sign_in(sessions)
    assert cookie is not None
    assert signed_in(sessions, cookie) == "ann"
    # Another process on the same store accepts it (one key, one session, in the store).
    assert signed_in(sessions_on(clock, store), cookie) == "ann"


@pytest.mark.parametrize(("name", "password"), [("ann", "wrong"), ("bob", "pw-ann"), ("", "")])
def test_a_wrong_name_or_password_gives_nothing(name: str, password: str) -> None:
    store = MemoryStore()
    assert sign_in(sessions_on(FakeClock(), store), name, password) is None
    assert store.purge_sessions(2**62) == 0  # no session was saved


def test_a_cookie_ends_after_the_session_lifetime() -> None:
    clock = FakeClock()
    sessions = sessions_on(clock, MemoryStore())
    cookie = sign_in(sessions)
    clock.advance(599_000)
    assert signed_in(sessions, cookie) == "ann"
    clock.advance(1_000)
    assert signed_in(sessions, cookie) is None


def test_signing_out_ends_the_session_in_every_process() -> None:
    clock, store = FakeClock(), MemoryStore()
    here, there = sessions_on(clock, store), sessions_on(clock, store)
    cookie = sign_in(here)
    other = sign_in(here)
    assert signed_in(there, cookie) == "ann"
    asyncio.run(there.sign_out(cookie))
    assert signed_in(here, cookie) is None
    assert signed_in(there, cookie) is None
    # The user's other session stands.
    assert signed_in(here, other) == "ann"


def test_a_session_the_store_does_not_know_is_refused() -> None:
    """A validly signed cookie whose session is not (or no longer) in the store."""
    clock, store = FakeClock(), MemoryStore()
    sessions = sessions_on(clock, store)
    cookie = sign_in(sessions)
    assert store.purge_sessions(2**62) == 1
    assert signed_in(sessions, cookie) is None


def test_a_changed_or_foreign_cookie_is_refused() -> None:
    clock, store = FakeClock(), MemoryStore()
    cookie = sign_in(sessions_on(clock, store))
    assert cookie is not None
    payload, _, signature = cookie.rpartition(".")
    sessions = sessions_on(clock, store)
    for forged in (
        f"{payload}.{signature[:-2]}AA",
        f"{payload[:-1]}A.{signature}",
        cookie + "=",
        "x.y.z",
        "",
        "a.b",
        None,
    ):
        assert signed_in(sessions, forged) is None, forged
    # A store with another key (another installation) does not accept it.
    assert signed_in(sessions_on(clock, MemoryStore()), cookie) is None


def test_a_cookie_spelled_another_way_is_refused() -> None:
    """The last base64 character of the signature carries unused bits: spellings that
    differ only there decode alike; only the one the server wrote is accepted."""
    clock, store = FakeClock(), MemoryStore()
    sessions = sessions_on(clock, store)
    cookie = sign_in(sessions)
    assert cookie is not None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(cookie[-1])
    # 32 bytes of HMAC-SHA256 are 43 characters: the last carries 4 bits and 2 unused.
    others = [c for c in alphabet if c != cookie[-1] and alphabet.index(c) >> 2 == last >> 2]
    assert len(others) == 3
    for other in others:
        assert signed_in(sessions, cookie[:-1] + other) is None


def test_a_user_taken_out_of_the_config_loses_the_session() -> None:
    clock, store = FakeClock(), MemoryStore()
    cookie = sign_in(sessions_on(clock, store))
    assert signed_in(sessions_on(clock, store, users={}), cookie) is None


def test_each_session_has_its_own_csrf_token_that_every_process_knows() -> None:
    clock, store = FakeClock(), MemoryStore()
    sessions = sessions_on(clock, store)
    first, second = sign_in(sessions), sign_in(sessions)
    visitor, other = sessions.visitor_of(first), sessions.visitor_of(second)
    assert visitor is not None
    assert other is not None
    assert visitor.name == "ann"
    assert len(visitor.csrf) >= 40
    assert visitor.csrf != other.csrf
    assert sessions_on(clock, store).visitor_of(first) == visitor
    assert visitor.may_post(visitor.csrf)
    for wrong in (other.csrf, "", visitor.csrf[:-1], visitor.csrf + "x"):
        assert not visitor.may_post(wrong)
    assert sessions.visitor_of("x.y.z") is None


def test_sign_in_attempts_are_limited_per_user_name() -> None:
    clock = FakeClock()
    limits = SignInLimits(per_user=AttemptLimit(6, 2), per_address=AttemptLimit(600, 100))
    sessions = sessions_on(clock, MemoryStore(), limits=limits)
    assert sign_in(sessions, password="wrong", address="192.0.2.1") is None
    assert sign_in(sessions, password="wrong", address="192.0.2.2") is None
    with pytest.raises(RateLimited) as limited:
        sign_in(sessions, address="192.0.2.3")  # even with the right password
    assert (limited.value.scope, limited.value.retry_after_s) == ("user", 10)
    assert sign_in(sessions, name="bob") is None  # another name is not held back
    clock.advance(10_000)
    assert sign_in(sessions) is not None


def test_sign_in_attempts_are_limited_per_source_address() -> None:
    clock = FakeClock()
    limits = SignInLimits(per_user=AttemptLimit(600, 100), per_address=AttemptLimit(30, 2))
    sessions = sessions_on(clock, MemoryStore(), limits=limits)
    for name in ("bob", "cy"):
        assert sign_in(sessions, name=name) is None
    with pytest.raises(RateLimited) as limited:
        sign_in(sessions)
    assert (limited.value.scope, limited.value.retry_after_s) == ("address", 2)
    assert sign_in(sessions, address="192.0.2.99") is not None


def test_an_unknown_name_is_checked_against_the_decoy(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    verify = domain_credentials.verify_secret

    def spy(secret: str, encoded: str) -> bool:
        checked.append(encoded)
        return verify(secret, encoded)

    monkeypatch.setattr(domain_credentials, "verify_secret", spy)
    sessions = sessions_on(FakeClock(), MemoryStore())
    assert sign_in(sessions, name="nobody") is None
    assert checked == [DECOY_HASH]
    assert sign_in(sessions, password="wrong") is None
    assert checked[1:] == [USERS["ann"]]
