"""The audience builder's form: any definition the admin API accepts goes through the
form's fields and back unchanged (within what a form can tell apart: the module's
docstring), and a refusal's path finds the field that shows it."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.api.ui.builder_form import apply_step, definition_of, field_of, fields_of, form_tree
from kindred.audiences.definition import AudienceDef
from kindred.audiences.parse import DEVICE_FIELDS, EVENT_TYPES, Catalog, parse_criteria

NESTABLE = 7  # the id of an audience the catalog knows, nesting none

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda t: t.strip() != "")
numbers = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False, width=64)
)
days = st.integers(1, 36_500)
dates = st.dates().map(lambda d: d.isoformat())
workspace = st.one_of(st.none(), st.sampled_from([1, 2]))


@st.composite
def conditions(draw: st.DrawFn, *, recency: bool = True) -> dict[str, Any]:  # noqa: PLR0911  # one return per kind
    """`{"op": OP[, "value": V]}` with a value the operator takes."""
    kind = draw(st.sampled_from(["text", "equals", "number", "between", "none", "date", "dates"]))
    if kind == "text":
        op = draw(st.sampled_from(["contains", "not_contains", "pattern", "includes"]))
        return {"op": op, "value": draw(texts)}
    if kind == "equals":
        return {"op": "equals", "value": draw(st.one_of(texts, numbers, st.booleans()))}
    if kind == "number":
        return {"op": draw(st.sampled_from(["eq", "ne", "lt", "ge"])), "value": draw(numbers)}
    if kind == "between":
        low, high = sorted([draw(numbers), draw(numbers)])
        return {"op": "between", "value": [low, high]}
    if kind == "none":
        return {"op": draw(st.sampled_from(["exists", "not_exists", "is_true", "is_false"]))}
    if kind == "dates":
        first, last = sorted([draw(dates), draw(dates)])
        return {"op": "between_dates", "value": [first, last]}
    if recency and draw(st.booleans()):
        return {
            "op": draw(st.sampled_from(["within_last_days", "not_within_last_days"])),
            "value": draw(days),
        }
    return {"op": draw(st.sampled_from(["before", "after", "on"])), "value": draw(dates)}


def with_workspace(doc: dict[str, Any], ws: int | None) -> dict[str, Any]:
    return doc if ws is None else {**doc, "workspace": ws}


@st.composite
def criteria_leaves(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0911  # one return per kind
    kind = draw(
        st.sampled_from(
            [
                "attribute",
                "account_attribute",
                "identity",
                "device",
                "consent",
                "first_seen",
                "audience",
                "attribution",
                "event",
                "cart",
                "location",
                "within",
            ]
        )
    )
    ws = draw(workspace)
    if kind == "attribute":
        return with_workspace({"attribute": draw(texts), **draw(conditions())}, ws)
    if kind == "account_attribute":
        return {"account_attribute": draw(texts), **draw(conditions())}
    if kind == "identity":
        test = draw(conditions().filter(lambda c: c["op"] in ("contains", "pattern", "exists")))
        return with_workspace(
            {"identity": draw(st.sampled_from(["email", "customer_id"])), **test}, ws
        )
    if kind == "device":
        test = draw(
            conditions().filter(lambda c: c["op"] in ("contains", "eq", "between", "exists"))
        )
        return with_workspace({"device": draw(st.sampled_from(sorted(DEVICE_FIELDS))), **test}, ws)
    if kind == "consent":
        state = draw(st.sampled_from(["consented", "not_consented", "exists", "not_exists"]))
        if draw(st.booleans()):
            return with_workspace({"consent": "gdpr", "purpose": "marketing", "state": state}, ws)
        return with_workspace({"consent": "ccpa", "state": state}, ws)
    if kind == "first_seen":
        test = draw(
            conditions().filter(
                lambda c: c["op"] in ("before", "on", "between_dates", "within_last_days")
            )
        )
        return with_workspace({"first_seen": test["op"], "value": test["value"]}, ws)
    if kind == "audience":
        return {"audience": NESTABLE, "member": draw(st.booleans())}
    if kind in ("attribution", "location"):
        field = draw(
            st.sampled_from(["publisher", "campaign"] if kind == "attribution" else ["city", "zip"])
        )
        test = draw(conditions().filter(lambda c: c["op"] in ("contains", "pattern", "exists")))
        return with_workspace({kind: field, **test}, ws)
    if kind == "cart":
        within = draw(days)
        wait = draw(st.integers(0, within * 24 * 60 - 1))
        return {"cart_abandonment": {"within_days": within, "wait_minutes": wait}}
    if kind == "within":
        point = {
            "latitude": draw(st.floats(-90, 90)),
            "longitude": draw(st.floats(-180, 180)),
            "km": draw(st.floats(0, 20_100)),
        }
        return with_workspace({"location_within": point}, ws)
    return draw(events())


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    doc: dict[str, Any] = {"event": event_type}
    if draw(st.booleans()):
        doc["name"] = draw(texts)
    if event_type == "commerce_event" and draw(st.booleans()):
        doc["action"] = draw(st.sampled_from(["purchase", "add_to_cart"]))
    if draw(st.booleans()):
        doc["within_days"] = draw(days)
    count = draw(st.sampled_from([None, "at_least", "at_most", "exactly"]))
    if count:
        doc[count] = draw(st.integers(0, 1000))
    where = []
    for _ in range(draw(st.integers(0, 2))):
        of = "product" if event_type == "commerce_event" and draw(st.booleans()) else "attribute"
        where.append({of: draw(texts), **draw(conditions(recency=False))})
    if where:
        doc["where"] = where
    return doc


criteria = st.recursive(
    criteria_leaves(),
    lambda inner: st.one_of(
        st.builds(lambda items: {"and": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda items: {"or": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda item: {"exclude": item}, inner),
    ),
    max_leaves=6,
)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": draw(texts),
        "workspaces": [1, 2],
        "inputs": draw(st.sampled_from([[], ["app"], ["app", "web"]])),
        "tags": draw(
            st.lists(texts.map(str.strip).filter(lambda t: "," not in t), max_size=3).map(
                lambda ts: [t[:18] for t in ts]
            )
        ),
        "lookback_days": draw(days),
        "access": draw(st.sampled_from(["private", "view", "usable"])),
        "criteria": draw(criteria),
    }
    if draw(st.booleans()):
        doc["external_name"] = draw(texts)
    return doc


CATALOG = Catalog(audiences={NESTABLE: frozenset()}, workspaces=frozenset({1, 2}), saving=True)


@settings(max_examples=300, deadline=None)
@given(definitions())
def test_an_accepted_definition_round_trips_through_the_form(doc: dict[str, Any]) -> None:
    parse_criteria(doc["criteria"], CATALOG)  # the admin API's check: it accepts this one
    msgspec.convert(doc, AudienceDef)
    fields = fields_of(doc)
    again, _ = definition_of(fields)
    assert again == doc
    # What the page draws from the fields holds every criterion.
    assert form_tree(fields).kind


def test_a_refusal_path_finds_its_field() -> None:
    doc = {
        "name": "x",
        "workspaces": [1],
        "criteria": {
            "and": [
                {"attribute": "tier", "op": "equals", "value": "gold"},
                {"event": "custom_event", "name": "Play", "at_least": 3, "within_days": 7},
                {
                    "exclude": {
                        "event": "commerce_event",
                        "where": [{"product": "price", "op": "between", "value": [1, 2]}],
                    }
                },
                {"cart_abandonment": {"within_days": 1, "wait_minutes": 30}},
            ]
        },
    }
    fields = fields_of(doc)
    _, paths = definition_of(fields)
    assert field_of("criteria.and[1].at_least", paths) == "c.1.count"
    assert field_of("criteria.and[0].value", paths) == "c.0.value"
    assert field_of("criteria.and[0].attribute", paths) == "c.0.key"
    assert field_of("criteria.and[2].exclude.where[0].value[1]", paths) == "c.2.0.w.0.value_to"
    assert field_of("criteria.and[3].cart_abandonment.wait_minutes", paths) == "c.3.wait_minutes"
    assert field_of("criteria.and[3]", paths) == "c.3.type"
    assert field_of("workspaces[1]", paths) == "workspaces"
    assert field_of("lookback_days", paths) == "lookback_days"


def test_a_calculated_attribute_is_shown_as_one_and_saved_as_an_attribute() -> None:
    doc = {
        "name": "x",
        "workspaces": [1],
        "inputs": [],
        "tags": [],
        "lookback_days": 90,
        "access": "usable",
        "criteria": {"attribute": "plays_7d", "op": "ge", "value": 3},
    }
    fields = fields_of(doc, calculated=["plays_7d"])
    assert fields["c.type"] == "calculated"
    assert definition_of(fields)[0] == doc


def test_the_forms_steps_add_remove_and_wrap_criteria() -> None:
    fields = {
        "name": "x",
        "workspaces": "1",
        "c.type": "attribute",
        "c.key": "tier",
        "c.op": "exists",
    }
    apply_step(fields, "wrap:c")
    assert definition_of(fields)[0]["criteria"] == {
        "and": [{"attribute": "tier", "op": "exists"}, {"attribute": "", "op": "", "value": ""}]
    }
    apply_step(fields, "remove:c.1")
    apply_step(fields, "add:c:exclude")
    apply_step(fields, "add:c.1:event")
    fields.update({"c.1.0.event_type": "commerce_event"})
    apply_step(fields, "cond:c.1.0")
    fields.update({"c.1.0.w.0.key": "coupon", "c.1.0.w.0.op": "exists"})
    assert definition_of(fields)[0]["criteria"] == {
        "and": [
            {"attribute": "tier", "op": "exists"},
            {
                "exclude": {
                    "event": "commerce_event",
                    "where": [{"attribute": "coupon", "op": "exists"}],
                }
            },
        ]
    }
    apply_step(fields, "remove:c.1.0.w.0")
    assert form_tree(fields).children[1].children[0].conditions == []
