"""Every operator, from the product documents' own examples (AUD-2 … AUD-4)."""

from __future__ import annotations

from typing import Any

import pytest

from kindred.audiences.ast import Node
from kindred.audiences.evaluate import DAY_MS, Subject, evaluate, event_key
from kindred.audiences.parse import Catalog, parse_criteria, parse_date
from kindred.domain.observation import ConsentFact
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
            first_seen_ms=0,
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
        2: WorkspaceProfile(first_seen_ms=0, last_seen_ms=0, attributes={"city": attr("Paris")}),
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
