"""A calculated attribute definition as saved (CA-1), and its parsed, checked form.

The document the admin API and CLI exchange:

    {"calculation_type": "sum",
     "event": {"event": "commerce_event", "action": "purchase", "where": [...]},
     "attribute": "Total Amount",
     "window": {"type": "within", "days": 30}}

`event` is an event criterion of the audience language (type, name, product action,
attribute and product conditions) without counts or recency; `window` is lifetime (the
default), `{"type": "within", "days": N}` (also `"weeks": N`) or
`{"type": "since", "date": "YYYY-MM-DD"}`. Problems are refused with their path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import msgspec

from kindred.attributes.reference import from_reference, is_reference
from kindred.audiences.ast import EventCriterion
from kindred.audiences.compile import EventFilter, compile_event_filter
from kindred.audiences.parse import Catalog, parse_criteria, parse_date
from kindred.domain.calculated import CALCULATION_TYPES, NEEDS_VALUE, CalcSpec, CalcState
from kindred.domain.errors import InvalidBatch
from kindred.domain.observation import EventFact, Scalar

__all__ = ["CalculatedDef", "CalculatedStatus", "Compiled", "compile_definition"]

CalculatedStatus = Literal["draft", "active", "deleted"]
_KEYS = {"calculation_type", "event", "attribute", "window"}
_EVENT_KEYS = {"event", "name", "action", "where"}
# Alternative spellings the reference uses.
_ALIASES = {"minimum": "min", "maximum": "max"}


class CalculatedDef(msgspec.Struct, kw_only=True):
    id: int = 0  # given by the store when first saved
    name: str
    workspace_id: int
    description: str = ""
    # The definition being edited, and the one computing (None until activated).
    draft: dict[str, object] | None = None
    active: dict[str, object] | None = None
    status: CalculatedStatus = "draft"
    created_ms: int = 0
    updated_ms: int = 0
    activated_ms: int | None = None
    # Computation over the stored event history after activation (kept by Kindred): the
    # next event log id to read (None when none is running), how many batches it read of
    # how many there were, when it finished.
    backfill_from: int | None = None
    backfill_done: int = 0
    backfill_total: int = 0
    backfill_finished_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A definition ready for events: which ones count and what they carry."""

    id: int
    name: str
    workspace_id: int
    spec: CalcSpec
    event: EventCriterion
    attribute: str | None
    digest: str
    # The event's action and conditions (`event`'s), compiled; None when it has none.
    test: EventFilter | None = None

    def matches(self, event: EventFact) -> bool:
        criterion = self.event
        if event.event_type != criterion.event_type:
            return False
        if criterion.name is not None and (event.name or "").lower() != criterion.name.lower():
            return False
        return self.passes(event)

    def passes(self, event: EventFact) -> bool:
        """Whether an event of the definition's type and name passes its action and
        conditions."""
        return self.test is None or self.test(event)

    def values(self, event: EventFact) -> list[Scalar]:
        """The attribute's values in the event: its own attribute, else the field of each
        of its products (first product first)."""
        if self.attribute is None:
            return []
        own = event.attributes.get(self.attribute)
        if own is not None:
            return [own] if isinstance(own, str | int | float | bool) else []
        found = (p.get(self.attribute) for p in event.products)
        return [v for v in found if isinstance(v, str | int | float | bool)]

    def empty_state(self) -> CalcState:
        return CalcState(spec=self.spec, digest=self.digest)


def compile_definition(def_id: int, name: str, workspace_id: int, doc: object) -> Compiled:
    """Parse and check a definition document (Kindred's shape or the reference's);
    InvalidBatch names the path of a problem."""
    if is_reference(doc):
        doc = from_reference(doc)  # type: ignore[arg-type]  # is_reference: a dict
    if not isinstance(doc, dict):
        raise InvalidBatch("a definition is an object", "definition")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise InvalidBatch(f"unknown field {unknown[0]!r}", f"definition.{unknown[0]}")
    kind = _kind(doc.get("calculation_type"))
    event = _event(doc.get("event"))
    attribute = doc.get("attribute")
    if attribute is not None and (not isinstance(attribute, str) or not attribute):
        raise InvalidBatch("attribute is the name of an event attribute", "definition.attribute")
    if kind in NEEDS_VALUE and attribute is None:
        raise InvalidBatch(f"{kind} needs the attribute it reads", "definition.attribute")
    spec = _window(kind, doc.get("window"))
    digest = hashlib.sha1(msgspec.json.encode(doc, order="sorted"), usedforsecurity=False)
    test = None if event.action is None and not event.where else compile_event_filter(event)
    return Compiled(
        def_id, name, workspace_id, spec, event, attribute, digest.hexdigest()[:16], test
    )


def _kind(value: object) -> str:
    kind = _ALIASES.get(value, value) if isinstance(value, str) else value
    if not isinstance(kind, str) or kind not in CALCULATION_TYPES:
        raise InvalidBatch(
            f"calculation_type is one of {', '.join(sorted(CALCULATION_TYPES))}",
            "definition.calculation_type",
        )
    return kind


def _event(value: object) -> EventCriterion:
    path = "definition.event"
    if not isinstance(value, dict):
        raise InvalidBatch("event is an object naming the events counted", path)
    unknown = sorted(set(value) - _EVENT_KEYS)
    if unknown:
        raise InvalidBatch(f"unknown field {unknown[0]!r}", f"{path}.{unknown[0]}")
    node = parse_criteria(value, Catalog())
    assert isinstance(node, EventCriterion)  # an `event` document parses to one
    return node


def _window(kind: str, value: object) -> CalcSpec:
    path = "definition.window"
    if value is None:
        return CalcSpec(kind=kind)  # type: ignore[arg-type]  # checked by _kind
    if not isinstance(value, dict):
        raise InvalidBatch("window is an object", path)
    window_type = value.get("type")
    if window_type == "lifetime" and set(value) == {"type"}:
        return CalcSpec(kind=kind)  # type: ignore[arg-type]  # checked by _kind
    if window_type == "since" and set(value) == {"type", "date"}:
        date = value["date"]
        if not isinstance(date, str):
            raise InvalidBatch("expected a date YYYY-MM-DD", f"{path}.date")
        return CalcSpec(kind=kind, since_ms=parse_date(date[:10], f"{path}.date"))  # type: ignore[arg-type]
    if window_type == "within" and len(value) == 2 and ({"days"} | {"weeks"}) & set(value):
        unit = "days" if "days" in value else "weeks"
        count = value[unit]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 3650:
            raise InvalidBatch("expected a whole number from 1 to 3650", f"{path}.{unit}")
        days = count * (7 if unit == "weeks" else 1)
        return CalcSpec(kind=kind, within_days=days)  # type: ignore[arg-type]
    raise InvalidBatch(
        'window is {"type": "lifetime"}, {"type": "within", "days": N} or '
        '{"type": "since", "date": "YYYY-MM-DD"}',
        path,
    )
