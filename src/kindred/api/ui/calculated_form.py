"""The calculated attribute form (CA-1 in the web UI): its fields, the definition document
they make (docs/calculated-attributes.md), the fields a saved draft fills in, and the field
a refusal's path names. Pure: no services, no HTTP.

A condition is a row of four fields (of, key, op, value) and a fifth, `value_to`, the
upper end of `between` and `between_dates`. Values are typed as the operator reads them:
numbers for the number operators (text that is no number is passed on as written, for the
definition's check to refuse at its path), none for presence and booleans, text else.
An allow-everything window (lifetime) is left out of the document, its default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kindred.attributes.reference import from_reference, is_reference
from kindred.audiences.operands import BOOL_OPS, NUMBER_OPS, PRESENCE_OPS, STRING_OPS
from kindred.audiences.parse import EVENT_TYPES, PRODUCT_ACTIONS
from kindred.domain.calculated import CALCULATION_TYPES

__all__ = [
    "CALCULATION_CHOICES",
    "CONDITION_OPS",
    "CalculatedForm",
    "ConditionRow",
    "definition_of",
    "describe",
    "field_of",
    "form_of",
    "parsed_form",
]

CALCULATION_CHOICES = tuple(sorted(CALCULATION_TYPES))
EVENT_CHOICES = tuple(sorted(EVENT_TYPES))
ACTION_CHOICES = tuple(sorted(PRODUCT_ACTIONS))
_DATE_OPS = ("before", "after", "on", "between_dates")
# An event condition's operators, in the order the form offers them.
CONDITION_OPS = (
    *sorted(STRING_OPS),
    *sorted(NUMBER_OPS),
    *sorted(PRESENCE_OPS),
    *sorted(BOOL_OPS),
    *_DATE_OPS,
)
_PAIRS = frozenset({"between", "between_dates"})
_INTEGER = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class ConditionRow:
    of: str = "attribute"  # or "product"
    key: str = ""
    op: str = "equals"
    value: str = ""
    value_to: str = ""

    @property
    def blank(self) -> bool:
        return not self.key.strip() and not self.value.strip() and not self.value_to.strip()


@dataclass(frozen=True)
class CalculatedForm:
    name: str = ""
    workspace_id: str = ""
    description: str = ""
    calculation_type: str = "count"
    event_type: str = "custom_event"
    event_name: str = ""
    action: str = ""
    attribute: str = ""
    window: str = "lifetime"  # "within" or "since"
    window_count: str = ""
    window_unit: str = "days"  # or "weeks"
    since_date: str = ""
    conditions: tuple[ConditionRow, ...] = field(default_factory=tuple)

    def with_blank_rows(self, count: int = 1) -> CalculatedForm:
        """The form with `count` empty condition rows after its own (to fill in)."""
        return replace(self, conditions=(*self.conditions, *[ConditionRow()] * count))


def parsed_form(posted: Mapping[str, Sequence[str]]) -> CalculatedForm:
    """The form as posted (fields named as the template names them: `where-N-of` ...)."""

    def one(key: str, default: str = "") -> str:
        values = posted.get(key)
        return values[0] if values else default

    rows = []
    for n in sorted({int(m[1]) for k in posted if (m := re.fullmatch(r"where-(\d{1,3})-\w+", k))}):
        rows.append(
            ConditionRow(
                of=one(f"where-{n}-of", "attribute"),
                key=one(f"where-{n}-key"),
                op=one(f"where-{n}-op", "equals"),
                value=one(f"where-{n}-value"),
                value_to=one(f"where-{n}-value_to"),
            )
        )
    return CalculatedForm(
        name=one("name").strip(),
        workspace_id=one("workspace_id").strip(),
        description=one("description"),
        calculation_type=one("calculation_type", "count"),
        event_type=one("event_type", "custom_event"),
        event_name=one("event_name"),
        action=one("action"),
        attribute=one("attribute"),
        window=one("window", "lifetime"),
        window_count=one("window_count").strip(),
        window_unit=one("window_unit", "days"),
        since_date=one("since_date").strip(),
        conditions=tuple(r for r in rows if not r.blank),
    )


def definition_of(form: CalculatedForm) -> dict[str, object]:
    """The definition document the form says (checked when saved, not here)."""
    event: dict[str, object] = {"event": form.event_type}
    if form.event_name.strip():
        event["name"] = form.event_name.strip()
    if form.action.strip():
        event["action"] = form.action.strip()
    where = [_condition(row) for row in form.conditions if not row.blank]
    if where:
        event["where"] = where
    doc: dict[str, object] = {"calculation_type": form.calculation_type, "event": event}
    if form.attribute.strip():
        doc["attribute"] = form.attribute.strip()
    window = _window(form)
    if window is not None:
        doc["window"] = window
    return doc


def _condition(row: ConditionRow) -> dict[str, object]:
    found: dict[str, object] = {
        "product" if row.of == "product" else "attribute": row.key.strip(),
        "op": row.op,
    }
    if row.op in PRESENCE_OPS or row.op in BOOL_OPS:
        return found
    if row.op in _PAIRS:
        read = _number if row.op == "between" else str.strip
        found["value"] = [read(row.value), read(row.value_to)]
    elif row.op in NUMBER_OPS:
        found["value"] = _number(row.value)
    else:
        found["value"] = row.value.strip()
    return found


def _number(text: str) -> int | float | str:
    """A number as written; text that is none is left as it is (the check refuses it)."""
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) and "_" not in text else text


def _window(form: CalculatedForm) -> dict[str, object] | None:
    if form.window == "within":
        count = form.window_count
        unit = "weeks" if form.window_unit == "weeks" else "days"
        return {"type": "within", unit: int(count) if _INTEGER.fullmatch(count) else count}
    if form.window == "since":
        return {"type": "since", "date": form.since_date}
    if form.window == "lifetime":
        return None
    return {"type": form.window}


def form_of(
    name: str, workspace_id: int, description: str, doc: Mapping[str, Any] | None
) -> CalculatedForm:
    """The form filled in from a saved definition (its draft): Kindred's shape, or the
    reference's read into it. What the form cannot hold is left out."""
    base = CalculatedForm(name=name, workspace_id=str(workspace_id), description=description)
    if doc is None:
        return base
    if is_reference(doc):
        doc = from_reference(dict(doc))
    event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    assert isinstance(event, dict)
    window = doc.get("window") if isinstance(doc.get("window"), dict) else {}
    assert isinstance(window, dict)
    return replace(
        base,
        calculation_type=_text(doc.get("calculation_type"), "count"),
        event_type=_text(event.get("event"), "custom_event"),
        event_name=_text(event.get("name")),
        action=_text(event.get("action")),
        attribute=_text(doc.get("attribute")),
        window=_text(window.get("type"), "lifetime"),
        window_count=_text(window.get("days", window.get("weeks"))),
        window_unit="weeks" if "weeks" in window else "days",
        since_date=_text(window.get("date")),
        conditions=tuple(_row(c) for c in event.get("where") or [] if isinstance(c, dict)),
    )


