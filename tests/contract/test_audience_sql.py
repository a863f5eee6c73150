"""Compiled criteria select exactly the profiles the evaluator admits, on every store.

Random criteria trees over random stored profiles (two workspaces, devices, consent,
memberships, event times; values of every kind, text with wildcards, quotes, accents,
numerals, ISO dates): SQLite and PostgreSQL answer with the SQL of audiences.sql, the
memory store with the evaluator itself. Each example works in an identity scope of its
own, so examples sharing a store never see each other's profiles.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from kindred.audiences.definition import Selection
from kindred.audiences.evaluate import DAY_MS, admits
from kindred.audiences.parse import Catalog, parse_criteria, parse_date
from kindred.domain.errors import InvalidBatch
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
from kindred.ports import Store
from tests.strategies import criteria_trees
from tests.unit.audiences.test_compile import EVENTS, HISTORY_KEYS

__all__: list[str] = []

NOW = parse_date("2026-11-20") + 15 * 3_600_000
NESTED = 7  # an audience the criteria may name; profiles may hold it
KEYS = ["tier", "score", 'say "hi"', "a.b", "back\\slash", "tab\tkey"]
TEXTS = [
    "gold", "Gold", "GOLD ", "silver", "émile", "Émile", "", "a*b", "a%b", "a_b", "x\\y",
    "ΟΔΟΣ", "οδος", "İstanbul", "istanbul", "i̇stanbul", "\u212aing", "KinG", "Gold\u212a",
    '"q"', "true", "False", "1", "2.5", "-3", "1e3", ".5", "5.", "12abc", "2026-11-20",
    "2026-11-19T23:59:59.999Z", "2026-11-20 10:00", "2026-11-20T10:00:00+01:00",
    "2026-02-30", "2026-11-20T24:00",
]  # fmt: skip
WANTED = [
    "gold",
    "GOLD",
    "é",
    "émile",
    "a",
    "2.5",
    "1",
    "true",
    "",
    '"',
    "a%b",
    "a_b",
    "οδος",
    "istanbul",
    "i̇stanbul",
    "king",
    "ing",
    "goldk",
]
PATTERNS = ["g*", "?old", "*é*", "a%b", "a_b", "*", "?", "*.*", "x\\y", "GOLD ?", "*ος", "İ*"]
DATES = ["2026-11-19", "2026-11-20", "2026-11-21"]
_ids = itertools.count(1)


# Few, so that stored values often meet the wanted ones at the boundaries.
NUMBERS: list[int | float] = [-3, 0, 1, 2, 0.5, 2.5, NOW - DAY_MS, NOW - 3 * DAY_MS, NOW + 5]


def numbers() -> st.SearchStrategy[int | float]:
    return st.sampled_from(NUMBERS)


scalars = st.one_of(st.sampled_from(TEXTS), numbers(), st.booleans())
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def attribute_entry() -> st.SearchStrategy[AttributeEntry]:
    return st.builds(
        AttributeEntry,
        value=st.none() | values,
        priority=st.just(1),
        source=st.just("seed"),
        ts_ms=st.just(NOW),
        deleted=st.booleans(),
    )


consent = st.builds(
    ConsentFact, consented=st.booleans(), timestamp_ms=st.sampled_from([NOW - 5, NOW - 1])
)
device = st.builds(
    Device,
    key=st.sampled_from(["d1", "d2"]),
    first_seen_ms=st.just(NOW),
    last_seen_ms=st.just(NOW),
    platform=st.sampled_from([None, "", "iOS", "Android"]),
    info=st.dictionaries(
        st.sampled_from(["platform", "os_version", "device_model"]), st.none() | scalars
    ),
    identities=st.dictionaries(
        st.sampled_from(["ios_idfa", "email"]), st.sampled_from(["abc", "ABC", "x@y"])
    ),
    attribution=st.none()
    | st.builds(
        Attribution,
        publisher=st.none() | st.sampled_from(["Pub", "other"]),
        campaign=st.none() | st.just("spring"),
        ts_ms=st.just(NOW),
        deleted=st.booleans(),
    ),
)
# Points near one another, so that distances fall both sides of the radii drawn.
POINTS = [(48.8566, 2.3522), (48.86, 2.35), (51.5074, -0.1278), (40.7128, -74.006), (0.0, 0.0)]
location = st.builds(
    LocationFact,
    ts_ms=st.just(NOW),
    latitude=st.none() | st.sampled_from([p[0] for p in POINTS]),
    longitude=st.none() | st.sampled_from([p[1] for p in POINTS]),
    city_name=st.none() | st.sampled_from(["Paris", "paris", "London", "Émile"]),
    postal_code=st.none() | st.sampled_from(["75001", "75002", "SW1"]),
    dma_code=st.none() | st.sampled_from(["501", "803"]),
)
workspace = st.builds(
    WorkspaceProfile,
    location=st.none() | location,
    first_seen_ms=st.sampled_from([NOW - 10 * DAY_MS, NOW - DAY_MS, NOW]),
    last_seen_ms=st.just(NOW),
    attributes=st.dictionaries(st.sampled_from(KEYS), attribute_entry(), max_size=3),
    gdpr=st.dictionaries(st.sampled_from(["marketing"]), consent),
    ccpa=st.none() | consent,
    devices=st.lists(device, max_size=2, unique_by=lambda d: d.key).map(
        lambda ds: {d.key: d for d in ds}
    ),
)
times = st.lists(st.integers(NOW - 4 * DAY_MS, NOW + 1000), max_size=4).map(sorted)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    created = draw(st.sampled_from([NOW - 10 * DAY_MS, NOW - DAY_MS, NOW]))
    return Profile(
        mpid=0,
        scope="",
        created_ms=created,
        last_stored_ms=created,
        user_identities={
            t: IdentityEntry(value=v, first_seen_ms=created, last_seen_ms=created)
            for t, v in draw(
                st.dictionaries(st.sampled_from(["email", "customer_id"]), st.sampled_from(TEXTS))
            ).items()
        },
        workspaces=draw(st.dictionaries(st.sampled_from([1, 2]), workspace, max_size=2)),
        account_attributes=draw(
            st.dictionaries(st.sampled_from(KEYS), attribute_entry(), max_size=2)
        ),
        memberships=draw(
            st.sampled_from([{}, {NESTED: Membership(audience_id=NESTED, name="n", since_ms=1)}])
        ),
        event_times=draw(
            st.dictionaries(
                st.sampled_from([*HISTORY_KEYS, "screen_view", "custom_event"]),
                times.filter(bool),
            )
        ),
        merged_into=draw(st.sampled_from([None, None, None, 99])),
        version=1,
    )


_OPS = {
    "text": ["equals", "not_equals", "contains", "not_contains"],
    "list": ["includes", "not_includes", "partial_match"],
    "number": ["eq", "ne", "lt", "le", "gt", "ge"],
    "bare": ["exists", "not_exists", "is_true", "is_false"],
    "date": ["before", "after", "on"],
}


def _op(ops: list[str], wanted: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"op": st.sampled_from(ops), "value": wanted})


date_tests = st.one_of(
    _op(["before", "after", "on"], st.sampled_from(DATES)),
    _op(["between_dates"], st.sampled_from(DATES[1:]).map(lambda d: ["2026-11-19", d])),
    _op(["within_last_days", "not_within_last_days"], st.integers(1, 3)),
)
value_tests = st.one_of(
    _op(["equals", "not_equals", "contains", "not_contains"], st.sampled_from(WANTED)),
    _op(["includes", "not_includes", "partial_match"], st.sampled_from(WANTED)),
    _op(["pattern"], st.sampled_from(PATTERNS)),
    _op(["eq", "ne", "lt", "le", "gt", "ge"], numbers()),
    _op(["between"], st.integers(-4, 4).map(lambda low: [low / 2, low / 2 + 1.5])),
    st.sampled_from(["exists", "not_exists", "is_true", "is_false"]).map(lambda op: {"op": op}),
    date_tests,
)


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    """A leaf; a user-based one may name the workspace it reads (AUD-1), an attribute may
    be the account's (PRF-4)."""
    doc = draw(_leaves())
    user_based = ("attribute", "identity", "device", "attribution", "consent", "location")
    if any(k in doc for k in (*user_based, "location_within", "first_seen")):
        if draw(st.integers(0, 2)) == 0:
            doc["workspace"] = draw(st.sampled_from([1, 2]))
        elif "attribute" in doc and draw(st.integers(0, 3)) == 0:
            doc["account_attribute"] = doc.pop("attribute")
    return doc


