"""Identity resolution, default strategy (IDS-2, IDS-3, IDS-4): table-driven decisions, then
properties of a tiny in-memory world that resolves and applies batches exactly like
services/ingest.py does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.apply import ApplyContext, apply_observation, identity_keys
from kindred.domain.identities import DEFAULT_BLOCKLIST, IdentityKey, is_junk
from kindred.domain.observation import Observation
from kindred.domain.profile import Profile
from kindred.domain.tenancy import Guardrails, IdentityPolicy
from kindred.identity.resolve import (
    Candidate,
    IdentityDecision,
    candidate_of,
    resolve,
    usable_identities,
)
from tests.strategies import KEYED_DEVICE_TYPES, TS_BASE, identity_values, junk_values

DEFAULT = IdentityPolicy()
UNIQUE_EMAIL = IdentityPolicy(unique=frozenset({"customer_id", "email"}))


def batch(
    user: Mapping[str, str] | None = None,
    device: Mapping[str, str] | None = None,
    mpid: int | None = None,
) -> Observation:
    return Observation(
        received_ms=TS_BASE,
        effective_ms=TS_BASE,
        mpid=mpid,
        user_identities=dict(user or {}),
        device_identities=dict(device or {}),
    )


def cand(mpid: int, stored: int = 0, **user: str) -> Candidate:
    return Candidate(mpid=mpid, user_identities=user, last_stored_ms=TS_BASE + stored)


def K(id_type: str, value: str) -> IdentityKey:
    return IdentityKey(id_type, value)


def reasons(decision: IdentityDecision) -> list[str]:
    return [n.reason for n in decision.notes]


# --- table-driven decisions ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    obs: Observation
    matches: Mapping[IdentityKey, Sequence[Candidate]]
    action: str
    mpid: int | None
    explicit: Candidate | None = None
    policy: IdentityPolicy = DEFAULT
    linked_user: Mapping[str, str] | None = None
    linked_device: Mapping[str, str] | None = None
    notes: tuple[str, ...] = ()


P1_CID_A = cand(1, customer_id="A", email="e@x")
P2_ANON = cand(2, email="e@x")

CASES = [
    Case(
        "explicit known mpid attaches, whatever the identities match",
        batch({"email": "e@x"}, mpid=7),
        {K("email", "e@x"): [P2_ANON]},
        "attach",
        7,
        explicit=cand(7),
        linked_user={"email": "e@x"},
    ),
    Case(
        "explicit unknown mpid creates that mpid",
        batch({"email": "new@x"}, mpid=-8),
        {},
        "create",
        -8,
        linked_user={"email": "new@x"},
    ),
    Case(
        "explicit mpid with nothing else still creates",
        batch(mpid=9),
        {},
        "create",
        9,
        linked_user={},
        linked_device={},
    ),
    Case(
        "explicit mpid never takes a customer id owned by another profile",
        batch({"customer_id": "A"}, mpid=7),
        {K("customer_id", "A"): [P1_CID_A]},
        "attach",
        7,
        explicit=cand(7),
        linked_user={},
        notes=("unique_conflict",),
    ),
    Case(
        "no match creates",
        batch({"email": "nobody@x"}, {"device_application_stamp": "d"}),
        {},
        "create",
        None,
        linked_user={"email": "nobody@x"},
        linked_device={"device_application_stamp": "d"},
    ),
    Case(
        "highest-priority identity wins: customer id over email",
        batch({"customer_id": "A", "email": "e@x"}),
        {K("customer_id", "A"): [cand(1, customer_id="A")], K("email", "e@x"): [cand(2, 99)]},
        "attach",
        1,
    ),
    Case(
        "highest-priority identity wins: email over device stamp",
        batch({"email": "e@x"}, {"device_application_stamp": "d"}),
        {K("email", "e@x"): [cand(3)], K("device_application_stamp", "d"): [cand(4, 99)]},
        "attach",
        3,
    ),
    Case(
        "mobile number ranks above email",
        batch({"email": "e@x", "mobile_number": "555"}),
        {K("email", "e@x"): [cand(3, 99)], K("mobile_number", "555"): [cand(4)]},
        "attach",
        4,
    ),
    Case(
        "unlisted identity types rank below every listed one",
        batch({"other_id_2": "o2"}, {"device_application_stamp": "d"}),
        {K("other_id_2", "o2"): [cand(3, 99)], K("device_application_stamp", "d"): [cand(4)]},
        "attach",
        4,
    ),
    Case(
        "a lower identity is used when the higher one matches nobody",
        batch({"customer_id": "A", "email": "e@x"}),
        {K("email", "e@x"): [P2_ANON]},
        "attach",
        2,
        linked_user={"customer_id": "A", "email": "e@x"},
    ),
    Case(
        "a profile holding a login id is not matched by a batch without one",
        batch({"email": "e@x"}),
        {K("email", "e@x"): [P1_CID_A]},
        "create",
        None,
        linked_user={"email": "e@x"},
    ),
    Case(
        "a profile holding a login id is matched by a batch carrying the same one",
        batch({"customer_id": "A", "email": "e@x"}),
        {K("customer_id", "A"): [P1_CID_A], K("email", "e@x"): [P1_CID_A]},
        "attach",
        1,
    ),
    Case(
        "a different customer id means a different user",
        batch({"customer_id": "B", "email": "e@x"}),
        {K("email", "e@x"): [P1_CID_A]},
        "create",
        None,
        linked_user={"customer_id": "B", "email": "e@x"},
    ),
    Case(
        "a login-holding profile is skipped for an anonymous one on the same identity",
        batch({"email": "e@x"}),
        {K("email", "e@x"): [cand(1, 99, customer_id="A"), cand(2, 0)]},
        "attach",
        2,
    ),
    Case(
        "most recently stored candidate wins",
        batch({"email": "e@x"}),
        {K("email", "e@x"): [cand(5, 10), cand(6, 30), cand(7, 20)]},
        "attach",
        6,
    ),
    Case(
        "equal store times break ties by mpid, deterministically",
        batch({"email": "e@x"}),
        {K("email", "e@x"): [cand(6, 10), cand(9, 10), cand(5, 10)]},
        "attach",
        9,
    ),
    Case(
        "a unique identity owned by another profile is not linked",
        batch({"customer_id": "B", "email": "e@x"}),
        {K("email", "e@x"): [P1_CID_A]},
        "create",
        None,
        policy=UNIQUE_EMAIL,
        linked_user={"customer_id": "B"},
        notes=("unique_conflict",),
    ),
    Case(
        "a unique identity held by a profile with another value rules that profile out",
        batch({"email": "e2@x"}, {"device_application_stamp": "d"}),
        {K("device_application_stamp", "d"): [cand(3, email="e1@x")]},
        "create",
        None,
        policy=UNIQUE_EMAIL,
    ),
    Case(
        "the identity's own owner is no conflict",
        batch({"customer_id": "A"}),
        {K("customer_id", "A"): [cand(1, customer_id="A")]},
        "attach",
        1,
        linked_user={"customer_id": "A"},
    ),
    Case(
        "no identities and no mpid: unresolved",
        batch(),
        {},
        "unresolved",
        None,
        linked_user={},
        linked_device={},
    ),
    Case(
        "only junk identities: unresolved",
        batch({"customer_id": "null", "email": "Undefined"}, {"device_application_stamp": "0"}),
        {},
        "unresolved",
        None,
        linked_user={},
        linked_device={},
        notes=("junk_identity", "junk_identity", "junk_identity"),
    ),
    Case(
        "junk values never match, even when the index links them",
        batch({"customer_id": "anonymous"}, {"device_application_stamp": "d"}),
        {K("customer_id", "anonymous"): [cand(1, customer_id="anonymous")]},
        "create",
        None,
        linked_user={},
        linked_device={"device_application_stamp": "d"},
        notes=("junk_identity",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_default_strategy(case: Case) -> None:
    decision = resolve(case.obs, case.policy, case.matches, case.explicit)
    assert (decision.action, decision.mpid) == (case.action, case.mpid)
    if case.linked_user is not None:
        assert decision.user_identities == case.linked_user
    if case.linked_device is not None:
        assert decision.device_identities == case.linked_device
    assert sorted(reasons(decision)) == sorted(case.notes)


@pytest.mark.parametrize(
    "junk", ["null", "NULL", "undefined", "0", "anonymous", "Anonymous", "", "  ", " None "]
)
@pytest.mark.parametrize("id_type", ["customer_id", "email", "device_application_stamp"])
def test_junk_values_never_match_or_link(junk: str, id_type: str) -> None:
    is_device = id_type == "device_application_stamp"
    user = {"other": "o"} if is_device else {"other": "o", id_type: junk}
    obs = batch(user, {id_type: junk} if is_device else {"ios_idfv": "v"})
    holder = Candidate(1, {} if is_device else {id_type: junk}, TS_BASE)
    matches = {K(id_type, junk): [holder]}
    decision = resolve(obs, DEFAULT, matches)
    assert decision.action == "create"
    assert decision.mpid is None
    assert id_type not in decision.user_identities
    assert id_type not in decision.device_identities
    path = f"{'device_identities' if is_device else 'user_identities'}.{id_type}"
    assert [(n.reason, n.path) for n in decision.notes] == [("junk_identity", path)]


def test_usable_identities_drop_junk_with_notes() -> None:
    obs = batch({"email": "NULL", "customer_id": "c1"}, {"ios_idfv": "0", "push_token": "t"})
    user, device, notes = usable_identities(obs, DEFAULT)
    assert user == {"customer_id": "c1"}
    assert device == {"push_token": "t"}
    assert sorted(n.path for n in notes) == ["device_identities.ios_idfv", "user_identities.email"]


def test_custom_blocklist_is_honoured() -> None:
    policy = IdentityPolicy(blocklist=frozenset({"guest"}))
    decision = resolve(batch({"email": "Guest"}), policy, {})
    assert decision.action == "unresolved"


def test_max_profiles_per_identity_stops_linking_a_shared_value() -> None:
    policy = IdentityPolicy(max_profiles_per_identity={"device_application_stamp": 2})
    owners = [cand(1, customer_id="A"), cand(2, customer_id="B")]
    obs = batch({"customer_id": "C"}, {"device_application_stamp": "kiosk"})
    decision = resolve(obs, policy, {K("device_application_stamp", "kiosk"): owners})
    assert decision.action == "create"
    assert decision.device_identities == {}
    assert decision.user_identities == {"customer_id": "C"}
    assert [(n.reason, n.path) for n in decision.notes] == [
        ("identity_limit", "device_identities.device_application_stamp")
    ]


def test_max_profiles_per_identity_below_the_limit_links() -> None:
    policy = IdentityPolicy(max_profiles_per_identity={"device_application_stamp": 2})
    owners = [cand(1, customer_id="A")]
    obs = batch({"customer_id": "C"}, {"device_application_stamp": "kiosk"})
    decision = resolve(obs, policy, {K("device_application_stamp", "kiosk"): owners})
    assert decision.device_identities == {"device_application_stamp": "kiosk"}
    assert decision.notes == ()


def test_default_device_stamp_limit_is_twenty() -> None:
    stamp = K("device_application_stamp", "shared")
    obs = batch({"customer_id": "new"}, {"device_application_stamp": "shared"})
    nineteen = [cand(i, customer_id=f"c{i}") for i in range(1, 20)]
    assert resolve(obs, DEFAULT, {stamp: nineteen}).device_identities
    twenty = [*nineteen, cand(20, customer_id="c20")]
    decision = resolve(obs, DEFAULT, {stamp: twenty})
    assert decision.device_identities == {}
    assert reasons(decision) == ["identity_limit"]


def test_attaching_profile_is_not_counted_against_the_limit() -> None:
    policy = IdentityPolicy(max_profiles_per_identity={"email": 1})
    decision = resolve(batch({"email": "e@x"}), policy, {K("email", "e@x"): [cand(3)]})
    assert (decision.action, decision.mpid) == ("attach", 3)
    assert decision.user_identities == {"email": "e@x"}


def test_resolve_is_pure() -> None:
    matches = {K("email", "e@x"): [P2_ANON]}
    obs = batch({"email": "e@x", "customer_id": "null"})
    snapshot = msgspec.json.encode(obs)
    first = resolve(obs, DEFAULT, matches)
    assert resolve(obs, DEFAULT, matches) == first
    assert msgspec.json.encode(obs) == snapshot
    assert matches == {K("email", "e@x"): [P2_ANON]}


def test_candidate_of_profile() -> None:
    result = apply_observation(
        None,
        batch(),
        ApplyContext(
            mpid=5,
            scope="a1",
            workspace_id=1,
            source="s",
            priority=30,
            may_set_consent=True,
            guardrails=Guardrails(),
            immutable_type="customer_id",
            user_identities={"customer_id": "A"},
        ),
    )
    assert candidate_of(result.profile) == Candidate(
        mpid=5, user_identities={"customer_id": "A"}, last_stored_ms=TS_BASE
    )


# --- a tiny world: fake identity index + profiles, driven like services/ingest.py -------------


@dataclass
class World:
    policy: IdentityPolicy = field(default_factory=IdentityPolicy)
    index: dict[IdentityKey, set[int]] = field(default_factory=dict)
    profiles: dict[int, Profile] = field(default_factory=dict)
    next_mpid: int = 1000
    clock: int = TS_BASE

    def ingest(self, obs: Observation) -> IdentityDecision:
        self.clock += 1
        obs = msgspec.structs.replace(obs, received_ms=self.clock, effective_ms=self.clock)
        user, device, _ = usable_identities(obs, self.policy)
        keys = sorted(IdentityKey(t, v) for t, v in (*user.items(), *device.items()))
        matches = {
            k: [candidate_of(self.profiles[m]) for m in sorted(self.index[k])]
            for k in keys
            if self.index.get(k)
        }
        explicit = self.profiles.get(obs.mpid) if obs.mpid is not None else None
        decision = resolve(obs, self.policy, matches, candidate_of(explicit) if explicit else None)
        if decision.action == "unresolved":
            return decision
        mpid = decision.mpid
        if mpid is None:
            self.next_mpid += 1
            mpid = self.next_mpid
        before = self.profiles.get(mpid)
        ctx = ApplyContext(
            mpid=mpid,
            scope="a1",
            workspace_id=1,
            source="server",
            priority=30,
            may_set_consent=True,
            guardrails=Guardrails(),
            immutable_type=self.policy.immutable,
            user_identities=decision.user_identities,
            device_identities=decision.device_identities,
        )
        after = apply_observation(before, obs, ctx).profile
        self.profiles[mpid] = after
        old, new = identity_keys(before), identity_keys(after)
        for key in new - old:
            self.index.setdefault(key, set()).add(mpid)
        for key in old - new:
            self.index[key].discard(mpid)
        return decision

    def grouping(self) -> set[frozenset[IdentityKey]]:
        return {frozenset(identity_keys(p)) for p in self.profiles.values()}

    def check_index(self) -> None:
        """The index links exactly the identities the profiles hold."""
        expected: dict[IdentityKey, set[int]] = {}
        for mpid, profile in self.profiles.items():
            for key in identity_keys(profile):
                expected.setdefault(key, set()).add(mpid)
        assert {k: v for k, v in self.index.items() if v} == expected


_POOL_TYPES = ("customer_id", "email", "mobile_number", "other", *KEYED_DEVICE_TYPES[:2])


@st.composite
def _messy_batches(draw: st.DrawFn) -> Observation:
    """Batches over a tiny pool of identity values, junk included, some naming an mpid."""
    value = st.sampled_from(["v1", "v2", "v3"]) | junk_values()
    ids = draw(st.dictionaries(st.sampled_from(_POOL_TYPES), value, max_size=4))
    user = {t: v for t, v in ids.items() if t not in KEYED_DEVICE_TYPES}
    device = {t: v for t, v in ids.items() if t in KEYED_DEVICE_TYPES}
    mpid = draw(st.sampled_from([None, None, None, None, 1001, 1002, 5]))
    return batch(user, device, mpid)


@settings(max_examples=100, deadline=None)
@given(
    batches=st.lists(_messy_batches(), min_size=1, max_size=12),
    policy=st.sampled_from([DEFAULT, UNIQUE_EMAIL]),
)
def test_world_invariants_hold_for_any_batch_order(
    batches: list[Observation], policy: IdentityPolicy
) -> None:
    world = World(policy=policy)
    customer_ids: dict[int, str] = {}
    for obs in batches:
        decision = world.ingest(obs)
        # a batch with a customer id lands on that customer's profile (see the xfail below
        # for unique identities that are not login identities)
        given_cid = usable_identities(obs, policy)[0].get("customer_id")
        if decision.mpid is not None and given_cid is not None and obs.mpid is None:
            held = world.profiles[decision.mpid].user_identities.get("customer_id")
            if policy.unique <= policy.login:
                assert held is not None
                assert held.value == given_cid
        # (b) a profile's customer id never changes once set
        for mpid, profile in world.profiles.items():
            held = profile.user_identities.get("customer_id")
            if held is not None:
                assert customer_ids.setdefault(mpid, held.value) == held.value
            else:
                assert mpid not in customer_ids
    world.check_index()
    # (a) no two profiles share a unique identity (b) ... nor a customer id
    for id_type in policy.unique | {"customer_id"}:
        owners: dict[str, int] = {}
        for mpid, profile in world.profiles.items():
            entry = profile.user_identities.get(id_type)
            if entry is not None:
                assert owners.setdefault(entry.value, mpid) == mpid, (id_type, entry.value)
    # (c) junk values never reach the index
    assert not [k for k in world.index if is_junk(k.value, DEFAULT_BLOCKLIST)]


@st.composite
def _known_user_batches(draw: st.DrawFn) -> tuple[dict[str, dict[str, str]], list[Observation]]:
    """Users with disjoint identities; every batch carries its user's customer id plus any
    subset of that user's other identities."""
    count = draw(st.integers(1, 4))
    users: dict[str, dict[str, str]] = {}
    types = ("email", "mobile_number", "other", *KEYED_DEVICE_TYPES)
    for n in range(count):
        chosen = draw(st.lists(st.sampled_from(types), unique=True, max_size=len(types)))
        users[f"c{n}"] = {t: f"u{n}-{t}" for t in chosen}
    batches: list[Observation] = []
    for cid, ids in users.items():
        for _ in range(draw(st.integers(1, 3))):
            subset = draw(st.lists(st.sampled_from(sorted(ids)), unique=True)) if ids else []
            user = {
                "customer_id": cid,
                **{t: ids[t] for t in subset if t not in KEYED_DEVICE_TYPES},
            }
            device = {t: ids[t] for t in subset if t in KEYED_DEVICE_TYPES}
            batches.append(batch(user, device))
    return users, batches


