"""Signing in to the web UI: the cookie is signed, ends, and names a configured user."""

from __future__ import annotations

import asyncio

import pytest

from kindred.api.ui.session import Sessions
from kindred.config import UiSettings, UiUserSettings
from kindred.domain.credentials import hash_secret
from kindred.services.access.server_keys import ServerKeys
from kindred.storage.memory import MemoryStore
from kindred.system import SecureSecrets
from tests.fakes import FakeClock

USERS = [UiUserSettings(name="ann", password_hash=hash_secret("pw-ann", b"salt-ann"))]


def _sessions(
    clock: FakeClock, store: MemoryStore, users: list[UiUserSettings] = USERS
) -> Sessions:
    keys = ServerKeys(store, SecureSecrets())
    return Sessions(UiSettings(users=users, session_ttl_s=600), keys, clock)


def test_a_right_password_gives_a_cookie_that_names_the_user() -> None:
    clock, store = FakeClock(), MemoryStore()
    sessions = _sessions(clock, store)
    cookie = asyncio.run(sessions.sign_in("ann", "pw-ann"))
    assert cookie is not None
    assert sessions.user_of(cookie) == "ann"
    # Another process on the same store accepts it (one key, kept in the store).
    assert _sessions(clock, store).user_of(cookie) == "ann"


@pytest.mark.parametrize(("name", "password"), [("ann", "wrong"), ("bob", "pw-ann"), ("", "")])
def test_a_wrong_name_or_password_gives_nothing(name: str, password: str) -> None:
    assert asyncio.run(_sessions(FakeClock(), MemoryStore()).sign_in(name, password)) is None


def test_a_cookie_ends_after_the_session_lifetime() -> None:
    clock = FakeClock()
    sessions = _sessions(clock, MemoryStore())
    cookie = asyncio.run(sessions.sign_in("ann", "pw-ann"))
    clock.advance(599_000)
    assert sessions.user_of(cookie) == "ann"
    clock.advance(1_000)
    assert sessions.user_of(cookie) is None


def test_a_changed_or_foreign_cookie_is_refused() -> None:
    clock, store = FakeClock(), MemoryStore()
    cookie = asyncio.run(_sessions(clock, store).sign_in("ann", "pw-ann"))
    assert cookie is not None
    name, expires, signature = cookie.split(".")
    later = str(int(expires) + 10_000_000)
    sessions = _sessions(clock, store)
    for forged in (
        f"{name}.{later}.{signature}",
        f"{name}.{expires}.{signature[:-2]}AA",
        "x.y.z",
        "",
        "a.b",
        None,
    ):
        assert sessions.user_of(forged) is None
    # A store with another key (another installation) does not accept it.
    assert _sessions(clock, MemoryStore()).user_of(cookie) is None


def test_a_user_taken_out_of_the_config_loses_the_session() -> None:
    clock, store = FakeClock(), MemoryStore()
    cookie = asyncio.run(_sessions(clock, store).sign_in("ann", "pw-ann"))
    assert _sessions(clock, store, users=[]).user_of(cookie) is None


def test_each_session_has_its_own_csrf_token_that_every_process_knows() -> None:
    clock, store = FakeClock(), MemoryStore()
    sessions = _sessions(clock, store)
    first = asyncio.run(sessions.sign_in("ann", "pw-ann"))
    clock.advance(1)
    second = asyncio.run(sessions.sign_in("ann", "pw-ann"))
    visitor, other = sessions.visitor_of(first), sessions.visitor_of(second)
    assert visitor is not None
    assert other is not None
    assert visitor.name == "ann"
    assert len(visitor.csrf) >= 40
    assert visitor.csrf != other.csrf
    assert _sessions(clock, store).visitor_of(first) == visitor
    assert visitor.may_post(visitor.csrf)
    for wrong in (other.csrf, "", visitor.csrf[:-1], visitor.csrf + "x"):
        assert not visitor.may_post(wrong)
    assert sessions.visitor_of("x.y.z") is None