@st.composite
def _leaves(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0911 - one return per kind
    kind = draw(st.integers(0, 8))
    test = draw(value_tests)
    if kind <= 2:
        return {"attribute": draw(st.sampled_from(KEYS)), **test}
    if kind == 3:
        return {"identity": draw(st.sampled_from(["email", "customer_id", "ios_idfa"])), **test}
    if kind == 4:
        return {"device": draw(st.sampled_from(["platform", "os_version"])), **test}
    if kind == 5:
        return {"attribution": draw(st.sampled_from(["publisher", "campaign"])), **test}
    if kind == 6:
        state = draw(st.sampled_from(["consented", "not_consented", "exists", "not_exists"]))
        if draw(st.booleans()):
            return {"consent": "ccpa", "state": state}
        return {"consent": "gdpr", "purpose": "marketing", "state": state}
    if kind == 7 and draw(st.booleans()):
        if draw(st.booleans()):
            return {"location": draw(st.sampled_from(["city", "zip", "dma", "state"])), **test}
        latitude, longitude = draw(st.sampled_from(POINTS))
        km = draw(st.sampled_from([0.5, 1, 340, 350, 6000]))
        return {"location_within": {"latitude": latitude, "longitude": longitude, "km": km}}
    if kind == 7:
        if draw(st.booleans()):
            return {"audience": NESTED, "member": draw(st.booleans())}
        return {"first_seen": (dated := draw(date_tests))["op"], "value": dated["value"]}
    if draw(st.integers(0, 4)) == 0:
        within, wait = draw(st.integers(1, 3)), draw(st.sampled_from([0, 60, 600]))
        return {"cart_abandonment": {"within_days": within, "wait_minutes": wait}}
    count = draw(st.sampled_from(["at_least", "at_most", "exactly"]))
    event = draw(st.sampled_from([*EVENTS, {"event": "screen_view"}, {"event": "custom_event"}]))
    doc: dict[str, Any] = {**event, count: draw(st.integers(0, 3))}
    if draw(st.booleans()):
        doc["within_days"] = draw(st.integers(1, 3))
    return doc


criteria = criteria_trees(leaves(), max_leaves=5)
CATALOG = Catalog(audiences={NESTED: frozenset()})


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    doc=criteria,
    stored=st.lists(profiles(), min_size=1, max_size=6),
    workspaces=st.sampled_from([frozenset({1}), frozenset({1, 2}), frozenset({2})]),
)
def test_compiled_sql_selects_what_the_evaluator_admits(
    store: Store, doc: dict[str, Any], stored: list[Profile], workspaces: frozenset[int]
) -> None:
    scope = f"s{next(_ids)}"
    stored = [msgspec.structs.replace(p, mpid=next(_ids) * 1_000_003, scope=scope) for p in stored]
    with store.unit_of_work() as uow:
        for profile in stored:
            uow.profiles.save(profile)
    try:
        node = parse_criteria(doc, CATALOG)
    except InvalidBatch:
        reject()  # an operator the criterion does not take: drawn blindly, refused on save
    selection = Selection(criteria=node, scope=scope, workspace_ids=workspaces, now_ms=NOW)
    expected = [p.mpid for p in stored if admits(selection, p)]
    share = "none" if not expected else "all" if len(expected) == len(stored) else "some"
    event(f"selects {share}")
    assert store.matching_profiles(selection, 0, 100) == expected


