"""The store contract, `uow.profiles`: profiles round-trip whole, load together and save
only at the next version, on memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import TupleRow

from kindred.domain.credentials import ApiCredential
from kindred.domain.errors import StoreUnavailable
from kindred.domain.observation import ConsentFact, LocationFact
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Profile,
    WorkspaceProfile,
)
from kindred.ports import (
    ConcurrentUpdate,
    Store,
)
from kindred.storage.postgres import PostgresStore

__all__: list[str] = []
from tests.contract.samples import (
    BIG_A,
    BIG_B,
    EDGE_MPIDS,
    SETTLE_S,
    assert_same,
    log_entry,
    next_version,
    rich_profile,
    save,
)


@pytest.mark.parametrize("mpid", EDGE_MPIDS)
def test_rich_profile_round_trips(store: Store, mpid: int) -> None:
    profile = rich_profile(mpid)
    save(store, profile)
    assert_same(store.get_profile(mpid), profile)
    with store.unit_of_work() as uow:
        assert_same(uow.profiles.load([mpid]).get(mpid), profile)


def test_missing_profiles_are_absent(store: Store) -> None:
    save(store, rich_profile(BIG_A))
    assert store.get_profile(BIG_B) is None
    with store.unit_of_work() as uow:
        assert uow.profiles.load([]) == {}
        loaded = uow.profiles.load(m for m in (BIG_B, BIG_A, 12))
    assert list(loaded) == [BIG_A]


def test_a_profile_reads_with_the_definitions_version(store: Store) -> None:
    profile = rich_profile(BIG_A)
    save(store, profile)
    version, read = store.versioned_profile(BIG_A)
    assert version == store.definitions_version()
    assert_same(read, profile)
    store.save_credential(ApiCredential(client_id="c", secret_hash="x", workspaces=frozenset()))
    assert store.versioned_profile(BIG_B) == (store.definitions_version(), None)
    assert store.definitions_version() > version


@pytest.mark.postgres
def test_a_point_read_whose_connection_died_reconnects(
    fresh_pg_store: PostgresStore, pg_admin: psycopg.Connection[TupleRow]
) -> None:
    """PostgreSQL reads by MPID on a connection of their thread's own: when the server
    drops it, that read is answered unavailable (503) and the next one reconnects."""
    profile = rich_profile(BIG_A)
    save(fresh_pg_store, profile)
    assert_same(fresh_pg_store.versioned_profile(BIG_A)[1], profile)
    (ended,) = pg_admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'SELECT definitions_version.%'"
    ).fetchone() or (0,)
    assert ended == 1
    with pytest.raises(StoreUnavailable):
        fresh_pg_store.versioned_profile(BIG_A)
    assert_same(fresh_pg_store.versioned_profile(BIG_A)[1], profile)


def test_profiles_load_together(store: Store) -> None:
    profiles = [rich_profile(m) for m in EDGE_MPIDS]
    save(store, *profiles)
    with store.unit_of_work() as uow:
        assert uow.profiles.load(reversed(EDGE_MPIDS)) == {p.mpid: p for p in profiles}
    assert store.count_profiles() == len(EDGE_MPIDS)


def test_saving_needs_the_next_version(store: Store) -> None:
    first = rich_profile(BIG_A)
    save(store, first)
    for stale in (first, msgspec.structs.replace(first, version=3)):
        with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
            uow.profiles.save(stale)
    second = next_version(first, ip="198.51.100.1")
    save(store, second)
    assert store.get_profile(BIG_A) == second
    assert store.count_profiles() == 1


@pytest.mark.parametrize("version", [0, 2])
def test_new_profile_must_be_version_one(store: Store, version: int) -> None:
    with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
        uow.profiles.save(rich_profile(BIG_A, version=version))
    assert store.get_profile(BIG_A) is None


def _committed(work: Callable[[], object]) -> bool:
    try:
        work()
    except ConcurrentUpdate:
        return False
    return True


def _assert_the_other_lost(mine_won: bool, late: Future[Any]) -> None:
    """Of two transactions racing, exactly one committed: the late one iff not mine."""
    assert _committed(lambda: late.result(timeout=10)) != mine_won


def test_concurrent_saves_of_one_version_commit_once(
    store: Store, other_thread: ThreadPoolExecutor
) -> None:
    """Two transactions saving the same next version: exactly one commits, the other gets
    ConcurrentUpdate (at its save or at its commit, as the store buffers or not)."""
    base = rich_profile(BIG_A)
    save(store, base)
    mine, theirs = next_version(base, ip="10.0.0.1"), next_version(base, ip="10.0.0.2")
    late: Future[Any] | None = None

    def first() -> None:
        nonlocal late
        with store.unit_of_work() as uow:
            uow.profiles.save(mine)
            late = other_thread.submit(save, store, theirs)
            time.sleep(SETTLE_S)  # every chance for the other to commit first

    mine_won = _committed(first)
    assert late is not None
    _assert_the_other_lost(mine_won, late)
    assert store.get_profile(BIG_A) == (mine if mine_won else theirs)


def test_concurrent_creations_of_one_mpid_commit_once(
    store: Store, other_thread: ThreadPoolExecutor
) -> None:
    """Two transactions creating a profile under the same new MPID (a collision of random
    MPIDs, or two processes racing): exactly one commits, the other gets ConcurrentUpdate
    and nothing else of it is stored."""
    mine = rich_profile(BIG_A)
    theirs = msgspec.structs.replace(mine, created_ms=mine.created_ms + 1)
    late: Future[Any] | None = None

    def create(profile: Profile, entry_id: int) -> None:
        with store.unit_of_work() as uow:
            uow.profiles.save(profile)
            uow.log.append(log_entry(BIG_A, entry_id))

    def first() -> None:
        nonlocal late
        with store.unit_of_work() as uow:
            uow.profiles.save(mine)
            uow.log.append(log_entry(BIG_A, 1))
            late = other_thread.submit(create, theirs, 2)
            time.sleep(SETTLE_S)  # every chance for the other to commit first

    mine_won = _committed(first)
    assert late is not None
    _assert_the_other_lost(mine_won, late)
    assert store.get_profile(BIG_A) == (mine if mine_won else theirs)
    assert len(store.read_log(0, 10)) == 1


# PostgreSQL text cannot hold NUL, nor can UTF-8 hold lone surrogates.
_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)


_ms = st.integers(0, 2**53)


_int64 = st.integers(-(2**63), 2**63 - 1)


# JSON has no NaN or infinity, and PostgreSQL's numeric no negative zero (see PostgresStore).
_float = st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f + 0.0)


_scalar = st.one_of(_text, _int64, st.integers(2**63, 2**64 - 1), _float, st.booleans())


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), _int64, _float, _text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)


_consent = st.builds(
    ConsentFact,
    consented=st.booleans(),
    timestamp_ms=_ms,
    document=st.none() | _text,
    location=st.none() | _text,
    hardware_id=st.none() | _text,
)


_device = st.builds(
    Device,
    key=_text,
    first_seen_ms=_ms,
    last_seen_ms=_ms,
    platform=st.none() | _text,
    info=st.dictionaries(_text, _json, max_size=3),
    identities=st.dictionaries(_text, _text, max_size=2),
    att_status=st.none() | _text,
    att_ts_ms=st.none() | _ms,
    attribution=st.none() | st.builds(Attribution, publisher=_text, campaign=_text, ts_ms=_ms),
)


_attribute = st.builds(
    AttributeEntry,
    value=st.none() | _scalar | st.lists(_scalar, max_size=3),
    priority=st.integers(0, 10),
    source=_text,
    ts_ms=_ms,
    deleted=st.booleans(),
)


_workspace = st.builds(
    WorkspaceProfile,
    first_seen_ms=_ms,
    last_seen_ms=_ms,
    attributes=st.dictionaries(_text, _attribute, max_size=4),
    gdpr=st.dictionaries(_text, _consent, max_size=2),
    ccpa=st.none() | _consent,
    devices=st.dictionaries(_text, _device, max_size=2),
    location=st.none()
    | st.builds(
        LocationFact,
        ts_ms=_ms,
        latitude=st.none() | st.floats(-90, 90),
        longitude=st.none() | st.floats(-180, 180),
        city_name=st.none() | _text,
        dma_code=st.none() | _text,
    ),
)


profiles = st.builds(
    Profile,
    mpid=st.sampled_from(EDGE_MPIDS) | _int64.filter(bool),
    scope=_text,
    created_ms=_ms,
    last_stored_ms=_ms,
    is_opted_out=st.booleans(),
    opt_out_ts_ms=_ms,
    limit_ad_tracking=st.none() | st.booleans(),
    ip=st.none() | _text,
    user_identities=st.dictionaries(
        _text,
        st.builds(IdentityEntry, value=_text, first_seen_ms=_ms, last_seen_ms=_ms),
        max_size=3,
    ),
    workspaces=st.dictionaries(_int64, _workspace, max_size=2),
    recent_messages=st.binary(max_size=24),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(profile=profiles)
def test_generated_profiles_round_trip(store: Store, profile: Profile) -> None:
    # Examples share the store, so each one saves over whatever an earlier one left.
    stored = store.get_profile(profile.mpid)
    profile = msgspec.structs.replace(profile, version=1 if stored is None else stored.version + 1)
    save(store, profile)
    assert_same(store.get_profile(profile.mpid), profile)
    with store.unit_of_work() as uow:
        assert_same(uow.profiles.load([profile.mpid]).get(profile.mpid), profile)


def test_a_saved_profile_reads_back_whole_in_its_transaction(store: Store) -> None:
    """A save keeps the profile's row, its document encoded at once; a later read in the
    same transaction decodes it again, memberships and all, and a third save follows it."""
    stored = rich_profile(BIG_A)
    with store.unit_of_work() as uow:
        uow.profiles.save(stored)
    second = next_version(stored, ip="10.1.1.1", memberships={9: stored.memberships[9]})
    with store.unit_of_work() as uow:
        uow.prefetch([], [BIG_A, BIG_B], [])
        uow.profiles.save(second)
        assert uow.profiles.load([BIG_A, BIG_B]) == {BIG_A: second}
        uow.profiles.save(next_version(uow.profiles.load([BIG_A])[BIG_A], ip="10.2.2.2"))
    assert store.get_profile(BIG_A) == next_version(second, ip="10.2.2.2")
