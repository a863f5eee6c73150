"""Merging profiles (IDS-6): order independent and associative except for the survivor's
own identities, and nothing of either profile is lost without a trace."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.merge import merge_profiles, merged_stub
from kindred.domain.profile import IdentityEntry, Profile
from tests.strategies import profiles

_ORDERED = msgspec.json.Encoder(order="sorted")


def content(profile: Profile, *, identities: bool = True) -> bytes:
    """Everything merging promises about, in a canonical encoding."""
    data: dict[str, Any] = msgspec.to_builtins(profile, str_keys=True)
    for key in ("mpid", "version", "scope", "merged_into", "absorbed"):
        data.pop(key, None)
    if not identities:
        data.pop("user_identities", None)
    return _ORDERED.encode(data)


def merge(a: Profile, b: Profile) -> Profile:
    return merge_profiles(a, b)[0]


def same_identities(*profiles_: Profile) -> list[Profile]:
    """The profiles with user identities that never conflict (one value per type)."""
    return [
        msgspec.structs.replace(
            p,
            user_identities={
                t: IdentityEntry(
                    value=f"{t}-v", first_seen_ms=e.first_seen_ms, last_seen_ms=e.last_seen_ms
                )
                for t, e in p.user_identities.items()
            },
        )
        for p in profiles_
    ]


@settings(max_examples=80)
@given(profiles(mpid=1), profiles(mpid=2))
def test_merging_is_order_independent(a: Profile, b: Profile) -> None:
    assert content(merge(a, b), identities=False) == content(merge(b, a), identities=False)
    a2, b2 = same_identities(a, b)
    assert content(merge(a2, b2)) == content(merge(b2, a2))


@settings(max_examples=80)
@given(profiles(mpid=1), profiles(mpid=2), profiles(mpid=3))
def test_merging_is_associative(a: Profile, b: Profile, c: Profile) -> None:
    left = merge(merge(a, b), c)
    right = merge(a, merge(b, c))
    assert content(left, identities=False) == content(right, identities=False)
    a2, b2, c2 = same_identities(a, b, c)
    assert content(merge(merge(a2, b2), c2)) == content(merge(a2, merge(b2, c2)))


@given(profiles(mpid=1))
def test_merging_a_profile_with_itself_changes_nothing(a: Profile) -> None:
    assert content(merge(a, a)) == content(a)


@given(profiles(mpid=1), profiles(mpid=2))
def test_the_survivor_keeps_its_identities_and_the_rest_is_reported(a: Profile, b: Profile) -> None:
    result, dropped = merge_profiles(a, b)
    for id_type, entry in a.user_identities.items():
        assert result.user_identities[id_type].value == entry.value
    for id_type, entry in b.user_identities.items():
        kept = result.user_identities[id_type].value == entry.value
        assert kept != (dropped.get(id_type) == entry.value)
    assert result.mpid == a.mpid
    assert result.created_ms == min(a.created_ms, b.created_ms)
    assert result.last_stored_ms == max(a.last_stored_ms, b.last_stored_ms)


_DUE = st.none() | st.integers(0, 2**45)


@given(profiles(mpid=1), profiles(mpid=2), _DUE, _DUE)
def test_a_merged_profile_is_due_when_either_was(
    a: Profile, b: Profile, due_a: int | None, due_b: int | None
) -> None:
    """Each profile was due no later than its next timed change (a calculated state's or an
    audience's): the merged one, holding both, is due at the earlier."""
    a = msgspec.structs.replace(a, audience_due_ms=due_a)
    b = msgspec.structs.replace(b, audience_due_ms=due_b)
    given_dues = [d for d in (due_a, due_b) if d is not None]
    expected = min(given_dues) if given_dues else None
    assert merge(a, b).audience_due_ms == expected == merge(b, a).audience_due_ms


def test_a_merged_profile_leaves_a_stub_pointing_at_its_survivor() -> None:
    merged = Profile(mpid=2, scope="a1", created_ms=5, last_stored_ms=9, version=3)
    stub = merged_stub(merged, survivor_mpid=1, now_ms=100)
    assert (stub.mpid, stub.merged_into, stub.version, stub.last_stored_ms) == (2, 1, 4, 100)
    assert stub.user_identities == {}
    assert stub.workspaces == {}


@given(st.data())
def test_merged_attributes_keep_the_highest_priority_newest_write(data: st.DataObject) -> None:
    a = data.draw(profiles(mpid=1))
    b = data.draw(profiles(mpid=2))
    result = merge(a, b)
    for ws_id, workspace in result.workspaces.items():
        for key, entry in workspace.attributes.items():
            candidates = [
                p.workspaces[ws_id].attributes[key]
                for p in (a, b)
                if ws_id in p.workspaces and key in p.workspaces[ws_id].attributes
            ]
            assert (entry.priority, entry.ts_ms) == max((c.priority, c.ts_ms) for c in candidates)
