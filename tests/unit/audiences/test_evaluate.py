"""Every operator, from the product documents' own examples (AUD-2 … AUD-4)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from kindred.audiences.ast import Node
from kindred.audiences.definition import Selection
from kindred.audiences.evaluate import DAY_MS, Subject, admits, evaluate, event_key
from kindred.audiences.parse import Catalog, parse_criteria, parse_date
from kindred.domain.observation import ConsentFact, LocationFact
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Profile,
    WorkspaceProfile,
)

NOW = parse_date("2026-11-22") + 12 * 3_600_000  # noon UTC


def attr(value: object) -> AttributeEntry:
    return AttributeEntry(value=value, priority=30, source="web", ts_ms=NOW)  # type: ignore[arg-type]


PROFILE = Profile(
    mpid=1,
    scope="a1",
    created_ms=NOW - 3 * DAY_MS,
    last_stored_ms=NOW,
    user_identities={
        "email": IdentityEntry(value="Ann@Example.com", first_seen_ms=0, last_seen_ms=0)
    },
    workspaces={
        1: WorkspaceProfile(
            first_seen_ms=NOW - 3 * DAY_MS,
            last_seen_ms=NOW,
            attributes={
                "city": attr("New York"),
                "ltv": attr("342.1"),
                "visits": attr(12),
                "vip": attr(True),
                "genres": attr(["Jazz", "Soul"]),
                "signup": attr("2026-11-01"),
                "code": attr("a[1]"),
                "grouped": attr("1_000"),
                "stamp": attr("2026-11-01T23:30:00-01:00"),
                "gone": AttributeEntry(value="x", priority=30, source="web", ts_ms=1, deleted=True),
            },
            gdpr={"marketing": ConsentFact(consented=True, timestamp_ms=NOW)},
            location=LocationFact(
                ts_ms=NOW,
                latitude=40.7128,
                longitude=-74.0060,
                city_name="New York",
                region_code="NY",
                postal_code="10001",
                dma_code="501",
                country_code="US",
            ),
            devices={
                "d": Device(
                    key="d",
                    first_seen_ms=0,
                    last_seen_ms=NOW,
                    platform="iOS",
                    info={"os_version": "17.4", "network_carrier": "Verizon"},
                    identities={"ios_idfv": "IDFV-1"},
                    attribution=Attribution(publisher="Ads Inc", campaign="spring-sale", ts_ms=1),
                )
            },
        ),
        2: WorkspaceProfile(
            first_seen_ms=NOW - 30 * DAY_MS,
            last_seen_ms=NOW - 30 * DAY_MS,
            attributes={"city": attr("Paris")},
            devices={"d2": Device(key="d2", first_seen_ms=0, last_seen_ms=0, platform="Android")},
        ),
    },
    memberships={},
    event_times={
        event_key("custom_event", "Play"): [NOW - 9 * DAY_MS, NOW - 2 * DAY_MS, NOW - 3_600_000],
        "screen_view": [NOW - 40 * DAY_MS],
    },
)


def check(doc: dict[str, Any], *, memberships: dict[int, bool] | None = None) -> bool:
    node: Node = parse_criteria(doc, Catalog(audiences={12: frozenset()}))
    subject = Subject(PROFILE, frozenset({1}), NOW, memberships or {})
    return evaluate(node, subject)


def a(op: str, value: object = None, key: str = "city") -> dict[str, Any]:
    doc: dict[str, Any] = {"attribute": key, "op": op}
    if value is not None:
        doc["value"] = value
    return doc


CASES: list[tuple[dict[str, Any], bool]] = [
    # strings: case-insensitive
    (a("equals", "new york"), True),
    (a("equals", "New"), False),
    (a("not_equals", "Paris"), True),  # workspace 2 is not the audience's
    (a("contains", "YORK"), True),
    (a("not_contains", "york"), False),
    (a("pattern", "new*"), True),
    (a("pattern", "n?w york"), True),
    (a("pattern", "york*"), False),
    (a("pattern", "new"), False),  # a pattern covers the whole value
    (a("pattern", "a[1]", "code"), True),  # only * and ? are wildcards
    (a("pattern", "a[0-9]]", "code"), False),
    # lists: includes / does not include a whole member; partial match within a member
    (a("includes", "jazz", "genres"), True),
    (a("includes", "jaz", "genres"), False),
    (a("not_includes", "rock", "genres"), True),
    (a("partial_match", "ou", "genres"), True),
    # numbers, also written as strings
    (a("gt", 300, "ltv"), True),
    (a("le", 342.1, "ltv"), True),
    (a("eq", 12, "visits"), True),
    (a("ne", 12, "visits"), False),
    (a("between", [10, 12], "visits"), True),
    (a("between", [13, 20], "visits"), False),
    (a("gt", 1, "city"), False),  # not a number: no match
    (a("gt", 1, "grouped"), False),  # only plain numerals count as numbers
    # presence, booleans
    (a("exists"), True),
    (a("exists", key="gone"), False),  # deleted
    (a("not_exists", key="gone"), True),
    (a("is_true", key="vip"), True),
    (a("is_false", key="vip"), False),
    # fixed UTC dates: before excludes the day, after includes it, on covers it
    (a("before", "2026-11-01", "signup"), False),
    (a("after", "2026-11-01", "signup"), True),
    (a("on", "2026-11-01", "signup"), True),
    (a("between_dates", ["2026-10-01", "2026-11-01"], "signup"), True),
    (a("before", "2026-11-02", "signup"), True),
    (a("on", "2026-11-02", "stamp"), True),  # 23:30 at UTC-1 is 00:30 UTC the next day
    # recency in 24-hour days
    # (signed up 2026-11-01 00:00, now is 2026-11-22 12:00: 21.5 days ago)
    (a("within_last_days", 22, "signup"), True),
    (a("within_last_days", 21, "signup"), False),
    (a("not_within_last_days", 21, "signup"), True),
    ({"first_seen": "within_last_days", "value": 3}, True),
    ({"first_seen": "within_last_days", "value": 2}, False),
    # identities
    ({"identity": "email", "op": "exists"}, True),
    ({"identity": "email", "op": "pattern", "value": "*@example.com"}, True),
    ({"identity": "customerid", "op": "exists"}, False),
    ({"identity": "ios_idfv", "op": "exists"}, True),
    # device, consent, attribution
    ({"device": "platform", "op": "equals", "value": "ios"}, True),
    ({"device": "os_version", "op": "ge", "value": 17}, True),
    ({"device": "network_carrier", "op": "contains", "value": "veri"}, True),
    ({"device": "network_carrier", "op": "not_contains", "value": "veri"}, False),
    ({"device": "device_model", "op": "not_equals", "value": "x"}, True),  # none: negative holds
    ({"identity": "ios_idfa", "op": "not_exists"}, True),
    ({"consent": "gdpr", "purpose": "Marketing", "state": "consented"}, True),
    ({"consent": "gdpr", "purpose": "analytics", "state": "not_exists"}, True),
    ({"consent": "ccpa", "state": "exists"}, False),
    ({"attribution": "campaign", "op": "contains", "value": "SPRING"}, True),
    ({"attribution": "publisher", "op": "equals", "value": "other"}, False),
    # location: fields of the newest location; a distance from a point (km)
    ({"location": "city", "op": "equals", "value": "new york"}, True),
    ({"location": "dma", "op": "equals", "value": "501"}, True),
    ({"location": "zip", "op": "pattern", "value": "100??"}, True),
    ({"location": "state", "op": "not_equals", "value": "ny"}, False),
    ({"location": "country", "op": "exists"}, True),
    ({"location_within": {"latitude": 40.758, "longitude": -73.9855, "km": 10}}, True),  # 5 km
    ({"location_within": {"latitude": 39.9526, "longitude": -75.1652, "km": 100}}, False),
    ({"location_within": {"latitude": 39.9526, "longitude": -75.1652, "km": 150}}, True),
    # events: recency and frequency
    ({"event": "custom_event", "name": "play", "within_days": 7}, True),
    ({"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 2}, True),
    ({"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 3}, False),
    ({"event": "custom_event", "name": "Play", "at_least": 3}, True),
    ({"event": "custom_event", "name": "Play", "within_days": 1, "exactly": 1}, True),
    ({"event": "custom_event", "name": "Stop", "at_most": 0}, True),
    ({"event": "screen_view", "within_days": 30}, False),
    # and / or / exclude
    ({"and": [a("exists"), {"exclude": a("equals", "paris")}]}, True),
    ({"or": [a("equals", "paris"), a("equals", "berlin")]}, False),
    ({"exclude": {"audience": 12}}, True),
]


@pytest.mark.parametrize(("doc", "expected"), CASES)
def test_operators(doc: dict[str, Any], expected: bool) -> None:
    assert check(doc) is expected


def test_nested_audience_membership() -> None:
    assert check({"audience": 12}, memberships={12: True})
    assert not check({"audience": 12, "member": False}, memberships={12: True})
    assert not check({"audience": 12})


# --- scope (AUD-1): the audience's workspaces, or the one a criterion names -------------


def check_in(doc: dict[str, Any], workspaces: set[int], profile: Profile = PROFILE) -> bool:
    node: Node = parse_criteria(doc, Catalog())
    return evaluate(node, Subject(profile, frozenset(workspaces), NOW))


def test_first_seen_is_the_first_batch_in_the_audiences_workspaces() -> None:
    """Not when the profile was created in the identity scope: workspace 2 saw it 30
    days ago, workspace 1 three days ago."""
    recent = {"first_seen": "within_last_days", "value": 7}
    assert check_in(recent, {1})
    assert not check_in(recent, {2})
    assert not check_in(recent, {1, 2})  # the earliest of the two
    assert check_in({**recent, "workspace": 1}, {1, 2})
    assert not check_in({"first_seen": "within_last_days", "value": 365}, {3})  # never seen


ONLY_IN_2 = msgspec.structs.replace(PROFILE, workspaces={2: PROFILE.workspaces[2]})


def test_user_identities_count_only_where_the_profile_was_seen() -> None:
    """The account's identity index is shared; an audience of workspace 1 does not see
    the email of a profile only workspace 2 knows (the product documents: "an audience
    created in one workspace will only include users with activity in that workspace")."""
    email = {"identity": "email", "op": "exists"}
    assert check_in(email, {2}, ONLY_IN_2)
    assert not check_in(email, {1}, ONLY_IN_2)
    assert check_in({"identity": "email", "op": "not_exists"}, {1}, ONLY_IN_2)
    assert not check_in({**email, "workspace": 1}, {1, 2}, ONLY_IN_2)
    assert check_in({**email, "workspace": 2}, {1, 2}, ONLY_IN_2)


def test_only_profiles_seen_in_the_workspaces_are_admitted() -> None:
    """Even criteria a profile with no data there passes (an exclusion) admit it only
    when it was seen in one of the selection's workspaces."""
    node = parse_criteria({"exclude": {"attribute": "city", "op": "exists"}}, Catalog())
    outside = Selection(criteria=node, scope="a1", workspace_ids=frozenset({1}), now_ms=NOW)
    assert not admits(outside, ONLY_IN_2)
    inside = Selection(criteria=node, scope="a1", workspace_ids=frozenset({1, 3}), now_ms=NOW)
    assert not admits(inside, ONLY_IN_2)
    other = Selection(criteria=node, scope="a1", workspace_ids=frozenset({2}), now_ms=NOW)
    assert not admits(other, ONLY_IN_2)  # it has a city there
    gone = msgspec.structs.replace(
        ONLY_IN_2, workspaces={2: WorkspaceProfile(first_seen_ms=0, last_seen_ms=0)}
    )
    assert admits(other, gone)


@pytest.mark.parametrize(
    ("doc", "workspaces", "expected"),
    [
        ({"attribute": "city", "op": "equals", "value": "paris", "workspace": 2}, {1, 2}, True),
        ({"attribute": "city", "op": "equals", "value": "paris", "workspace": 1}, {1, 2}, False),
        ({"attribute": "city", "op": "equals", "value": "paris"}, {1, 2}, True),
        # a workspace the audience does not read: nothing to read
        ({"attribute": "city", "op": "equals", "value": "paris", "workspace": 2}, {1}, False),
        ({"attribute": "city", "op": "not_exists", "workspace": 2}, {1}, True),
        ({"device": "platform", "op": "equals", "value": "android", "workspace": 1}, {1, 2}, False),
        ({"device": "platform", "op": "equals", "value": "android", "workspace": 2}, {1, 2}, True),
        (
            {"consent": "gdpr", "purpose": "marketing", "state": "exists", "workspace": 2},
            {1, 2},
            False,
        ),
        (
            {"consent": "gdpr", "purpose": "marketing", "state": "exists", "workspace": 1},
            {1, 2},
            True,
        ),
        ({"attribution": "campaign", "op": "exists", "workspace": 2}, {1, 2}, False),
        ({"location": "city", "op": "exists", "workspace": 2}, {1, 2}, False),
        ({"location": "city", "op": "exists", "workspace": 1}, {1, 2}, True),
        (
            {
                "location_within": {"latitude": 40.758, "longitude": -73.9855, "km": 10},
                "workspace": 2,
            },
            {1, 2},
            False,
        ),
        ({"identity": "ios_idfv", "op": "exists", "workspace": 2}, {1, 2}, False),
    ],
)
def test_a_criterion_reads_the_workspace_it_names(
    doc: dict[str, Any], workspaces: set[int], expected: bool
) -> None:
    assert check_in(doc, workspaces) is expected


def test_account_attributes_are_one_value_for_the_profile() -> None:
    plan = AttributeEntry(value="Pro", priority=50, source="crm", ts_ms=NOW)
    gone = AttributeEntry(priority=50, source="crm", ts_ms=NOW, deleted=True)
    profile = msgspec.structs.replace(
        PROFILE, account_attributes={"plan": plan, "old": gone, "joined": attr("2026-11-21")}
    )
    assert check_in({"account_attribute": "plan", "op": "equals", "value": "pro"}, {1}, profile)
    assert check_in({"account_attribute": "plan", "op": "equals", "value": "pro"}, {2}, profile)
    assert not check_in({"attribute": "plan", "op": "exists"}, {1, 2}, profile)
    assert check_in({"account_attribute": "old", "op": "not_exists"}, {1}, profile)
    assert check_in(
        {"account_attribute": "joined", "op": "within_last_days", "value": 2}, {1}, profile
    )
    assert not check_in({"account_attribute": "plan", "op": "exists"}, {1}, PROFILE)