def _row(condition: Mapping[str, Any]) -> ConditionRow:
    of = "product" if "product" in condition else "attribute"
    value = condition.get("value")
    low, high = value if isinstance(value, list) and len(value) == 2 else (value, None)
    return ConditionRow(
        of=of,
        key=_text(condition.get(of)),
        op=_text(condition.get("op"), "equals"),
        value=_text(low),
        value_to=_text(high),
    )


def _text(value: object, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- refusals at their field ------------------------------------------------------------

_FIELDS = {
    "name": "name",
    "workspace_id": "workspace_id",
    "description": "description",
    "draft": "calculation_type",
    "definition": "calculation_type",
    "definition.calculation_type": "calculation_type",
    "definition.event": "event_type",
    "definition.event.event": "event_type",
    "definition.event.name": "event_name",
    "definition.event.action": "action",
    "definition.event.where": "event_type",
    "definition.attribute": "attribute",
    "definition.window": "window",
    "definition.window.type": "window",
    "definition.window.days": "window_count",
    "definition.window.weeks": "window_count",
    "definition.window.date": "since_date",
}
_WHERE = re.compile(r"definition\.event\.where\[(\d+)\](?:\.(\w+))?(?:\[(\d)\])?")


def field_of(path: str, conditions: Sequence[ConditionRow] = ()) -> str:
    """The form field a refusal's path names (`definition.event.where[1].value` is the
    second condition's value); the first field of the form for a path it has no field of.
    The event's own check names its paths from `criteria` (the audience language's)."""
    if path == "criteria" or path.startswith(("criteria.", "criteria[")):
        path = "definition.event" + path.removeprefix("criteria")
    if path in _FIELDS:
        return _FIELDS[path]
    found = _WHERE.fullmatch(path)
    if found is None:
        return "calculation_type"
    index, part, item = int(found[1]), found[2] or "", found[3]
    if part == "value":
        part = "value_to" if item == "1" else "value"
    elif part not in ("op",):
        part = "key"
    # The document's conditions are the form's rows without its blank ones.
    filled = [n for n, row in enumerate(conditions) if not row.blank]
    row = filled[index] if index < len(filled) else index
    return f"where-{row}-{part}"


# --- a sentence for the list ---------------------------------------------------------


def describe(doc: Mapping[str, Any] | None) -> str:
    """The definition in a few words: `count of custom_event "Play", within 7 days`."""
    if doc is None:
        return "—"
    form = form_of("", 0, "", doc)
    what = form.calculation_type.replace("_", " ")
    if form.attribute:
        what += f" of {form.attribute}"
    events = form.event_type + (f' "{form.event_name}"' if form.event_name else "")
    if form.action:
        events += f" ({form.action})"
    conditions = [
        f"{row.of if row.of == 'product' else ''} {row.key} {row.op.replace('_', ' ')}"
        + (f" {row.value}" if row.value else "")
        + (f" and {row.value_to}" if row.value_to else "")
        for row in form.conditions
    ]
    where = f" where {'; '.join(c.strip() for c in conditions)}" if conditions else ""
    window = {
        "within": f"in the last {form.window_count} {form.window_unit}",
        "since": f"since {form.since_date}",
    }.get(form.window, "over the lifetime")
    return f"{what}, {events}{where}, {window}"
