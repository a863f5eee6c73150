"""The store contract: every port method, run against memory, SQLite and PostgreSQL alike.

MemoryStore defines the semantics; a SQL store that disagrees with it is wrong.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from kindred.domain.identities import IdentityKey
from kindred.domain.observation import ConsentFact, LocationFact
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Membership,
    Profile,
    WorkspaceProfile,
)
from kindred.ports import (
    BatchStatus,
    ConcurrentUpdate,
    LogEntry,
    RejectEntry,
    Store,
    UnitOfWork,
)
from kindred.storage.migrations import load_migrations
from kindred.storage.postgres import PostgresStore

__all__: list[str] = []

SCOPE = "acme"
EMAIL = IdentityKey("email", "ada@example.com")
CUSTOMER = IdentityKey("customer_id", "c-1")
IDFV = IdentityKey("ios_idfv", "6F9619FF-8B86-D011-B42D-00CF4FC964FF")
# MPIDs are signed 64-bit: both ends, and values a float (or a JSON reader using one) would round.
EDGE_MPIDS = (-(2**63), -1, 1, 2**53 + 1, 2**63 - 1)
BIG_A = 2**62 + 7
BIG_B = -(2**63) + 3
# Long enough for the other thread to reach the point where it must wait, were it not blocked.
SETTLE_S = 0.2


def rich_profile(mpid: int, *, version: int = 1) -> Profile:
    """A profile using every part of the aggregate, including a tombstoned attribute."""
    device = Device(
        key="das-1",
        first_seen_ms=1_000,
        last_seen_ms=2_000,
        platform="iOS",
        info={"model": "iPhone15,2", "screen": [1179, 2556], "jailbroken": False, "dpi": 460.5},
        identities={"ios_idfv": IDFV.value, "push_token": "tok"},
        att_status="authorized",
        att_ts_ms=1_500,
        attribution=Attribution(publisher="ads", campaign="spring", ts_ms=1_100),
    )
    workspace = WorkspaceProfile(
        first_seen_ms=1_000,
        last_seen_ms=2_000,
        attributes={
            "plan": AttributeEntry(value="gold", priority=2, source="web", ts_ms=1_000),
            # A float that JSON readers keeping numbers as decimals would turn into an int.
            "ltv": AttributeEntry(value=1.2345678901234567e19, priority=1, source="s", ts_ms=1),
            "tags": AttributeEntry(value=["a", 1, 2.5, True], priority=1, source="s", ts_ms=9),
            "vip": AttributeEntry(priority=1, source="ios", ts_ms=1_002),  # a tag: no value
            "old": AttributeEntry(priority=1, source="web", ts_ms=1_900, deleted=True),
            "name": AttributeEntry(value="Zoë \u2603 \U0001f600", priority=3, source="x", ts_ms=5),
        },
        gdpr={"marketing": ConsentFact(consented=True, timestamp_ms=1_200, document="v2")},
        ccpa=ConsentFact(consented=False, timestamp_ms=1_300, location="CA"),
        devices={device.key: device},
    )
    return Profile(
        mpid=mpid,
        scope=SCOPE,
        created_ms=1_000,
        last_stored_ms=2_000,
        is_opted_out=True,
        opt_out_ts_ms=1_700,
        limit_ad_tracking=False,
        ip="203.0.113.9",
        user_identities={
            "email": IdentityEntry(value=EMAIL.value, first_seen_ms=1, last_seen_ms=2)
        },
        workspaces={7: workspace, -3: WorkspaceProfile(first_seen_ms=5, last_seen_ms=6)},
        memberships={
            17802: Membership(audience_id=17802, name="Décor fans", since_ms=1_800),
            9: Membership(audience_id=9, name="Trial", since_ms=1_900, expires_ms=9_000),
        },
        recent_messages=bytes(range(256)),
        version=version,
    )


_CANONICAL = msgspec.json.Encoder(order="sorted")


def assert_same(loaded: Profile | None, profile: Profile) -> None:
    """Equal, and equal in JSON too: `==` alone takes 1e20 and 10**20 for the same value."""
    assert loaded == profile
    assert canonical(loaded) == canonical(profile)


def canonical(value: object) -> bytes:
    # PostgreSQL's jsonb numbers have no negative zero: -0.0 is kept as 0.0, the same number.
    return _NEGATIVE_ZERO.sub(b"0.0", _CANONICAL.encode(msgspec.to_builtins(value, str_keys=True)))


_NEGATIVE_ZERO = re.compile(rb"(?<![\w.])-0\.0(?![\w.])")


def save(store: Store, *profiles: Profile) -> None:
    with store.unit_of_work() as uow:
        for profile in profiles:
            uow.save_profile(profile)


def next_version(profile: Profile, **changes: object) -> Profile:
    return msgspec.structs.replace(profile, version=profile.version + 1, **changes)


def log_entry(mpid: int | None, received_ms: int, **changes: object) -> LogEntry:
    entry = LogEntry(
        input="web",
        workspace_id=7,
        received_ms=received_ms,
        status=BatchStatus.APPLIED,
        body=b'{"events":[]}\x00\xff',
        mpid=mpid,
        source_request_id=f"req-{received_ms}",
    )
    return msgspec.structs.replace(entry, **changes)


def reject(kind: str, received_ms: int, **changes: object) -> RejectEntry:
    entry = RejectEntry(
        input="web", received_ms=received_ms, kind=kind, reason="bad", body=b"\x00{"
    )
    return msgspec.structs.replace(entry, **changes)


def assert_waits(future: Future[Any]) -> None:
    """`future` runs a second transaction that must wait for the one the caller holds open."""
    time.sleep(SETTLE_S)
    assert not future.done(), "the second transaction did not wait for the first"


@pytest.fixture
def other_thread() -> Iterator[ThreadPoolExecutor]:
    """A second thread standing in for another process; made before the first transaction
    opens so that it is waited for only after that transaction has ended."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