def test_selection_pages_by_mpid(store: Store) -> None:
    scope = "paging"
    tier = {"tier": AttributeEntry(value="gold", priority=1, source="s", ts_ms=NOW)}
    gold = WorkspaceProfile(first_seen_ms=NOW, last_seen_ms=NOW, attributes=tier)
    with store.unit_of_work() as uow:
        for mpid in (-5, 3, 8, 12):
            uow.profiles.save(
                Profile(
                    mpid=mpid,
                    scope=scope,
                    created_ms=NOW,
                    last_stored_ms=NOW,
                    workspaces={1: gold} if mpid != 8 else {},
                    version=1,
                )
            )
    node = parse_criteria({"attribute": "tier", "op": "equals", "value": "GOLD"}, CATALOG)
    selection = Selection(criteria=node, scope=scope, workspace_ids=frozenset({1}), now_ms=NOW)
    assert store.matching_profiles(selection, -(2**63), 2) == [-5, 3]
    assert store.matching_profiles(selection, 3, 2) == [12]
    other = Selection(criteria=node, scope="elsewhere", workspace_ids=frozenset({1}), now_ms=NOW)
    assert store.matching_profiles(other, -(2**63), 10) == []


def every_value_test() -> list[dict[str, Any]]:
    """Every operator with every wanted value the random criteria draw from."""
    found: list[dict[str, Any]] = [{"op": op} for op in ("exists", "not_exists", "is_true")]
    found.append({"op": "is_false"})
    for op in ("equals", "not_equals", "contains", "not_contains", "includes", "not_includes"):
        found += [{"op": op, "value": w} for w in WANTED]
    found += [{"op": "partial_match", "value": w} for w in WANTED]
    found += [{"op": "pattern", "value": p} for p in PATTERNS]
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        found += [{"op": op, "value": n} for n in [*NUMBERS, 2**53, 2**63, -(2**63)]]
    found += [{"op": "between", "value": [low / 2, low / 2 + 1.5]} for low in range(-4, 5)]
    for op in ("before", "after", "on"):
        found += [{"op": op, "value": d} for d in DATES]
    found += [{"op": "between_dates", "value": ["2026-11-19", d]} for d in DATES[1:]]
    for op in ("within_last_days", "not_within_last_days"):
        found += [{"op": op, "value": n} for n in (1, 2, 3)]
    return found


