"""The store contract of an activation's pages (AUD-5) read outside a transaction: where a
run's pages start (from an index), the profiles of a span as last committed, and their
save in a short transaction that checks the versions read (`profiles.adopt`), as saved
one by one or made ready outside it (`prepare_saves`, `profiles.save_prepared`), on every
store."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.domain.profile import Profile
from kindred.ports import ConcurrentUpdate, Store
from tests.contract.samples import (
    EDGE_MPIDS,
    SCOPE,
    assert_same,
    next_version,
    rich_profile,
    save,
)

__all__: list[str] = []

_MPIDS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _bare(mpid: int, scope: str = SCOPE) -> Profile:
    return msgspec.structs.replace(rich_profile(mpid), scope=scope, memberships={})


def _clear(store: Store, mpids: set[int]) -> None:
    with store.unit_of_work() as uow:
        for profile in uow.profiles.load(list(mpids)).values():
            uow.profiles.delete(profile)


def _adopt_and_save(store: Store, read: list[Profile], saved: Profile, prepared: bool) -> None:
    """`prepared`: made ready for the save outside the transaction (`prepare_saves`)."""
    saves = store.prepare_saves([saved]) if prepared else None
    with store.unit_of_work() as uow:
        uow.profiles.adopt(read)
        if saves is not None:
            uow.profiles.save_prepared(saves)
        else:
            uow.profiles.save(saved)


_EITHER_SAVE = pytest.mark.parametrize("prepared", [False, True], ids=["save", "prepared"])


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mpids=st.sets(_MPIDS, min_size=0, max_size=30),
    start=_MPIDS,
    page=st.integers(1, 7),
    pages=st.integers(1, 6),
)
def test_page_starts_are_every_page_th_mpid_then_the_next_run_s(
    store: Store, mpids: set[int], start: int, page: int, pages: int
) -> None:
    save(store, *(_bare(m) for m in mpids))
    after = sorted(m for m in mpids if m >= start)
    assert store.page_starts(SCOPE, start, page, pages) == after[: page * pages + 1 : page]
    _clear(store, mpids)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mpids=st.sets(_MPIDS, min_size=0, max_size=30),
    bounds=st.tuples(_MPIDS, st.one_of(st.none(), _MPIDS)),
    limit=st.integers(1, 40),
)
def test_profiles_between_are_the_span_s_first_by_mpid(
    store: Store, mpids: set[int], bounds: tuple[int, int | None], limit: int
) -> None:
    start, below = bounds
    save(store, *(_bare(m) for m in mpids))
    found = store.profiles_between(SCOPE, start, below, limit)
    wanted = sorted(m for m in mpids if m >= start and (below is None or m < below))[:limit]
    assert [p.mpid for p in found] == wanted
    _clear(store, mpids)


@pytest.mark.parametrize("mpid", EDGE_MPIDS)
def test_a_span_reads_whole_profiles_at_the_edges(store: Store, mpid: int) -> None:
    save(store, rich_profile(mpid))
    [found] = store.profiles_between(SCOPE, mpid, None, 5)
    assert_same(found, rich_profile(mpid))  # memberships included, and the version
    assert store.profiles_between(SCOPE, mpid, mpid, 5) == []  # the upper bound excluded
    assert store.page_starts(SCOPE, mpid, 1, 3) == [mpid]


def test_pages_are_of_one_scope(store: Store) -> None:
    save(store, *(_bare(m) for m in (1, 3, 5)), *(_bare(m, "other") for m in (2, 4)))
    assert store.page_starts(SCOPE, 0, 2, 5) == [1, 5]
    assert [p.mpid for p in store.profiles_between(SCOPE, 0, None, 10)] == [1, 3, 5]
    assert [p.mpid for p in store.profiles_between("other", 0, 4, 10)] == [2]


@_EITHER_SAVE
def test_an_adopted_profile_saves_when_nothing_changed_it_meanwhile(
    store: Store, prepared: bool
) -> None:
    save(store, rich_profile(1), rich_profile(2))
    read = store.profiles_between(SCOPE, 1, None, 10)
    _adopt_and_save(store, read, next_version(read[0], ip="198.51.100.1"), prepared)
    stored = store.get_profile(1)
    assert stored is not None
    assert (stored.version, stored.ip) == (2, "198.51.100.1")
    # Its memberships are what the saved profile holds.
    assert stored.memberships == read[0].memberships


@_EITHER_SAVE
def test_an_adopted_profile_changed_meanwhile_is_not_saved(store: Store, prepared: bool) -> None:
    save(store, rich_profile(1))
    [read] = store.profiles_between(SCOPE, 1, None, 10)
    save(store, next_version(read, ip="192.0.2.1"))  # a batch, meanwhile
    with pytest.raises(ConcurrentUpdate):
        _adopt_and_save(store, [read], next_version(read, ip="198.51.100.1"), prepared)
    stored = store.get_profile(1)
    assert stored is not None
    assert (stored.version, stored.ip) == (2, "192.0.2.1")


@_EITHER_SAVE
def test_an_adopted_profile_deleted_meanwhile_is_not_saved_again(
    store: Store, prepared: bool
) -> None:
    save(store, rich_profile(1))
    [read] = store.profiles_between(SCOPE, 1, None, 10)
    with store.unit_of_work() as uow:
        uow.profiles.delete(read)
    with pytest.raises(ConcurrentUpdate):
        _adopt_and_save(store, [read], next_version(read, ip="198.51.100.1"), prepared)
    assert store.get_profile(1) is None


def test_prepared_saves_write_whole_profiles_and_their_memberships(store: Store) -> None:
    save(store, *(rich_profile(m) for m in EDGE_MPIDS))
    read = store.profiles_between(SCOPE, min(EDGE_MPIDS), None, len(EDGE_MPIDS))
    changed = [
        next_version(p, ip="198.51.100.7", memberships=dict(list(p.memberships.items())[:1]))
        for p in read
    ]
    saves = store.prepare_saves(changed)
    assert [p.mpid for p in saves.profiles] == [p.mpid for p in changed]
    with store.unit_of_work() as uow:
        uow.profiles.adopt(read)
        uow.profiles.save_prepared(saves)
    for profile in changed:
        stored = store.get_profile(profile.mpid)
        assert stored is not None
        assert_same(stored, profile)  # one membership left of the two


def test_a_prepared_save_at_a_version_not_next_is_refused(store: Store) -> None:
    save(store, rich_profile(1))
    [read] = store.profiles_between(SCOPE, 1, None, 10)
    skipping = msgspec.structs.replace(read, version=read.version + 2, ip="198.51.100.1")
    saves = store.prepare_saves([skipping])
    with store.unit_of_work() as uow:
        uow.profiles.adopt([read])
        with pytest.raises(ConcurrentUpdate):
            uow.profiles.save_prepared(saves)
    stored = store.get_profile(1)
    assert stored is not None
    assert (stored.version, stored.ip) == (read.version, read.ip)
