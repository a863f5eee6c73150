"""What identify, search, login and logout do under each identity strategy (IDS-3), as
reference §2.6 describes them; and modify's rules (unique identities move, immutable ones
stay)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import IdentityKey
from kindred.domain.tenancy import IdentityPolicy
from kindred.identity.idsync import CallKind, decide_call, decide_modify, is_logged_in
from kindred.identity.resolve import Candidate

STRATEGIES: dict[str, IdentityPolicy] = {
    "default": IdentityPolicy(),
    "profile_conversion": IdentityPolicy(strategy="profile_conversion"),
    "profile_link": IdentityPolicy(
        strategy="profile_link",
        unique=frozenset({"customer_id", "email"}),
        login=frozenset({"customer_id", "email"}),
    ),
    "profile_isolation": IdentityPolicy(
        strategy="profile_isolation",
        unique=frozenset({"customer_id", "email"}),
        login=frozenset({"customer_id", "email"}),
    ),
    "best_match": IdentityPolicy(
        strategy="best_match", unique=frozenset(), login=frozenset(), immutable=None
    ),
}

# The world every case starts from: an anonymous profile on device das-1 (the one in use),
# a known profile with customer id c-1 that also used das-1 earlier, another known one.
ANON = Candidate(mpid=10, user_identities={}, last_stored_ms=300)
KNOWN = Candidate(mpid=20, user_identities={"customer_id": "c-1"}, last_stored_ms=200)
OTHER = Candidate(
    mpid=30, user_identities={"customer_id": "c-2", "email": "b@x"}, last_stored_ms=100
)
DEVICE_LINKS = {IdentityKey("device_application_stamp", "das-1"): [ANON, KNOWN]}


def world() -> dict[IdentityKey, list[Candidate]]:
    matches: dict[IdentityKey, list[Candidate]] = {k: list(v) for k, v in DEVICE_LINKS.items()}
    for candidate in (ANON, KNOWN, OTHER):
        for id_type, value in candidate.user_identities.items():
            matches.setdefault(IdentityKey(id_type, value), []).append(candidate)
    return matches


def call(
    strategy: str,
    kind: CallKind,
    user: Mapping[str, str],
    device: Mapping[str, str] | None = None,
    previous: Candidate | None = ANON,
) -> tuple[str, int | None, int | None]:
    decision = decide_call(
        kind,
        user,
        device if device is not None else {"device_application_stamp": "das-1"},
        STRATEGIES[strategy],
        world(),
        previous=previous,
    )
    return decision.action, decision.mpid, decision.merge_from


ALL = tuple(STRATEGIES)
SESSIONS = ("default", "profile_conversion", "profile_link", "profile_isolation")

# (strategies, call kind, user identities, expected (action, mpid, merged from)), one row
# per sentence of the reference's strategy table.
TABLE: Sequence[
    tuple[tuple[str, ...], CallKind, dict[str, str], tuple[str, int | None, int | None]]
] = [
    # identify: the device's most recent eligible profile; a known profile's login identity
    # must be carried to be matched, so the device alone finds the anonymous one.
    (ALL, "identify", {}, ("attach", 10, None)),
    (ALL, "identify", {"customer_id": "c-1"}, ("attach", 20, None)),
    # a login identity held by nobody: not the known profile (c-1), a new or the anonymous
    (SESSIONS, "identify", {"customer_id": "c-9"}, ("attach", 10, None)),
    # search never creates
    (ALL, "search", {"customer_id": "c-9"}, ("attach", 10, None)),
    # login, new login identity: conversion strategies add it to the anonymous profile...
    (("default", "profile_conversion"), "login", {"customer_id": "c-9"}, ("attach", 10, None)),
    # ...link and isolation make a new profile
    (
        ("profile_link", "profile_isolation"),
        "login",
        {"customer_id": "c-9"},
        ("create", None, None),
    ),
    # login, known login identity: that profile; conversion strategies fold the anonymous
    # profile in use into it
    (("default", "profile_conversion"), "login", {"customer_id": "c-1"}, ("attach", 20, 10)),
    (("profile_link", "profile_isolation"), "login", {"customer_id": "c-1"}, ("attach", 20, None)),
    # link and isolation also log in by email
    (("profile_link", "profile_isolation"), "login", {"email": "b@x"}, ("attach", 30, None)),
    # logout: a new anonymous profile, except isolation, which returns to the device's
    (("default", "profile_conversion", "profile_link"), "logout", {}, ("create", None, None)),
    (("profile_isolation",), "logout", {}, ("attach", 10, None)),
]


@pytest.mark.parametrize(
    ("strategy", "kind", "user", "expected"),
    [(s, kind, user, expected) for strategies, kind, user, expected in TABLE for s in strategies],
)
def test_strategy_table(
    strategy: str,
    kind: CallKind,
    user: dict[str, str],
    expected: tuple[str, int | None, int | None],
) -> None:
    assert call(strategy, kind, user) == expected


def test_search_without_a_match_finds_nothing() -> None:
    assert call("default", "search", {"email": "nobody@x"}, device={})[0] == "not_found"


def test_identify_without_a_match_creates() -> None:
    assert call("default", "identify", {"email": "new@x"}, device={}) == ("create", None, None)


@pytest.mark.parametrize("kind", ["login", "logout"])
def test_best_match_offers_no_login_or_logout(kind: CallKind) -> None:
    with pytest.raises(InvalidBatch, match="best_match"):
        call("best_match", kind, {"customer_id": "c-1"})


def test_best_match_matches_a_known_profile_by_its_device() -> None:
    # No login identities: the device's most recent profile, whoever it is.
    decision = decide_call(
        "identify",
        {},
        {"device_application_stamp": "das-1"},
        STRATEGIES["best_match"],
        {IdentityKey("device_application_stamp", "das-1"): [KNOWN]},
    )
    assert (decision.action, decision.mpid) == ("attach", 20)


def test_no_merge_when_the_previous_profile_is_known_or_the_same() -> None:
    assert call("default", "login", {"customer_id": "c-1"}, previous=OTHER)[2] is None
    assert call("default", "login", {"customer_id": "c-1"}, previous=KNOWN)[2] is None
    assert call("default", "login", {"customer_id": "c-1"}, previous=None)[2] is None


def test_the_merge_on_login_can_be_switched_off() -> None:
    policy = IdentityPolicy(merge_anonymous_on_login=False)
    decision = decide_call("login", {"customer_id": "c-1"}, {}, policy, world(), previous=ANON)
    assert (decision.mpid, decision.merge_from) == (20, None)


def test_a_unique_identity_held_elsewhere_is_not_linked_twice() -> None:
    decision = decide_call(
        "identify",
        {"customer_id": "c-1", "email": "b@x"},
        {},
        STRATEGIES["profile_link"],
        world(),
    )
    assert decision.mpid == 20
    assert decision.user_identities == {"customer_id": "c-1"}  # b@x stays with profile 30
    assert [n.reason for n in decision.notes] == ["unique_conflict"]


def test_logged_in_means_a_login_identity_with_the_same_value() -> None:
    policy = STRATEGIES["default"]
    assert is_logged_in({"customer_id": "c-1"}, {"customer_id": "c-1"}, policy)
    assert not is_logged_in({"customer_id": "c-1"}, {"customer_id": "c-2"}, policy)
    assert not is_logged_in({"email": "a@x"}, {"email": "a@x"}, policy)


def modify(
    changes: Sequence[tuple[str, str | None, str | None]],
    held: Mapping[str, str] | None = None,
    owners: Mapping[IdentityKey, Sequence[int]] | None = None,
) -> tuple[dict[str, str], dict[int, list[str]]]:
    decision = decide_modify(
        held if held is not None else {"customer_id": "c-1", "email": "a@x"},
        changes,
        STRATEGIES["profile_link"],
        owners or {},
        mpid=20,
    )
    return decision.user_identities, decision.moved_from


def test_modify_adds_changes_and_removes() -> None:
    assert modify([("other", None, "o-1")])[0] == {
        "customer_id": "c-1",
        "email": "a@x",
        "other": "o-1",
    }
    assert modify([("email", "a@x", "z@x")])[0]["email"] == "z@x"
    assert "email" not in modify([("email", "a@x", None)])[0]


def test_modify_moves_a_unique_identity_from_its_other_holder() -> None:
    owners = {IdentityKey("email", "b@x"): [30]}
    after, moved = modify([("email", "a@x", "b@x")], owners=owners)
    assert after["email"] == "b@x"
    assert moved == {30: ["email"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("customer_id", "c-1", "c-2"), "immutable"),
        (("customer_id", "c-1", None), "immutable"),
        (("email", "wrong@x", "z@x"), "old_value"),
        (("email", "a@x", "undefined"), "placeholder"),
        (("ios_idfv", None, "X"), "user identities"),
    ],
)
def test_modify_refuses_what_the_strategy_forbids(
    change: tuple[str, str | None, str | None], message: str
) -> None:
    with pytest.raises(InvalidBatch, match=message):
        modify([change])


def test_the_immutable_identity_may_be_set_once() -> None:
    assert modify([("customer_id", None, "c-5")], held={})[0] == {"customer_id": "c-5"}
