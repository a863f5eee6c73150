"""The Profile API's point read (`GET /userprofile/v1/{org}/{account}/{workspace}/{mpid}`):
the definitions' version comes with the profile in one read, and still no caller is
answered with what an earlier version allowed, and a refused caller makes no read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from kindred.api.profile_api import ProfileReadApi
from kindred.bootstrap import Container, build
from kindred.config import load_settings
from kindred.domain.errors import AuthRejected, InvalidToken, NotFound
from kindred.domain.profile import IdentityEntry, Profile
from kindred.domain.tenancy import AccountPolicy, WorkspaceDef
from kindred.storage.memory import MemoryStore
from tests.fakes import FakeClock

NOW = 1_700_000_000_000
MPID = 9_080_350_317_581_165_123
SCOPE = WorkspaceDef(workspace_id=1, name="w", account=AccountPolicy(account_id=1)).identity_scope
FIELDS = b"fields=user_identities"
PATH = f"/userprofile/v1/1/1/1/{MPID}"


class CountedReads(MemoryStore):
    """The memory store, counting the Profile API's point reads."""

    reads = 0

    def versioned_profile(self, mpid: int) -> tuple[int, Profile | None]:
        self.reads += 1
        return super().versioned_profile(mpid)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def store() -> CountedReads:
    store = CountedReads()
    seen = IdentityEntry(value="C-1", first_seen_ms=NOW, last_seen_ms=NOW)
    profile = Profile(
        mpid=MPID,
        scope=SCOPE,
        created_ms=NOW,
        last_stored_ms=NOW,
        version=1,
        user_identities={"customer_id": seen},
    )
    with store.unit_of_work() as uow:
        uow.profiles.save(profile)
    return store


@pytest.fixture
def container(tmp_path: Path, store: CountedReads, clock: FakeClock) -> Iterator[Container]:
    settings = load_settings(None, data_dir=str(tmp_path), env={})
    built = build(settings, store=store, clock=clock)
    yield built
    built.close()


def bearer(
    container: Container, client_id: str = "demo-client", secret: str = "demo-secret"
) -> str:
    issued = container.tokens.issue("client_credentials", client_id, secret, None)
    return "Bearer " + asyncio.run(issued)


def read(api: ProfileReadApi, authorization: str, path: str = PATH) -> int:
    status, _, _ = api.handle("profile", path, FIELDS, authorization, b"")
    return status


def test_a_revoked_credential_is_refused_at_the_next_read(container: Container) -> None:
    api = ProfileReadApi(container)
    header = bearer(container)
    created = container.credentials.create([1])
    other = bearer(container, created.client_id, created.client_secret)
    assert read(api, header) == read(api, other) == 200
    container.credentials.revoke(created.client_id)
    with pytest.raises(InvalidToken, match="revoked"):
        read(api, other)
    assert read(api, header) == 200


def test_an_expired_token_is_refused_though_it_was_verified_before(
    container: Container, clock: FakeClock
) -> None:
    api = ProfileReadApi(container)
    header = bearer(container)
    assert read(api, header) == 200
    clock.advance(container.tokens.ttl_s * 1000)
    with pytest.raises(InvalidToken, match="expired"):
        read(api, header)


def test_a_refused_caller_makes_no_read(container: Container, store: CountedReads) -> None:
    api = ProfileReadApi(container)
    assert read(api, bearer(container)) == 200
    reads = store.reads
    created = container.credentials.create([2])
    elsewhere = bearer(container, created.client_id, created.client_secret)
    for _ in range(2):
        with pytest.raises(AuthRejected, match="workspace 1"):
            read(api, elsewhere)
        with pytest.raises(NotFound, match="no workspace 1 in account 2"):
            read(api, bearer(container), f"/userprofile/v1/1/2/1/{MPID}")
        with pytest.raises(InvalidToken):
            read(api, "Bearer x.y.z")
    assert store.reads == reads


def test_a_read_takes_the_credential_as_the_version_read_with_it(container: Container) -> None:
    api = ProfileReadApi(container)
    created = container.credentials.create([1, 2])
    header = bearer(container, created.client_id, created.client_secret)
    assert read(api, header) == 200
    # Narrowed in the store (as by another process): checked as it was, refused as it is.
    stored = next(c for c in container.credentials.all() if c.client_id == created.client_id)
    container.store.save_credential(msgspec.structs.replace(stored, workspaces=frozenset({2})))
    with pytest.raises(AuthRejected, match="workspace 1"):
        read(api, header)


def test_unknown_profiles_are_not_found(container: Container) -> None:
    api = ProfileReadApi(container)
    header = bearer(container)
    for _ in range(2):
        with pytest.raises(NotFound, match="no profile with MPID 12"):
            read(api, header, "/userprofile/v1/1/1/1/12")


def test_a_caller_admitted_to_one_workspace_is_checked_for_another(
    container: Container, store: CountedReads
) -> None:
    api = ProfileReadApi(container)
    created = container.credentials.create([1])
    header = bearer(container, created.client_id, created.client_secret)
    assert read(api, header) == 200
    reads = store.reads
    for _ in range(2):
        with pytest.raises(AuthRejected, match="workspace 2"):
            read(api, header, f"/userprofile/v1/1/1/2/{MPID}")
    assert store.reads == reads
    assert read(api, header) == 200