# -- migrations ---------------------------------------------------------------------------


def test_migrate_is_idempotent(store: Store) -> None:
    first = store.migrate()
    assert first >= 1
    assert store.migrate() == first


# -- profiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("mpid", EDGE_MPIDS)
def test_rich_profile_round_trips(store: Store, mpid: int) -> None:
    profile = rich_profile(mpid)
    save(store, profile)
    assert_same(store.get_profile(mpid), profile)
    with store.unit_of_work() as uow:
        assert_same(uow.load_profiles([mpid]).get(mpid), profile)


def test_missing_profiles_are_absent(store: Store) -> None:
    save(store, rich_profile(BIG_A))
    assert store.get_profile(BIG_B) is None
    with store.unit_of_work() as uow:
        assert uow.load_profiles([]) == {}
        loaded = uow.load_profiles(m for m in (BIG_B, BIG_A, 12))
    assert list(loaded) == [BIG_A]


def test_profiles_load_together(store: Store) -> None:
    profiles = [rich_profile(m) for m in EDGE_MPIDS]
    save(store, *profiles)
    with store.unit_of_work() as uow:
        assert uow.load_profiles(reversed(EDGE_MPIDS)) == {p.mpid: p for p in profiles}
    assert store.count_profiles() == len(EDGE_MPIDS)


def test_saving_needs_the_next_version(store: Store) -> None:
    first = rich_profile(BIG_A)
    save(store, first)
    for stale in (first, msgspec.structs.replace(first, version=3)):
        with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
            uow.save_profile(stale)
    second = next_version(first, ip="198.51.100.1")
    save(store, second)
    assert store.get_profile(BIG_A) == second
    assert store.count_profiles() == 1


@pytest.mark.parametrize("version", [0, 2])
def test_new_profile_must_be_version_one(store: Store, version: int) -> None:
    with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
        uow.save_profile(rich_profile(BIG_A, version=version))
    assert store.get_profile(BIG_A) is None


