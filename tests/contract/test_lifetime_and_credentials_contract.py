"""The store contract for the lifetime sweep (expired profiles, deletes) and for Profile API
credentials and server secrets, on every store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import StoreUnavailable
from kindred.domain.profile import Profile
from kindred.ports import ConcurrentUpdate, Store
from kindred.storage.postgres import PostgresStore
from kindred.storage.postgres import store as postgres_store
from tests.contract.samples import (
    CUSTOMER,
    EMAIL,
    IDFV,
    SCOPE,
    next_version,
    rich_profile,
    save,
)

__all__: list[str] = []


def stored_at(mpid: int, last_stored_ms: int, scope: str = SCOPE) -> Profile:
    return msgspec.structs.replace(rich_profile(mpid), last_stored_ms=last_stored_ms, scope=scope)


def test_expired_profiles_are_those_stored_before_the_cutoff_oldest_first(store: Store) -> None:
    save(
        store,
        stored_at(1, 5_000),
        stored_at(2, 1_000),
        stored_at(3, 3_000),
        stored_at(4, 2_000, scope="other"),
    )
    with store.unit_of_work() as uow:
        assert [p.mpid for p in uow.profiles.expired(SCOPE, 5_000, 10)] == [2, 3]
        assert [p.mpid for p in uow.profiles.expired(SCOPE, 5_001, 2)] == [2, 3]
        assert [p.mpid for p in uow.profiles.expired("other", 9_000, 10)] == [4]
        assert uow.profiles.expired(SCOPE, 1_000, 10) == []


def test_deleting_a_profile_removes_it_and_its_identity_links(store: Store) -> None:
    save(store, stored_at(1, 1_000), stored_at(2, 1_000))
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, 1, [EMAIL, IDFV])
        uow.identities.link(SCOPE, 2, [EMAIL, CUSTOMER])
    with store.unit_of_work() as uow:
        (first, second) = uow.profiles.expired(SCOPE, 2_000, 10)
        uow.profiles.delete(first)
        # Within the transaction the deleted profile and its links are gone already.
        assert uow.profiles.load([1]) == {}
        assert uow.identities.find(SCOPE, [EMAIL, IDFV]) == {EMAIL: [2]}
    assert store.get_profile(1) is None
    assert store.get_profile(2) == second
    assert store.find_profiles(SCOPE, EMAIL) == [2]
    assert store.find_profiles(SCOPE, IDFV) == []
    assert store.find_profiles(SCOPE, CUSTOMER) == [2]
    assert store.count_profiles() == 1


def test_a_delete_loses_to_an_update_it_did_not_see(store: Store) -> None:
    profile = stored_at(1, 1_000)
    save(store, profile)
    save(store, next_version(profile, last_stored_ms=9_000))
    with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
        uow.profiles.delete(profile)  # version 1, the store holds version 2
    assert store.get_profile(1) is not None


def test_a_deleted_profile_can_be_created_again(store: Store) -> None:
    profile = stored_at(1, 1_000)
    save(store, profile)
    with store.unit_of_work() as uow:
        uow.profiles.delete(profile)
    save(store, stored_at(1, 7_000))
    loaded = store.get_profile(1)
    assert loaded is not None
    assert loaded.last_stored_ms == 7_000


def test_a_rolled_back_delete_keeps_the_profile(store: Store) -> None:
    save(store, stored_at(1, 1_000))
    with store.unit_of_work() as uow:
        uow.identities.link(SCOPE, 1, [EMAIL])

    def delete_then_fail() -> None:
        with store.unit_of_work() as uow:
            uow.profiles.delete(uow.profiles.expired(SCOPE, 2_000, 1)[0])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        delete_then_fail()
    assert store.get_profile(1) is not None
    assert store.find_profiles(SCOPE, EMAIL) == [1]


@pytest.mark.postgres
def test_concurrent_sweeps_skip_each_others_rows(fresh_pg_store: PostgresStore) -> None:
    store = fresh_pg_store
    save(store, *(stored_at(m, 1_000 + m) for m in range(1, 7)))
    with store.unit_of_work() as first:
        claimed = first.profiles.expired(SCOPE, 9_000, 3)
        with ThreadPoolExecutor(1) as pool:
            # The other transaction does not wait for the rows held here: it takes the rest.
            other = pool.submit(_claim, store, 9_000, 10).result(timeout=5)
    assert [p.mpid for p in claimed] == [1, 2, 3]
    assert other == [4, 5, 6]


def _claim(store: Store, cutoff: int, limit: int) -> list[int]:
    with store.unit_of_work() as uow:
        return [p.mpid for p in uow.profiles.expired(SCOPE, cutoff, limit)]


def credential(client_id: str, **changes: object) -> ApiCredential:
    base = ApiCredential(
        client_id=client_id,
        secret_hash="scrypt$16384$8$1$c2FsdA$aGFzaA",
        workspaces=frozenset({1, 7}),
        rate_limit_per_s=2.5,
        rate_limit_burst=4,
        name="recs service",
        created_ms=1_000,
    )
    return msgspec.structs.replace(base, **changes)


def test_credentials_round_trip_and_replace_by_client_id(store: Store) -> None:
    assert store.list_credentials() == []
    first = credential("b-client")
    second = credential("a-client", created_ms=2_000, workspaces=frozenset({3}))
    store.save_credential(first)
    store.save_credential(second)
    assert store.list_credentials() == [first, second]
    revoked = msgspec.structs.replace(first, revoked_ms=5_000)
    store.save_credential(revoked)
    assert store.list_credentials() == [revoked, second]
    # What its tokens may do is kept as it was given.
    platform = msgspec.structs.replace(second, scopes=frozenset({"platform"}))
    store.save_credential(platform)
    assert store.list_credentials() == [revoked, platform]
    both = msgspec.structs.replace(second, scopes=frozenset({"platform", "profiles"}))
    store.save_credential(both)
    assert [c.scopes for c in store.list_credentials()] == [
        frozenset({"profiles"}),
        frozenset({"platform", "profiles"}),
    ]


def test_the_first_server_secret_stays(store: Store) -> None:
    assert store.server_secret("signing", b"\x00first") == b"\x00first"
    assert store.server_secret("signing", b"second") == b"\x00first"
    assert store.server_secret("other", b"third") == b"third"


@pytest.mark.postgres
def test_reads_with_every_connection_busy_are_answered_unavailable(
    pg_store: PostgresStore, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pg_store` migrated the database (whichever test of this worker runs first); this
    # test opens a store of its own on it, with one connection.
    assert pg_store.get_profile(987_654_321) is None
    monkeypatch.setattr(postgres_store, "_READ_WAIT_S", 0.2)
    store = PostgresStore(pg_database, pool_size=1)
    try:
        # The unit of work holds the only connection.
        with store.unit_of_work(), pytest.raises(StoreUnavailable, match="store unavailable"):
            store.get_profile(987_654_321)
        assert store.get_profile(987_654_321) is None  # free again (no test stores this MPID)
    finally:
        store.close()


def test_profiles_are_paged_by_mpid_within_a_scope(store: Store) -> None:
    save(store, *(stored_at(m, 1_000) for m in (5, -7, 3, 2**62)), stored_at(4, 1_000, "other"))
    with store.unit_of_work() as uow:
        assert [p.mpid for p in uow.profiles.page(SCOPE, -(2**63), 2)] == [-7, 3]
        assert [p.mpid for p in uow.profiles.page(SCOPE, 4, 10)] == [5, 2**62]
        assert uow.profiles.page("other", 5, 10) == []


def test_due_profiles_are_claimed_earliest_first(store: Store) -> None:
    def due(mpid: int, at: int | None) -> Profile:
        return msgspec.structs.replace(stored_at(mpid, 1_000), audience_due_ms=at)

    save(store, due(1, 300), due(2, 100), due(3, None), due(4, 900))
    with store.unit_of_work() as uow:
        assert [p.mpid for p in uow.profiles.due(300, 10)] == [2, 1]
        assert [p.mpid for p in uow.profiles.due(1_000, 1)] == [2]


def test_a_replaced_server_secret_is_the_one_answered(store: Store) -> None:
    store.server_secret("signing", b"old")
    store.replace_server_secret("signing", b"new")
    assert store.server_secret("signing", b"candidate") == b"new"
    store.replace_server_secret("fresh", b"made")
    assert store.server_secret("fresh", b"candidate") == b"made"
    assert store.server_secret("other", b"third") == b"third"


_DUE = st.one_of(st.none(), st.integers(0, 5))
_STORED = st.integers(1, 5)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([1, 2]), _DUE, _STORED, st.booleans()), min_size=1, max_size=6
    )
)
def test_the_due_and_stored_times_follow_every_save(
    store: Store, steps: list[tuple[int, int | None, int, bool]]
) -> None:
    """Whatever each save changes or keeps (the SQL stores leave the columns a save keeps as
    they are), the claims read the profiles' times as last saved; `with_next`: saved in
    one transaction with the next step."""
    mpids = [7_001, 7_002]
    save(store, *(stored_at(m, 1) for m in mpids))
    held: dict[int, tuple[int | None, int]] = dict.fromkeys(mpids, (None, 1))
    pending: list[tuple[int, int | None, int]] = []
    for which, due_at, stored_ms, with_next in steps:
        pending.append((mpids[which - 1], due_at, stored_ms))
        if with_next:
            continue
        with store.unit_of_work() as uow:
            for mpid, at, last in pending:
                current = uow.profiles.load([mpid])[mpid]
                uow.profiles.save(
                    next_version(
                        current, audience_due_ms=at, last_stored_ms=last, ip=f"10.0.0.{last}"
                    )
                )
                held[mpid] = (at, last)
        pending = []
    with store.unit_of_work() as uow:
        due = [p.mpid for p in uow.profiles.due(5, 10)]
        expired = {p.mpid for p in uow.profiles.expired(SCOPE, 3, 10)}
    assert sorted(due) == sorted(m for m, (at, _) in held.items() if at is not None)
    assert [held[m][0] for m in due] == sorted(held[m][0] for m in due)  # type: ignore[type-var]
    assert expired == {m for m, (_, last) in held.items() if last < 3}
    with store.unit_of_work() as uow:
        for profile in uow.profiles.load(mpids).values():
            uow.profiles.delete(profile)
