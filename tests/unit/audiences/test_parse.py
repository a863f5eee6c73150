"""Definitions are checked when saved: anything invalid is refused with the path of the
offending node, never met at evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from kindred.audiences.ast import All, AttributeCriterion, Condition, EventCriterion
from kindred.audiences.parse import (
    Catalog,
    nested_audiences,
    parse_criteria,
    refuse_nesting_when_nested,
)
from kindred.domain.errors import InvalidBatch

CATALOG = Catalog(audiences={1: frozenset(), 2: frozenset({1}), 3: frozenset({2})})


def test_a_tree_parses_into_checked_nodes() -> None:
    node = parse_criteria(
        {
            "and": [
                {"attribute": "tier", "op": "equals", "value": "gold"},
                {"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 3},
            ]
        },
        CATALOG,
    )
    assert node == All(
        (
            AttributeCriterion("tier", Condition("equals", "gold")),
            EventCriterion("custom_event", "Play", 7, "at_least", 3),
        )
    )


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ([], "criteria", "JSON object"),
        ({"and": []}, "criteria.and", "non-empty"),
        (
            {"and": [{"attribute": "a", "op": "equals", "value": "x"}, {"nope": 1}]},
            "criteria.and[1]",
            "unknown criterion",
        ),
        (
            {"and": [{"attribute": "a", "op": "eq", "value": "x"}]},
            "criteria.and[0].value",
            "number",
        ),
        ({"attribute": "a", "op": "shouts", "value": "x"}, "criteria.op", "op is one of"),
        ({"attribute": "a", "op": "exists", "value": "x"}, "criteria.value", "takes no value"),
        (
            {"attribute": "a", "op": "between", "value": [5, 1]},
            "criteria.value",
            "from is after to",
        ),
        ({"attribute": "a", "op": "on", "value": "2026-13-01"}, "criteria.value", "not a date"),
        (
            {"attribute": "a", "op": "equals", "value": "x", "extra": 1},
            "criteria.extra",
            "unknown key",
        ),
        ({"identity": "shoe", "op": "exists"}, "criteria.identity", "unknown identity type"),
        ({"device": "color", "op": "exists"}, "criteria.device", "unknown device field"),
        ({"consent": "gdpr", "state": "consented"}, "criteria.purpose", "non-empty string"),
        ({"audience": 99}, "criteria.audience", "no audience 99"),
        ({"event": "custom_event", "at_least": 1, "at_most": 2}, "criteria.at_most", "one of"),
        ({"event": "party"}, "criteria.event", "unknown event type"),
        (
            {"event": "custom_event", "action": "purchase"},
            "criteria.action",
            "only commerce events",
        ),
        ({"event": "commerce_event", "action": "buy"}, "criteria.action", "unknown product action"),
        (
            {"event": "custom_event", "where": [{"product": "sku", "op": "exists"}]},
            "criteria.where[0].product",
            "only commerce events have products",
        ),
        (
            {
                "event": "commerce_event",
                "where": [
                    {"product": "category", "op": "equals", "value": "shoes"},
                    {"attribute": "genre", "op": "within_last_days", "value": 3},
                ],
            },
            "criteria.where[1].op",
            "op is one of",
        ),
        ({"event": "custom_event", "where": {"a": 1}}, "criteria.where", "list of conditions"),
        (
            {"cart_abandonment": {"within_days": 1, "wait_minutes": 1440}},
            "criteria.cart_abandonment.wait_minutes",
            "shorter than the window",
        ),
        ({"location": "street", "op": "exists"}, "criteria.location", "unknown location field"),
        (
            {"location_within": {"latitude": 91, "longitude": 0, "km": 5}},
            "criteria.location_within.latitude",
            "between -90 and 90",
        ),
        (
            {"location_within": {"latitude": 1, "longitude": 2}},
            "criteria.location_within.km",
            "required",
        ),
        (
            {"cart_abandonment": {"within_days": 1}},
            "criteria.cart_abandonment.wait_minutes",
            "required",
        ),
        (
            {"or": [{"exclude": {"exclude": {"attribute": "a", "op": "exists", "value": 1}}}]},
            "criteria.or[0].exclude.exclude.value",
            "takes no value",
        ),
    ],
)
def test_invalid_definitions_name_the_offending_node(doc: Any, path: str, message: str) -> None:
    with pytest.raises(InvalidBatch, match=message) as refused:
        parse_criteria(doc, CATALOG)
    assert refused.value.path == path


def test_an_audience_may_not_nest_itself_through_others() -> None:
    with pytest.raises(InvalidBatch, match="nest itself"):
        parse_criteria({"audience": 3}, CATALOG, audience_id=1)
    assert nested_audiences(parse_criteria({"audience": 3}, CATALOG, audience_id=4)) == {3}


def test_a_criterion_may_name_one_of_the_audiences_workspaces() -> None:
    catalog = Catalog(workspaces=frozenset({1, 2}))
    node = parse_criteria({"attribute": "tier", "op": "exists", "workspace": 2}, catalog)
    assert node == AttributeCriterion("tier", Condition("exists"), 2)
    with pytest.raises(InvalidBatch, match="not one of the audience's") as refused:
        parse_criteria(
            {"and": [{"first_seen": "after", "value": "2026-01-01", "workspace": 3}]}, catalog
        )
    assert refused.value.path == "criteria.and[0].workspace"
    with pytest.raises(InvalidBatch, match="workspace id") as refused:
        parse_criteria({"identity": "email", "op": "exists", "workspace": "1"}, catalog)
    assert refused.value.path == "criteria.workspace"
    with pytest.raises(InvalidBatch, match="unknown key 'workspace'"):
        parse_criteria({"event": "custom_event", "workspace": 1}, catalog)  # event: inputs


def test_when_saving_only_an_audience_that_nests_none_may_be_nested() -> None:
    saving = Catalog(audiences=CATALOG.audiences, saving=True)
    assert nested_audiences(parse_criteria({"audience": 1}, saving)) == {1}
    with pytest.raises(InvalidBatch, match="audience 2 nests other audiences") as refused:
        parse_criteria({"or": [{"audience": 1}, {"audience": 2}]}, saving)
    assert refused.value.path == "criteria.or[1].audience"
    parse_criteria({"audience": 2}, CATALOG)  # saved definitions still read back
    with pytest.raises(InvalidBatch, match="audience 1 is nested in audience 2"):
        refuse_nesting_when_nested(
            parse_criteria({"audience": 4}, Catalog({4: frozenset()})), 1, CATALOG
        )
