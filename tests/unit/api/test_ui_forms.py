"""The forms of the calculated attribute, output and connection pages: the documents their
fields make, the fields a saved one fills in (a round trip through the posted form gives
the document back), and the field a refusal's path names."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kindred.api.ui.calculated_form import (
    CONDITION_OPS,
    CalculatedForm,
    ConditionRow,
    definition_of,
    describe,
    field_of,
    form_of,
    parsed_form,
)
from kindred.api.ui.forwarding_form import (
    OUTPUT_FIELDS,
    audience_connection_document,
    config_error_field,
    event_connection_document,
    form_values,
    output_document,
)
from kindred.attributes.definition import compile_definition
from kindred.audiences.operands import BOOL_OPS, NUMBER_OPS, PRESENCE_OPS
from kindred.audiences.parse import EVENT_TYPES, PRODUCT_ACTIONS
from kindred.domain.calculated import CALCULATION_TYPES, NEEDS_VALUE
from kindred.domain.errors import InvalidBatch
from kindred.domain.forwarding import AudienceConnection, EventConnection, OutputDef

# --- what a browser posts ------------------------------------------------------------------


def posted_of(form: CalculatedForm) -> dict[str, list[str]]:
    """The form as the page's fields post it (names as calculated_edit.html gives them)."""
    posted = {
        key: [value]
        for key, value in vars(form).items()
        if key != "conditions" and isinstance(value, str)
    }
    for n, row in enumerate(form.conditions):
        for part in ("of", "key", "op", "value", "value_to"):
            posted[f"where-{n}-{part}"] = [getattr(row, part)]
    return posted


def posted_fields(values: dict[str, str]) -> dict[str, list[str]]:
    """A form filled in with `values`; an empty checkbox sends nothing."""
    return {key: [value] for key, value in values.items() if value}


# --- strategies ---------------------------------------------------------------------------

words = (
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
dates = (
    st.dates()
    .map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")
    .filter(lambda t: len(t) == 10)
)
numbers = st.integers(-(10**17), 10**17) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def conditions(draw: st.DrawFn, commerce: bool) -> dict[str, object]:
    of = draw(st.sampled_from(["attribute", "product"] if commerce else ["attribute"]))
    op = draw(st.sampled_from(CONDITION_OPS))
    found: dict[str, object] = {of: draw(words), "op": op}
    if op in PRESENCE_OPS or op in BOOL_OPS:
        return found
    if op == "between":
        low, high = sorted([draw(numbers), draw(numbers)])
        found["value"] = [low, high]
    elif op == "between_dates":
        found["value"] = sorted([draw(dates), draw(dates)])
    elif op in NUMBER_OPS:
        found["value"] = draw(numbers)
    elif op in ("before", "after", "on"):
        found["value"] = draw(dates)
    else:
        found["value"] = draw(words)
    return found


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(sorted(CALCULATION_TYPES)))
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    commerce = event_type == "commerce_event"
    event: dict[str, object] = {"event": event_type}
    if draw(st.booleans()):
        event["name"] = draw(words)
    if commerce and draw(st.booleans()):
        event["action"] = draw(st.sampled_from(sorted(PRODUCT_ACTIONS)))
    where = draw(st.lists(conditions(commerce), max_size=3))
    if where:
        event["where"] = where
    doc: dict[str, object] = {"calculation_type": kind, "event": event}
    if kind in NEEDS_VALUE or draw(st.booleans()):
        doc["attribute"] = draw(words)
    window = draw(
        st.none()
        | st.builds(lambda n: {"type": "within", "days": n}, st.integers(1, 3650))
        | st.builds(lambda n: {"type": "within", "weeks": n}, st.integers(1, 3650))
        | st.builds(lambda d: {"type": "since", "date": d}, dates)
    )
    if window is not None:
        doc["window"] = window
    return doc


# --- calculated attributes --------------------------------------------------------------


@given(definitions())
def test_a_saved_definition_comes_back_through_its_form(doc: dict[str, object]) -> None:
    form = form_of("plays", 1, "about", doc)
    assert definition_of(parsed_form(posted_of(form))) == doc
    compile_definition(0, "plays", 1, doc)  # what the strategy makes is valid