@settings(max_examples=80, deadline=None)
@given(case=_known_user_batches(), data=st.data())
def test_known_users_group_the_same_for_any_batch_order(
    case: tuple[dict[str, dict[str, str]], list[Observation]], data: st.DataObject
) -> None:
    users, batches = case
    world = World()
    for obs in data.draw(st.permutations(batches)):
        world.ingest(obs)
    world.check_index()
    expected = set()
    for cid in users:
        seen = {K("customer_id", cid)}
        for obs in batches:
            if obs.user_identities["customer_id"] == cid:
                seen |= {
                    K(t, v)
                    for t, v in (*obs.user_identities.items(), *obs.device_identities.items())
                }
        expected.add(frozenset(seen))
    assert world.grouping() == expected
    assert len(world.profiles) == len(users)
    assert sorted(
        p.user_identities["customer_id"].value for p in world.profiles.values()
    ) == sorted(users)


_ANON_TYPES = ("email", "mobile_number", "other", "facebook", "customer_id", *KEYED_DEVICE_TYPES)


@settings(max_examples=80, deadline=None)
@given(
    identities=st.lists(
        st.tuples(st.sampled_from(_ANON_TYPES), st.sampled_from(["x", "y", "z"])),
        min_size=1,
        max_size=15,
    )
)
def test_anonymous_single_identity_batches_make_one_profile_per_identity(
    identities: list[tuple[str, str]],
) -> None:
    world = World()
    for id_type, value in identities:
        is_device = id_type in KEYED_DEVICE_TYPES
        world.ingest(
            batch(None if is_device else {id_type: value}, {id_type: value} if is_device else None)
        )
    world.check_index()
    assert world.grouping() == {frozenset({K(t, v)}) for t, v in identities}
    assert len(world.profiles) == len(set(identities))


@settings(max_examples=50, deadline=None)
@given(value=identity_values(), junk=junk_values())
def test_junk_and_real_values_in_one_batch(value: str, junk: str) -> None:
    world = World()
    first = world.ingest(batch({"customer_id": junk, "email": value}))
    second = world.ingest(batch({"customer_id": junk, "email": value}))
    assert first.action == "create"
    assert (second.action, second.mpid) == ("attach", world.next_mpid)
    assert list(world.index) == [K("email", value)]


@pytest.mark.parametrize("id_type", ["roku_advertising_id", "push_token", "amp_id"])
def test_keyless_device_identity_finds_its_profile_again(id_type: str) -> None:
    world = World()
    world.ingest(batch(None, {id_type: "R1"}))
    world.ingest(batch(None, {id_type: "R1"}))
    assert len(world.profiles) == 1


def test_known_user_with_a_changed_unique_email_stays_on_their_profile() -> None:
    world = World(policy=UNIQUE_EMAIL)
    first = world.ingest(batch({"customer_id": "A", "email": "old@x"}))
    second = world.ingest(batch({"customer_id": "A", "email": "new@x"}))
    assert first.action == "create"
    assert (second.action, second.mpid) == ("attach", world.next_mpid)