# Keys a JSON path cannot spell as they are: a quote, a backslash, a control character.
ODD_KEYS = ["tier", 'say "hi"', "back\\slash", "tab\tkey"]


def test_every_value_test_selects_as_the_evaluator(store: Store) -> None:
    """Each operator and wanted value, over one profile per stored value: the boundaries
    (equal numbers, the first and last millisecond of a day) meet every operator."""
    stored_values: list[object] = [*TEXTS, *NUMBERS, True, False]
    stored_values += [["Gold", 2.5], [], ["a_b", "true"], [NOW - DAY_MS]]
    stored_values += [parse_date("2026-11-20"), parse_date("2026-11-21") - 1]
    # Integers at and past the last a float holds exactly, and the ends of int64.
    stored_values += [2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]
    stored_values += ["2026-11-20T00:00:00Z", "2026-11-20T23:59:59.999", "2026-11-20T01:00+02:00"]
    scope = "every-value"
    with store.unit_of_work() as uow:
        for number, value in enumerate(stored_values, start=1):
            entry = AttributeEntry(value=value, priority=1, source="s", ts_ms=NOW)  # type: ignore[arg-type]
            uow.profiles.save(
                Profile(
                    mpid=number,
                    scope=scope,
                    created_ms=NOW,
                    last_stored_ms=NOW,
                    workspaces={
                        1: WorkspaceProfile(
                            first_seen_ms=NOW,
                            last_seen_ms=NOW,
                            attributes=dict.fromkeys(ODD_KEYS, entry),
                        )
                    },
                    version=1,
                )
            )
    mismatches, checked = [], 0
    for key, test in ((k, t) for k in ODD_KEYS for t in every_value_test()):
        try:
            node = parse_criteria({"attribute": key, **test}, CATALOG)
        except InvalidBatch:
            continue  # refused when saved (an empty text to look for)
        checked += 1
        selection = Selection(criteria=node, scope=scope, workspace_ids=frozenset({1}), now_ms=NOW)
        with store.unit_of_work() as uow:
            profiles = uow.profiles.load(range(1, len(stored_values) + 1))
        expected = [m for m in sorted(profiles) if admits(selection, profiles[m])]
        selected = store.matching_profiles(selection, 0, 1000)
        if selected != expected:
            wrong = sorted(set(selected) ^ set(expected))
            mismatches.append((key, test, [stored_values[m - 1] for m in wrong]))
    assert mismatches == []
    assert checked > 4 * 150