@given(definitions(), st.integers(0, 3))
def test_blank_condition_rows_are_left_out(doc: dict[str, object], blanks: int) -> None:
    form = form_of("plays", 1, "", doc).with_blank_rows(blanks)
    assert definition_of(parsed_form(posted_of(form))) == doc


def test_the_form_makes_the_documented_definition() -> None:
    posted = {
        "name": ["plays_7d"],
        "workspace_id": ["1"],
        "calculation_type": ["count"],
        "event_type": ["custom_event"],
        "event_name": [" Play "],
        "action": [""],
        "attribute": [""],
        "window": ["within"],
        "window_count": ["7"],
        "window_unit": ["days"],
        "where-0-of": ["attribute"],
        "where-0-key": ["length"],
        "where-0-op": ["gt"],
        "where-0-value": ["0"],
        "where-1-key": [""],
        "where-1-op": ["equals"],
        "where-1-value": [""],
    }
    form = parsed_form(posted)
    assert (form.name, form.workspace_id) == ("plays_7d", "1")
    assert definition_of(form) == {
        "calculation_type": "count",
        "event": {
            "event": "custom_event",
            "name": "Play",
            "where": [{"attribute": "length", "op": "gt", "value": 0}],
        },
        "window": {"type": "within", "days": 7},
    }
    assert describe(definition_of(form)) == (
        'count, custom_event "Play" where length gt 0, in the last 7 days'
    )


def test_values_are_typed_as_their_operator_reads_them() -> None:
    def value_of(op: str, value: str, value_to: str = "") -> object:
        row = ConditionRow(key="k", op=op, value=value, value_to=value_to)
        where = definition_of(CalculatedForm(conditions=(row,)))["event"]
        assert isinstance(where, dict)
        return where["where"][0].get("value", "none")

    assert value_of("ge", "3") == 3
    assert value_of("lt", "2.5") == 2.5
    assert value_of("between", "1", "1e3") == [1, 1000.0]
    assert value_of("eq", "three") == "three"  # no number: the check refuses it at its path
    assert value_of("eq", "nan") == "nan"
    assert value_of("equals", "3") == "3"
    assert value_of("exists", "ignored") == "none"
    assert value_of("between_dates", "2024-01-01", "2024-02-01") == ["2024-01-01", "2024-02-01"]


def test_a_refusal_names_its_field() -> None:
    rows = (ConditionRow(), ConditionRow(key="a"), ConditionRow(key="b", value="x"))
    assert field_of("definition.event.where[0].value", rows) == "where-1-value"
    assert field_of("definition.event.where[1].value[1]", rows) == "where-2-value_to"
    assert field_of("definition.event.where[1].value[0]", rows) == "where-2-value"
    assert field_of("definition.event.where[0].op", rows) == "where-1-op"
    assert field_of("definition.event.where[0].product", rows) == "where-1-key"
    assert field_of("definition.window.days") == "window_count"
    assert field_of("definition.window.date") == "since_date"
    assert field_of("definition.attribute") == "attribute"
    assert field_of("name") == "name"
    assert field_of("something.else") == "calculation_type"


def test_the_checks_refusals_land_on_the_fields_that_caused_them() -> None:
    def refused_at(form: CalculatedForm) -> str:
        try:
            compile_definition(0, "x", 1, definition_of(form))
        except InvalidBatch as exc:
            return field_of(exc.path, form.conditions)
        raise AssertionError("accepted")

    bad_number = ConditionRow(key="length", op="gt", value="long")
    assert refused_at(CalculatedForm(conditions=(ConditionRow(), bad_number))) == "where-1-value"
    assert refused_at(CalculatedForm(calculation_type="sum")) == "attribute"
    assert refused_at(CalculatedForm(window="within", window_count="0")) == "window_count"
    assert refused_at(CalculatedForm(window="since", since_date="yesterday")) == "since_date"
    product = ConditionRow(of="product", key="brand", value="x")
    assert refused_at(CalculatedForm(conditions=(product,))) == "where-0-key"


def test_a_reference_shaped_draft_fills_the_form_in_kindreds_shape() -> None:
    reference = {
        "calculation_type": "sum",
        "data_point": {"event_type": "custom_event", "event_name": "Buy", "attribute_name": "amt"},
        "time_period": {"type": "within", "within": 2, "within_unit": "weeks"},
    }
    form = form_of("spend", 1, "", reference)
    doc = definition_of(form)
    assert compile_definition(0, "a", 1, doc).spec == compile_definition(0, "b", 1, reference).spec
    assert (form.event_name, form.attribute, form.window_unit) == ("Buy", "amt", "weeks")