def _committed(work: Callable[[], object]) -> bool:
    try:
        work()
    except ConcurrentUpdate:
        return False
    return True


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
            uow.save_profile(mine)
            late = other_thread.submit(save, store, theirs)
            time.sleep(SETTLE_S)  # every chance for the other to commit first

    mine_won = _committed(first)
    assert late is not None
    theirs_won = _committed(lambda: late.result(timeout=10) if late else None)
    assert mine_won != theirs_won
    assert store.get_profile(BIG_A) == (mine if mine_won else theirs)


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
        assert_same(uow.load_profiles([profile.mpid]).get(profile.mpid), profile)


# -- transactions -------------------------------------------------------------------------


class Boom(Exception):
    pass


def run(store: Store, work: Callable[[UnitOfWork], object]) -> None:
    with store.unit_of_work() as uow:
        work(uow)


def write_everything_then_fail(uow: UnitOfWork) -> None:
    uow.save_profile(rich_profile(BIG_A))
    uow.link_identities(SCOPE, BIG_A, [EMAIL, CUSTOMER])
    assert uow.claim_request("web", "r-1", 5)
    uow.append_log(log_entry(BIG_A, 5))
    uow.record_reject(reject("rejected", 5))
    raise Boom


def test_exception_rolls_everything_back(store: Store) -> None:
    with pytest.raises(Boom):
        run(store, write_everything_then_fail)
    assert store.get_profile(BIG_A) is None
    assert store.count_profiles() == 0
    assert store.find_profiles(SCOPE, EMAIL) == []
    assert store.read_log(0, 10) == []
    assert store.log_for_profile(BIG_A, 10) == []
    assert store.list_rejects(None, 10) == []
    with store.unit_of_work() as uow:
        assert uow.find_identities(SCOPE, [EMAIL, CUSTOMER]) == {}
        assert uow.claim_request("web", "r-1", 6)


def test_a_lost_version_check_rolls_back_the_rest(store: Store) -> None:
    save(store, rich_profile(BIG_A))

    def link_log_then_save_stale(uow: UnitOfWork) -> None:
        uow.link_identities(SCOPE, BIG_A, [EMAIL])
        uow.append_log(log_entry(BIG_A, 5))
        uow.save_profile(rich_profile(BIG_A))

    with pytest.raises(ConcurrentUpdate):
        run(store, link_log_then_save_stale)
    assert store.find_profiles(SCOPE, EMAIL) == []
    assert store.read_log(0, 10) == []


