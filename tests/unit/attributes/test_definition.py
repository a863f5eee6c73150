"""Calculated attribute definitions: checked when saved, with the path of a problem;
which events count and what they carry; seeds of every shape."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from kindred.attributes.definition import compile_definition
from kindred.attributes.seeds import seed_agg, seeded
from kindred.domain.calculated import DAY_MS, Agg, fold
from kindred.domain.calculated_values import value
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact

PLAY = {"event": "custom_event", "name": "Play"}


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], "definition"),
        ({"calculation_type": "median", "event": PLAY}, "definition.calculation_type"),
        ({"calculation_type": "count", "event": PLAY, "extra": 1}, "definition.extra"),
        ({"calculation_type": "count"}, "definition.event"),
        ({"calculation_type": "count", "event": {"event": "nope"}}, "event"),
        ({"calculation_type": "count", "event": {**PLAY, "within_days": 3}}, "within_days"),
        ({"calculation_type": "sum", "event": PLAY}, "definition.attribute"),
        ({"calculation_type": "sum", "event": PLAY, "attribute": ""}, "definition.attribute"),
        ({"calculation_type": "count", "event": PLAY, "window": {"type": "within"}}, "window"),
        (
            {"calculation_type": "count", "event": PLAY, "window": {"type": "within", "days": 0}},
            "definition.window.days",
        ),
        (
            {"calculation_type": "count", "event": PLAY, "window": {"type": "since", "date": "x"}},
            "definition.window.date",
        ),
        (
            {
                "calculation_type": "count",
                "event": {**PLAY, "where": [{"attribute": "a", "op": "bogus"}]},
            },
            "where[0].op",
        ),
    ],
)
def test_invalid_definitions_name_the_path_of_the_problem(doc: Any, path: str) -> None:
    with pytest.raises(InvalidBatch) as refused:
        compile_definition(1, "x", 1, doc)
    assert path in str(refused.value)


def test_matching_events_and_their_values() -> None:
    compiled = compile_definition(
        1,
        "spent",
        1,
        {
            "calculation_type": "sum",
            "event": {
                "event": "commerce_event",
                "action": "purchase",
                "where": [{"product": "category", "op": "equals", "value": "books"}],
            },
            "attribute": "price",
            "window": {"type": "within", "weeks": 2},
        },
    )
    assert compiled.spec.within_days == 14
    books: tuple[dict[str, object], ...] = (
        {"category": "books", "price": 10},
        {"category": "toys", "price": "2.5"},
    )
    purchase = EventFact(
        event_type="commerce_event", timestamp_ms=0, action="purchase", products=books
    )
    assert compiled.matches(purchase)
    assert compiled.values(purchase) == [10, "2.5"]
    assert not compiled.matches(EventFact(event_type="commerce_event", timestamp_ms=0))
    play = compile_definition(1, "p", 1, {"calculation_type": "count", "event": PLAY})
    assert play.matches(EventFact(event_type="custom_event", timestamp_ms=0, name="PLAY"))
    assert not play.matches(EventFact(event_type="custom_event", timestamp_ms=0, name="Stop"))


def test_an_edited_definition_has_another_digest() -> None:
    first = compile_definition(1, "p", 1, {"calculation_type": "count", "event": PLAY})
    same = compile_definition(1, "p", 1, {"event": PLAY, "calculation_type": "count"})
    other = compile_definition(
        1, "p", 1, {"calculation_type": "count", "event": {"event": "install"}}
    )
    assert first.digest == same.digest != other.digest


@pytest.mark.parametrize(
    ("kind", "seed", "expected"),
    [
        ("count", {"value": 4}, 4),
        ("sum", {"value": 100.5}, 100.5),
        ("minimum", {"value": 3}, 3),
        ("average", {"key_value_pairs": {"sum": 30, "count": 4}}, 7.5),
        ("most_frequent", {"key_value_pairs": {"a": 2, "b": 5}}, "b"),
        ("unique_list", {"list": ["b", "a"]}, ["a", "b"]),
        ("unique_values_count", {"list": ["b", "a"]}, 2),
        ("first_occurrence", {"value": "x"}, "x"),
        ("last_occurrence_timestamp", {"value": 0}, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_seeds_of_every_shape(kind: str, seed: dict[str, object], expected: object) -> None:
    attribute = None if kind in ("count", "last_occurrence_timestamp") else "v"
    doc = {"calculation_type": kind, "event": PLAY, "attribute": attribute}
    compiled = compile_definition(1, "c", 1, {k: v for k, v in doc.items() if v is not None})
    state = seeded(compiled.empty_state(), seed, "2024-01-02", "c")
    assert value(state, 0) == expected


def test_events_before_the_cutoff_are_in_the_seed_and_later_ones_add_to_it() -> None:
    compiled = compile_definition(1, "c", 1, {"calculation_type": "count", "event": PLAY})
    state = seeded(compiled.empty_state(), {"value": 10}, "1970-01-03", "c")
    state = fold(state, 1 * DAY_MS, [], 5 * DAY_MS)  # before the cutoff: counted by the seed
    state = fold(state, 2 * DAY_MS, [], 5 * DAY_MS)
    assert value(state, 5 * DAY_MS) == 11


def test_a_seed_that_does_not_fit_the_type_is_refused_with_the_name() -> None:
    with pytest.raises(InvalidBatch, match=r"^ltv: seed does not fit average"):
        seed_agg("average", {"value": 3}, "ltv")
    with pytest.raises(InvalidBatch, match=r"^ltv: cutoff_date"):
        seeded(
            compile_definition(
                1, "c", 1, {"calculation_type": "count", "event": PLAY}
            ).empty_state(),
            {"value": 1},
            "soon",
            "ltv",
        )
    assert seed_agg("count", {"value": "3"}, "x") == Agg(n=3)
    assert seed_agg("count", {"value": 3.0}, "x") == Agg(n=3)


@pytest.mark.parametrize("bad", [-5.5, 1.5, -1, 1e308, 2**63, "inf", "nan", float("inf")])
def test_a_count_seed_is_a_whole_number_from_0(bad: object) -> None:
    with pytest.raises(InvalidBatch, match=r"^n: seed does not fit count"):
        seed_agg("count", {"value": bad}, "n")
    with pytest.raises(InvalidBatch, match=r"^n: seed does not fit average"):
        seed_agg("average", {"key_value_pairs": {"sum": 1, "count": bad}}, "n")


def test_the_reference_shape_is_read_too() -> None:
    reference = {
        "recipe_type": "event",
        "data_point": {
            "type": "event_attribute",
            "event_name": "Purchase",
            "event_type": "custom_event",
            "attribute_name": "Total Amount",
        },
        "conditions": [
            {"type": "number", "operator": "greater_than", "attribute_name": "Step", "value": "2"}
        ],
        "calculation_type": "sum",
        "time_period": {"type": "within", "within": 2, "within_unit": "weeks"},
    }
    compiled = compile_definition(1, "ltv", 1, reference)
    assert compiled.attribute == "Total Amount"
    assert compiled.spec.within_days == 14
    event = EventFact(
        event_type="custom_event",
        timestamp_ms=0,
        name="purchase",
        attributes={"Step": 3, "Total Amount": "9.5"},
    )
    assert compiled.matches(event)
    assert not compiled.matches(msgspec.structs.replace(event, attributes={"Step": 1}))
    since = {**reference, "time_period": {"type": "since", "date": "2019-10-01T00:00:00"}}
    assert compile_definition(1, "ltv", 1, since).spec.since_ms == 1_569_888_000_000
    bad = {**reference, "conditions": [{"operator": "sounds_like", "attribute_name": "x"}]}
    with pytest.raises(InvalidBatch, match=r"definition\.conditions\[0\]\.operator"):
        compile_definition(1, "ltv", 1, bad)