def test_first_seen_follows_a_first_seen_time_a_merge_moved(store: Store) -> None:
    """A merge gives the survivor the earlier first-seen time of each workspace; criteria
    see it."""
    seen = WorkspaceProfile(first_seen_ms=NOW, last_seen_ms=NOW)
    late = Profile(
        mpid=77, scope="moved", created_ms=NOW, last_stored_ms=NOW, workspaces={1: seen}, version=1
    )
    with store.unit_of_work() as uow:
        uow.profiles.save(late)
    with store.unit_of_work() as uow:
        earlier = msgspec.structs.replace(seen, first_seen_ms=NOW - 10 * DAY_MS)
        moved = msgspec.structs.replace(late, workspaces={1: earlier}, version=2)
        uow.profiles.save(moved)
    node = parse_criteria({"first_seen": "before", "value": "2026-11-15"}, CATALOG)
    selection = Selection(criteria=node, scope="moved", workspace_ids=frozenset({1}), now_ms=NOW)
    assert admits(selection, moved)
    assert store.matching_profiles(selection, 0, 10) == [77]


def test_identity_and_first_seen_read_only_the_selections_workspaces(store: Store) -> None:
    """A profile seen only in workspace 2 of a shared identity scope: its email and its
    first-seen time do not reach a selection of workspace 1 (AUD-1)."""
    email = {"email": IdentityEntry(value="x@y", first_seen_ms=NOW, last_seen_ms=NOW)}
    there = WorkspaceProfile(first_seen_ms=NOW - 10 * DAY_MS, last_seen_ms=NOW)
    here = WorkspaceProfile(first_seen_ms=NOW, last_seen_ms=NOW)
    only_2 = Profile(
        mpid=81, scope="scoped", created_ms=NOW - 10 * DAY_MS, last_stored_ms=NOW,
        user_identities=email, workspaces={2: there}, version=1,
    )  # fmt: skip
    both = msgspec.structs.replace(only_2, mpid=82, workspaces={1: here, 2: there})
    with store.unit_of_work() as uow:
        uow.profiles.save(only_2)
        uow.profiles.save(both)
    for doc, workspaces, wanted in [
        ({"identity": "email", "op": "exists"}, {1}, [82]),
        ({"identity": "email", "op": "exists"}, {2}, [81, 82]),
        ({"identity": "email", "op": "exists", "workspace": 1}, {1, 2}, [82]),
        ({"exclude": {"identity": "email", "op": "exists"}}, {1}, []),
        ({"first_seen": "before", "value": "2026-11-15"}, {1}, []),
        ({"first_seen": "before", "value": "2026-11-15"}, {1, 2}, [81, 82]),
        ({"first_seen": "before", "value": "2026-11-15", "workspace": 1}, {1, 2}, []),
        ({"first_seen": "on", "value": "2026-11-20", "workspace": 1}, {1, 2}, [82]),
    ]:
        node = parse_criteria(doc, CATALOG)
        selection = Selection(
            criteria=node, scope="scoped", workspace_ids=frozenset(workspaces), now_ms=NOW
        )
        assert [p.mpid for p in (only_2, both) if admits(selection, p)] == wanted, doc
        assert store.matching_profiles(selection, 0, 10) == wanted, doc


def test_account_attributes_select_as_the_evaluator(store: Store) -> None:
    plan = AttributeEntry(value="Pro", priority=50, source="crm", ts_ms=NOW)
    seen = WorkspaceProfile(first_seen_ms=NOW, last_seen_ms=NOW)
    profile = Profile(
        mpid=91, scope="account", created_ms=NOW, last_stored_ms=NOW,
        workspaces={1: seen}, account_attributes={"plan": plan}, version=1,
    )  # fmt: skip
    with store.unit_of_work() as uow:
        uow.profiles.save(profile)
        uow.profiles.save(msgspec.structs.replace(profile, mpid=92, account_attributes={}))
    for doc, wanted in [
        ({"account_attribute": "plan", "op": "equals", "value": "pro"}, [91]),
        ({"account_attribute": "plan", "op": "not_exists"}, [92]),
        ({"attribute": "plan", "op": "exists"}, []),
    ]:
        node = parse_criteria(doc, CATALOG)
        selection = Selection(
            criteria=node, scope="account", workspace_ids=frozenset({1}), now_ms=NOW
        )
        assert store.matching_profiles(selection, 0, 10) == wanted, doc