# --- outputs and connections ------------------------------------------------------------

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=10)
lines = st.lists(words, min_size=1, max_size=3)
positive = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)


@st.composite
def outputs(draw: st.DrawFn) -> OutputDef:
    kind = draw(st.sampled_from(sorted(OUTPUT_FIELDS)))
    given: dict[str, Any] = {"name": draw(names), "kind": kind}
    strategies: dict[str, Any] = {
        "url": words,
        "auth_header": words,
        "timeout_s": positive,
        "batch_size": st.integers(1, 10**6),
        "directory": words,
        "rotate_bytes": st.integers(1, 10**12),
        "subject": words,
        "stream": words,
    }
    for key in OUTPUT_FIELDS[kind]:
        value = draw(strategies[key])
        if draw(st.booleans()) or key in ("url", "directory", "subject"):
            given[key] = value
    given["accepts_erasures"] = draw(st.booleans())
    return OutputDef(**given)


@given(outputs())
def test_an_output_comes_back_through_its_form(output: OutputDef) -> None:
    posted = posted_fields(form_values(output))
    doc = output_document(output.kind, posted)
    assert msgspec.convert(doc, OutputDef) == output


@given(
    st.builds(
        EventConnection,
        name=names,
        input=names,
        output=names,
        event_names_allow=st.none() | lines,
        event_names_block=st.just([]) | lines,
        event_types_allow=st.none() | lines,
        event_types_block=st.just([]) | lines,
        attributes_allow=st.none() | lines,
        attributes_block=st.just([]) | lines,
        enrich_ip=st.booleans(),
        consent_purpose=st.none() | words,
        audience_events=st.booleans(),
        enabled=st.booleans(),
    )
)
def test_an_event_connection_comes_back_through_its_form(connection: EventConnection) -> None:
    doc = event_connection_document(posted_fields(form_values(connection)))
    assert msgspec.convert(doc, EventConnection) == connection


identity_types = st.lists(st.sampled_from(["email", "customer_id", "mobile_number"]), min_size=1)


@given(
    st.builds(
        AudienceConnection,
        name=names,
        audience_id=st.integers(1, 2**62),
        output=names,
        identity_types=identity_types,
        shared_attributes=st.just([]) | lines,
        enabled=st.booleans(),
        variation=st.none() | words,
    )
)
def test_an_audience_connection_comes_back_through_its_form(
    connection: AudienceConnection,
) -> None:
    doc = audience_connection_document(posted_fields(form_values(connection)))
    assert msgspec.convert(doc, AudienceConnection) == connection


def test_identity_types_may_be_given_on_one_line() -> None:
    posted = {
        "name": ["c"],
        "audience_id": ["3"],
        "output": ["o"],
        "identity_types": ["email, customer_id\nother"],
    }
    doc = audience_connection_document(posted)
    assert doc["identity_types"] == ["email", "customer_id", "other"]
    assert doc["enabled"] is False  # a checkbox not sent is off


def test_a_number_that_is_none_is_left_for_the_check_to_refuse() -> None:
    doc = output_document("webhook", {"name": ["o"], "url": ["http://x"], "batch_size": ["ten"]})
    assert doc["batch_size"] == "ten"
    assert math.isclose(
        float(str(output_document("webhook", {"timeout_s": ["2.5"]})["timeout_s"])), 2.5
    )


def test_a_config_refusal_names_its_field() -> None:
    assert config_error_field("outputs['hook'].url: must start with http://") == "url"
    assert config_error_field("output: Expected `int`, got `str` - at `$.batch_size`") == (
        "batch_size"
    )
    assert config_error_field("event_connections['c'].input: no input named 'x'") == "input"
    assert config_error_field("output 'hook' is used by a connection") == ""


def test_the_event_checks_paths_name_the_event_fields() -> None:
    assert field_of("criteria.where[0].value", (ConditionRow(key="a"),)) == "where-0-value"
    assert field_of("criteria.name") == "event_name"
    assert field_of("criteria.action") == "action"