def test_committed_work_is_visible_to_reads(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.save_profile(rich_profile(BIG_A))
        uow.link_identities(SCOPE, BIG_A, [EMAIL])
    assert store.find_profiles(SCOPE, EMAIL) == [BIG_A]
    assert store.count_profiles() == 1


# -- identities ---------------------------------------------------------------------------


def test_identities_link_find_and_unlink(store: Store) -> None:
    missing = IdentityKey("email", "nobody@example.com")
    with store.unit_of_work() as uow:
        uow.link_identities(SCOPE, BIG_A, [EMAIL, CUSTOMER, EMAIL])
        uow.link_identities(SCOPE, BIG_B, iter([EMAIL]))
        uow.link_identities(SCOPE, BIG_A, [EMAIL])  # linking again changes nothing
        found = uow.find_identities(SCOPE, [EMAIL, CUSTOMER, missing])
    assert found == {EMAIL: [BIG_B, BIG_A], CUSTOMER: [BIG_A]}
    assert store.find_profiles(SCOPE, EMAIL) == [BIG_B, BIG_A]
    assert store.find_profiles(SCOPE, missing) == []
    with store.unit_of_work() as uow:
        uow.unlink_identities(SCOPE, BIG_A, [EMAIL, missing])
        uow.unlink_identities(SCOPE, BIG_B, [CUSTOMER])  # not linked to BIG_B: a no-op
        assert uow.find_identities(SCOPE, [EMAIL, CUSTOMER]) == {EMAIL: [BIG_B], CUSTOMER: [BIG_A]}
    with store.unit_of_work() as uow:
        uow.unlink_identities(SCOPE, BIG_B, [EMAIL])
        assert uow.find_identities(SCOPE, [EMAIL]) == {}


def test_repeated_keys_find_each_link_once(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.link_identities(SCOPE, BIG_A, [EMAIL])
        uow.link_identities(SCOPE, BIG_B, [EMAIL])
        assert uow.find_identities(SCOPE, [EMAIL, CUSTOMER, EMAIL]) == {EMAIL: [BIG_B, BIG_A]}


def test_empty_identity_calls_do_nothing(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.lock_identities(SCOPE, [])
        uow.link_identities(SCOPE, BIG_A, [])
        uow.unlink_identities(SCOPE, BIG_A, [])
        assert uow.find_identities(SCOPE, []) == {}


def test_identity_scopes_are_apart(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.link_identities(SCOPE, 1, [EMAIL])
        uow.link_identities("other", 2, [EMAIL])
        uow.unlink_identities("other", 1, [EMAIL])  # mpid 1 is linked in SCOPE only
        assert uow.find_identities(SCOPE, [EMAIL]) == {EMAIL: [1]}
        assert uow.find_identities("other", [EMAIL]) == {EMAIL: [2]}
    assert store.find_profiles(SCOPE, EMAIL) == [1]
    assert store.find_profiles("other", EMAIL) == [2]
    assert store.find_profiles("third", EMAIL) == []


def test_identity_values_are_exact(store: Store) -> None:
    shouting = IdentityKey("email", EMAIL.value.upper())
    other_type = IdentityKey("other", EMAIL.value)
    with store.unit_of_work() as uow:
        uow.link_identities(SCOPE, 1, [EMAIL])
        assert uow.find_identities(SCOPE, [shouting, other_type]) == {}


def test_identity_lock_serializes_resolution(
    store: Store, other_thread: ThreadPoolExecutor
) -> None:
    """Two resolutions of one identity: the second waits, then sees the first one's link."""

    def resolve() -> dict[IdentityKey, list[int]]:
        with store.unit_of_work() as uow:
            uow.lock_identities(SCOPE, [CUSTOMER, EMAIL])
            found = uow.find_identities(SCOPE, [EMAIL])
            if not found:
                uow.link_identities(SCOPE, 2, [EMAIL])
            return found

    with store.unit_of_work() as uow:
        uow.lock_identities(SCOPE, [EMAIL, IDFV, EMAIL])
        assert uow.find_identities(SCOPE, [EMAIL]) == {}
        second = other_thread.submit(resolve)
        assert_waits(second)
        uow.link_identities(SCOPE, 1, [EMAIL])
    assert second.result(timeout=10) == {EMAIL: [1]}
    assert store.find_profiles(SCOPE, EMAIL) == [1]


# -- deduplication ------------------------------------------------------------------------


def test_request_ids_are_claimed_once_per_input(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.claim_request("web", "r-1", 1)
        assert not uow.claim_request("web", "r-1", 2)
        assert uow.claim_request("ios", "r-1", 3)
        assert uow.claim_request("web", "r-2", 4)
    with store.unit_of_work() as uow:
        assert not uow.claim_request("web", "r-1", 5)
        assert not uow.claim_request("ios", "r-1", 6)


# -- event log ----------------------------------------------------------------------------


def append(store: Store, entry: LogEntry) -> LogEntry:
    """Append `entry` and return it as stored (with the id the store gave it)."""
    with store.unit_of_work() as uow:
        uow.append_log(entry)
    return store.read_log(0, 1_000_000)[-1]


def test_log_reads_in_order_and_pages(store: Store) -> None:
    first = append(store, log_entry(BIG_A, 1))

    def append_then_fail(uow: UnitOfWork) -> None:
        uow.append_log(log_entry(BIG_A, 2))  # rolled back: its id may be skipped, never seen
        raise Boom

    with pytest.raises(Boom):
        run(store, append_then_fail)
    rest = [append(store, log_entry(m, t)) for m, t in ((None, 3), (BIG_B, 4), (BIG_A, 5))]
    entries = [first, *rest]
    ids = [e.id for e in entries if e.id is not None]
    assert ids == sorted(set(ids))
    assert len(ids) == len(entries)
    assert store.read_log(0, 10) == entries
    assert store.read_log(0, 2) == entries[:2]
    assert store.read_log(ids[1], 2) == entries[2:]
    assert store.read_log(ids[-1], 10) == []
    assert store.latest_log(2) == entries[:-3:-1]
    assert store.latest_log(10) == entries[::-1]


def test_log_status_changes(store: Store) -> None:
    entry = append(store, log_entry(BIG_A, 1, status=BatchStatus.APPLIED, reason=None))
    assert entry.id is not None
    with store.unit_of_work() as uow:
        uow.set_log_status(entry.id, BatchStatus.FAILED, "boom")
    assert store.read_log(0, 1) == [
        msgspec.structs.replace(entry, status=BatchStatus.FAILED, reason="boom")
    ]
    with store.unit_of_work() as uow:
        uow.set_log_status(entry.id, BatchStatus.APPLIED, None)
    assert store.read_log(0, 1) == [entry]


def test_log_for_profile_is_newest_first(store: Store) -> None:
    entries = [append(store, log_entry(m, t)) for t, m in enumerate([BIG_A, BIG_B, None, BIG_A])]
    mine = [entries[3], entries[0]]
    assert store.log_for_profile(BIG_A, 10) == mine
    assert store.log_for_profile(BIG_A, 1) == mine[:1]
    assert store.log_for_profile(BIG_B, 10) == [entries[1]]
    assert store.log_for_profile(12345, 10) == []


def test_log_keeps_every_field(store: Store) -> None:
    entry = log_entry(
        BIG_B,
        2**53 + 1,
        status=BatchStatus.UNRESOLVED,
        reason="no identity",
        source_request_id=None,
        workspace_id=-(2**40),
        input="s2s \u2603",
        body=bytes(range(256)),
    )
    stored = append(store, entry)
    assert store.read_log(0, 10) == [stored]
    assert store.log_for_profile(BIG_B, 10) == [stored]


# -- rejects ------------------------------------------------------------------------------


def record(store: Store, entry: RejectEntry) -> RejectEntry:
    """Record `entry` and return it as stored (with the id the store gave it)."""
    with store.unit_of_work() as uow:
        uow.record_reject(entry)
    return store.list_rejects(None, 1)[0]


def test_rejects_list_newest_first_by_kind(store: Store) -> None:
    kinds = ["rejected", "quarantined", "rejected", "quarantined", "rejected"]
    entries = [record(store, reject(kind, t, reason=f"r{t}")) for t, kind in enumerate(kinds)]
    newest_first = entries[::-1]
    assert store.list_rejects(None, 10) == newest_first
    assert store.list_rejects(None, 2) == newest_first[:2]
    assert store.list_rejects("rejected", 10) == [e for e in newest_first if e.kind == "rejected"]
    assert store.list_rejects("quarantined", 1) == [entries[3]]
    assert store.list_rejects("other", 10) == []


def test_rejects_keep_their_replay_time(store: Store) -> None:
    entry = record(store, reject("quarantined", 1, replayed_ms=2))
    assert store.list_rejects(None, 1) == [entry]


# -- PostgreSQL only: several processes sharing one database ------------------------------


@pytest.mark.postgres
def test_concurrent_migrations_apply_once(pg_database: str) -> None:
    schema = "migrate_race"
    url = make_conninfo(pg_database, options=f"-c search_path={schema}")
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            versions = _migrate_at_once(url, processes=4)
            applied = admin.execute(
                sql.SQL("SELECT count(*) FROM {}.schema_migrations").format(sql.Identifier(schema))
            )
            # Every migration once (numbers may have gaps: they are given out per branch).
            assert applied.fetchone() == (len(load_migrations("kindred.storage.postgres")),)
            assert versions[0] == load_migrations("kindred.storage.postgres")[-1].version
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    assert len(set(versions)) == 1


def _migrate_at_once(url: str, processes: int) -> list[int]:
    stores = [PostgresStore(url, pool_size=1) for _ in range(processes)]
    start = threading.Barrier(processes)

    def migrate(store: PostgresStore) -> int:
        start.wait()
        return store.migrate()

    try:
        with ThreadPoolExecutor(max_workers=processes) as pool:
            return list(pool.map(migrate, stores))
    finally:
        for store in stores:
            store.close()


@pytest.mark.postgres
def test_identity_locks_are_advisory_and_released_at_commit(
    fresh_pg_store: PostgresStore, pg_admin: psycopg.Connection[TupleRow]
) -> None:
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with fresh_pg_store.unit_of_work() as uow:
        uow.lock_identities(SCOPE, [EMAIL, CUSTOMER, EMAIL])
        assert pg_admin.execute(held).fetchone() == (2,)
    assert pg_admin.execute(held).fetchone() == (0,)


# -- reading one's own writes ---------------------------------------------------------------


def test_a_transaction_reads_its_own_writes(store: Store) -> None:
    first = rich_profile(BIG_A)
    with store.unit_of_work() as uow:
        uow.prefetch([(SCOPE, EMAIL)], [BIG_A], [("web", "r-9")])
        uow.save_profile(first)
        uow.save_profile(next_version(first, ip="10.9.9.9"))
        assert uow.load_profiles([BIG_A])[BIG_A].ip == "10.9.9.9"
        uow.link_identities(SCOPE, BIG_A, [EMAIL, CUSTOMER])
        uow.unlink_identities(SCOPE, BIG_A, [CUSTOMER])
        assert uow.find_identities(SCOPE, [EMAIL, CUSTOMER]) == {EMAIL: [BIG_A]}
        assert uow.claim_request("web", "r-9", 1)
        assert not uow.claim_request("web", "r-9", 2)
    stored = store.get_profile(BIG_A)
    assert stored is not None
    assert stored.version == 2
    assert stored.ip == "10.9.9.9"
    assert store.find_profiles(SCOPE, EMAIL) == [BIG_A]
    assert store.find_profiles(SCOPE, CUSTOMER) == []
    with store.unit_of_work() as uow:
        assert not uow.claim_request("web", "r-9", 3)


def test_a_saved_profile_reads_back_whole_in_its_transaction(store: Store) -> None:
    """A save keeps the profile's row, its document encoded at once; a later read in the
    same transaction decodes it again, memberships and all, and a third save follows it."""
    stored = rich_profile(BIG_A)
    with store.unit_of_work() as uow:
        uow.save_profile(stored)
    second = next_version(stored, ip="10.1.1.1", memberships={9: stored.memberships[9]})
    with store.unit_of_work() as uow:
        uow.prefetch([], [BIG_A, BIG_B], [])
        uow.save_profile(second)
        assert uow.load_profiles([BIG_A, BIG_B]) == {BIG_A: second}
        uow.save_profile(next_version(uow.load_profiles([BIG_A])[BIG_A], ip="10.2.2.2"))
    assert store.get_profile(BIG_A) == next_version(second, ip="10.2.2.2")


def test_linked_identities_are_found_in_one_read(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.link_identities(SCOPE, BIG_A, [EMAIL, CUSTOMER])
        uow.link_identities(SCOPE, BIG_B, [EMAIL])
        uow.link_identities("other", BIG_B, [IDFV])
    assert store.find_linked(SCOPE, [EMAIL, CUSTOMER, IDFV]) == {
        EMAIL: sorted([BIG_A, BIG_B]),
        CUSTOMER: [BIG_A],
    }
    assert store.find_linked(SCOPE, []) == {}


def test_compacting_keeps_every_profile(store: Store) -> None:
    profile = Profile(mpid=4242, scope="s", created_ms=1, last_stored_ms=2, version=1)
    with store.unit_of_work() as uow:
        uow.save_profile(profile)
    before, after = store.compact()
    assert before >= 0
    assert after >= 0
    assert store.get_profile(4242) == profile
