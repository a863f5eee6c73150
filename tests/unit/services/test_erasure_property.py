"""Erasure leaves everyone else exactly as they were (RET-3): over random populations
(profiles with identities, attributes, consent, devices and memberships; event-log entries;
merges between them, real or not), erasing one profile changes no other profile, identity
link, logged batch, membership log entry or merge; on the memory store and SQLite."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindred.audiences.definition import MembershipChange
from kindred.domain.apply import identity_keys
from kindred.domain.profile import Membership, Profile
from kindred.ports import BatchStatus, LogEntry, MergeEntry, Store
from kindred.services.forwarding.transactions import Transactions
from kindred.services.privacy.erasure import Erasure
from kindred.services.privacy.subjects import SubjectFinder
from kindred.storage.memory import MemoryStore
from kindred.storage.sqlite import SqliteStore
from tests.fakes import FakeClock
from tests.strategies import profiles

SCOPE = "a1"
STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda _: MemoryStore(),
    "sqlite": lambda directory: SqliteStore(directory / "kindred.db"),
}


@st.composite
def populations(draw: st.DrawFn) -> tuple[list[Profile], list[tuple[int, int]], int]:
    """Profiles (MPIDs 1..n), merges (survivor, merged) among them, the subject's MPID."""
    count = draw(st.integers(2, 6))
    found = []
    for mpid in range(1, count + 1):
        profile = draw(profiles(mpid=mpid))
        held = draw(st.sets(st.sampled_from([1, 2, 3])))
        memberships = {a: Membership(audience_id=a, name=f"a{a}", since_ms=a) for a in held}
        found.append(msgspec.structs.replace(profile, version=1, memberships=memberships))
    pairs = st.tuples(st.integers(1, count), st.integers(1, count)).filter(lambda p: p[0] != p[1])
    merges = draw(st.lists(pairs, max_size=4))
    return found, merges, draw(st.integers(1, count))


def _fill(store: Store, people: list[Profile], merges: list[tuple[int, int]]) -> None:
    with store.unit_of_work() as uow:
        for profile in people:
            uow.profiles.save(profile)
            uow.identities.link(SCOPE, profile.mpid, identity_keys(profile))
            uow.log.append(
                LogEntry(
                    input="server",
                    workspace_id=1,
                    received_ms=profile.mpid,
                    status=BatchStatus.APPLIED,
                    body=b'{"events":[]}',
                    mpid=profile.mpid,
                )
            )
            uow.memberships.append(
                [
                    MembershipChange(
                        audience_id=a, mpid=profile.mpid, entered=True, at_ms=a, reason="x"
                    )
                    for a in sorted(profile.memberships)
                ]
            )
        for survivor, merged in merges:
            uow.ledger.record(
                MergeEntry(
                    scope=SCOPE,
                    survivor=survivor,
                    merged=merged,
                    rule="alias",
                    merged_ms=1,
                    survivor_before=b"{}",
                    merged_before=b"{}",
                )
            )


def _snapshot(store: Store, mpid: int) -> object:
    return (
        store.get_profile(mpid),
        store.log_for_profile(mpid, 100),
        store.membership_log(audience_id=None, mpid=mpid, until_ms=2**62, limit=100),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations(), kind=st.sampled_from(sorted(STORES)))
def test_erasing_a_profile_leaves_every_other_one_as_it_was(
    population: tuple[list[Profile], list[tuple[int, int]], int], kind: str
) -> None:
    people, merges, subject = population
    with tempfile.TemporaryDirectory() as directory:
        store = STORES[kind](Path(directory))
        store.migrate()
        try:
            _check(store, people, merges, subject)
        finally:
            store.close()


def _check(
    store: Store, people: list[Profile], merges: list[tuple[int, int]], subject: int
) -> None:
    _fill(store, people, merges)
    others = [p.mpid for p in people if p.mpid != subject]
    keys = sorted({k for p in people for k in identity_keys(p)})
    before = {m: _snapshot(store, m) for m in others}
    links = {k: [m for m in store.find_profiles(SCOPE, k) if m != subject] for k in keys}
    kept_merges = [m for m in store.list_merges(None, 100) if subject not in (m.survivor, m.merged)]
    erasure = Erasure(SubjectFinder(store), Transactions(store), FakeClock(10))
    summary = erasure.erase(SCOPE, {}, subject).summary
    assert summary.profiles == 1
    assert store.get_profile(subject) is None
    assert {m: _snapshot(store, m) for m in others} == before
    assert {k: store.find_profiles(SCOPE, k) for k in keys} == links
    assert store.list_merges(None, 100) == kept_merges
    exits = store.membership_log(audience_id=None, mpid=subject, until_ms=2**62, limit=100)
    held = next(p for p in people if p.mpid == subject).memberships
    assert [(c.audience_id, c.entered, c.reason) for c in exits] == [
        (a, False, "erased") for a in sorted(held)
    ]
