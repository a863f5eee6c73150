"""The audience builder's form (UI-1, AUD-1): a definition as flat form fields and back,
so that an audience is built through labelled fields, never JSON.

The criteria tree is written with one prefix per node: `c` is the root, `c.0`, `c.1` its
children, `c.0.2` a grandchild. `PREFIX.type` says what the node is: a group (`and`, `or`,
`exclude` with one child `PREFIX.0`) or a criterion (`attribute`, `event`, ...), whose
settings are `PREFIX.key`, `PREFIX.op`, `PREFIX.value` ... (FIELDS). An event's
conditions are `PREFIX.w.N.kind|key|op|value|value_to|value_kind`.

`definition_of` reads the fields into the document the admin API takes; `fields_of` writes
a document as fields. A definition the admin API accepts goes through both unchanged
(tests/unit/test_builder_form.py), except what a form cannot tell apart: a workspace listed
twice or out of order, an explicit `"value": null`, an empty `where` list, an empty
external name, a tag with a comma or surrounding spaces. `field_of` maps the path of a
refusal (`criteria.and[1].at_least`) to the field that shows it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kindred.audiences.operands import BOOL_OPS, NUMBER_OPS, PRESENCE_OPS

__all__ = [
    "CRITERION_TYPES",
    "GROUP_TYPES",
    "FieldError",
    "Fields",
    "FormNode",
    "apply_step",
    "children_of",
    "conditions_of",
    "definition_of",
    "field_of",
    "fields_of",
    "form_tree",
]

Fields = dict[str, str]
ROOT = "c"
GROUP_TYPES = ("and", "or", "exclude")
# Each criterion type, in the order the builder offers them, with the word it shows.
CRITERION_TYPES = (
    ("attribute", "User attribute or list"),
    ("calculated", "Calculated attribute"),
    ("account_attribute", "Account attribute"),
    ("event", "Events (with conditions, recency and frequency; commerce)"),
    ("cart_abandonment", "Cart abandonment"),
    ("consent", "Consent"),
    ("device", "Device"),
    ("first_seen", "First seen"),
    ("location", "Location field"),
    ("location_within", "Location within a distance"),
    ("identity", "Identity"),
    ("attribution", "Install attribution"),
    ("audience", "Member of another audience"),
)
# The criteria whose definition is `{TYPE: KEY, "op": OP, "value": V}` (a calculated
# attribute is an attribute of its name); those that may name one workspace.
_KEYED = {
    "attribute": "attribute",
    "calculated": "attribute",
    "account_attribute": "account_attribute",
    "identity": "identity",
    "device": "device",
    "attribution": "attribution",
    "location": "location",
}
_WORKSPACED = frozenset(
    {
        "attribute",
        "calculated",
        "identity",
        "device",
        "consent",
        "first_seen",
        "attribution",
        "location",
        "location_within",
    }
)
_COUNTS = ("at_least", "at_most", "exactly")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
# A refusal's key (after the node's path) -> the field showing it.
_FIELD_OF_KEY = {
    "attribute": "key",
    "account_attribute": "key",
    "identity": "key",
    "device": "key",
    "attribution": "key",
    "location": "key",
    "product": "key",
    "first_seen": "op",
    "event": "event_type",
    "consent": "regulation",
    "at_least": "count",
    "at_most": "count",
    "exactly": "count",
    "within_days": "within_days",
    "wait_minutes": "wait_minutes",
    "latitude": "latitude",
    "longitude": "longitude",
    "km": "km",
}


class FieldError(Exception):
    """A field whose text cannot be what its criterion needs (before the server's checks
    of the definition): the field's name and why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


# --- fields -> definition --------------------------------------------------------------


def definition_of(fields: Mapping[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """The definition the fields describe (without workspaces' and inputs' checks, which
    the audience's save makes) and, for each criterion path, the prefix of its fields."""
    paths: dict[str, str] = {}
    document: dict[str, object] = {
        "name": fields.get("name", ""),
        "workspaces": [_int(v, "workspaces") for v in _listed(fields, "workspaces")],
        "inputs": list(_listed(fields, "inputs")),
        "tags": [t.strip() for t in fields.get("tags", "").split(",") if t.strip()],
        "lookback_days": _int(fields.get("lookback_days", "90"), "lookback_days"),
        "access": fields.get("access", "usable"),
        "criteria": _node(fields, ROOT, "criteria", paths),
    }
    external = fields.get("external_name", "")
    if external:
        document["external_name"] = external
    return document, paths


def _listed(fields: Mapping[str, str], name: str) -> list[str]:
    """A multi-valued field (checkboxes), kept as `NAME` joined by newlines."""
    return [v for v in fields.get(name, "").split("\n") if v]


def children_of(fields: Mapping[str, str], prefix: str) -> list[str]:
    """The prefixes of a group's children, in order (their numbers need not follow on)."""
    pattern = re.compile(re.escape(prefix) + r"\.([0-9]+)\.type$")
    found = sorted(int(m[1]) for name in fields if (m := pattern.match(name)))
    return [f"{prefix}.{n}" for n in found]


def conditions_of(fields: Mapping[str, str], prefix: str) -> list[str]:
    """The prefixes of an event criterion's conditions, in order."""
    return children_of(fields, f"{prefix}.w")


def _node(
    fields: Mapping[str, str], prefix: str, path: str, paths: dict[str, str]
) -> dict[str, object]:
    paths[path] = prefix
    kind = fields.get(f"{prefix}.type", "")
    if kind in ("and", "or"):
        items = children_of(fields, prefix)
        return {
            kind: [
                _node(fields, child, f"{path}.{kind}[{n}]", paths) for n, child in enumerate(items)
            ]
        }
    if kind == "exclude":
        items = children_of(fields, prefix)
        if not items:
            raise FieldError(f"{prefix}.type", "an exclusion holds one criterion")
        return {"exclude": _node(fields, items[0], f"{path}.exclude", paths)}
    return _criterion(fields, prefix, kind)


def _criterion(fields: Mapping[str, str], prefix: str, kind: str) -> dict[str, object]:
    def get(name: str) -> str:
        return fields.get(f"{prefix}.{name}", "")

    found: dict[str, object]
    if kind in _KEYED:
        found = {_KEYED[kind]: get("key"), **_condition(fields, prefix)}
    elif kind == "consent":
        found = {"consent": get("regulation")}
        if get("regulation") != "ccpa":
            found["purpose"] = get("purpose")
        found["state"] = get("state")
    elif kind == "first_seen":
        test = _condition(fields, prefix)
        found = {"first_seen": test["op"], **({"value": test["value"]} if "value" in test else {})}
    elif kind == "location_within":
        found = {
            "location_within": {
                k: _number(get(k), f"{prefix}.{k}") for k in ("latitude", "longitude", "km")
            }
        }
    elif kind == "audience":
        found = {
            "audience": _int(get("audience"), f"{prefix}.audience"),
            "member": get("member") != "false",
        }
    elif kind == "event":
        found = _event(fields, prefix)
    elif kind == "cart_abandonment":
        found = {
            "cart_abandonment": {
                "within_days": _int(get("within_days"), f"{prefix}.within_days"),
                "wait_minutes": _int(get("wait_minutes"), f"{prefix}.wait_minutes"),
            }
        }
    else:
        raise FieldError(f"{prefix}.type", "choose what this criterion tests")
    if kind in _WORKSPACED and get("workspace"):
        found["workspace"] = _int(get("workspace"), f"{prefix}.workspace")
    return found


def _event(fields: Mapping[str, str], prefix: str) -> dict[str, object]:
    def get(name: str) -> str:
        return fields.get(f"{prefix}.{name}", "")

    found: dict[str, object] = {"event": get("event_type")}
    for name in ("name", "action"):
        if get(name):
            found[name] = get(name)
    if get("within_days"):
        found["within_days"] = _int(get("within_days"), f"{prefix}.within_days")
    if get("count_op") in _COUNTS:
        found[get("count_op")] = _int(get("count"), f"{prefix}.count")
    where = []
    for at in conditions_of(fields, prefix):
        of = "product" if fields.get(f"{at}.type") == "product" else "attribute"
        where.append({of: fields.get(f"{at}.key", ""), **_condition(fields, at)})
    if where:
        found["where"] = where
    return found


def _condition(fields: Mapping[str, str], prefix: str) -> dict[str, object]:
    """`{"op": OP, "value": V}` with V typed as the operator takes it."""
    op = fields.get(f"{prefix}.op", "")
    text = fields.get(f"{prefix}.value", "")
    upper = fields.get(f"{prefix}.value_to", "")
    at, at_to = f"{prefix}.value", f"{prefix}.value_to"
    value: object
    if op in PRESENCE_OPS or op in BOOL_OPS:
        return {"op": op}
    if op == "equals":
        value = _typed(text, fields.get(f"{prefix}.value_kind", "text"), at)
    elif op == "between":
        value = [_number(text, at), _number(upper, at_to)]
    elif op == "between_dates":
        value = [text, upper]
    elif op in ("within_last_days", "not_within_last_days"):
        value = _int(text, at)
    elif op in NUMBER_OPS:
        value = _number(text, at)
    else:
        value = text
    return {"op": op, "value": value}


def _typed(text: str, kind: str, name: str) -> object:
    if kind == "number":
        return _number(text, name)
    if kind == "boolean":
        if text not in ("true", "false"):
            raise FieldError(name, "true or false")
        return text == "true"
    return text


def _int(text: str, name: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise FieldError(name, f"{text!r} is not a whole number")
    return int(text.strip())


def _number(text: str, name: str) -> int | float:
    """A whole number stays an int (`5`), any other a float (`5.0`, `2.5`)."""
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        raise FieldError(name, f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise FieldError(name, f"{text!r} is not a number")
    return number


# --- definition -> fields --------------------------------------------------------------


def fields_of(definition: Mapping[str, object], calculated: Iterable[str] = ()) -> Fields:
    """The fields showing a definition (criteria on `attribute` keys named in `calculated`
    are shown as calculated attributes)."""
    fields: Fields = {
        "name": str(definition.get("name", "")),
        "external_name": str(definition.get("external_name") or ""),
        "workspaces": "\n".join(str(w) for w in _list(definition.get("workspaces"))),
        "inputs": "\n".join(str(i) for i in _list(definition.get("inputs"))),
        "tags": ", ".join(str(t) for t in _list(definition.get("tags"))),
        "lookback_days": str(definition.get("lookback_days", 90)),
        "access": str(definition.get("access", "usable")),
    }
    criteria = definition.get("criteria")
    _write_node(criteria if isinstance(criteria, dict) else {}, ROOT, fields, frozenset(calculated))
    return fields


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _write_node(
    doc: Mapping[str, object], prefix: str, fields: Fields, calc: frozenset[str]
) -> None:
    for kind in ("and", "or"):
        if kind in doc:
            fields[f"{prefix}.type"] = kind
            for n, item in enumerate(_list(doc[kind])):
                _write_node(item if isinstance(item, dict) else {}, f"{prefix}.{n}", fields, calc)
            return
    if "exclude" in doc:
        fields[f"{prefix}.type"] = "exclude"
        inner = doc["exclude"]
        _write_node(inner if isinstance(inner, dict) else {}, f"{prefix}.0", fields, calc)
        return
    _write_criterion(doc, prefix, fields, calc)


def _write_criterion(
    doc: Mapping[str, object], prefix: str, fields: Fields, calc: frozenset[str]
) -> None:
    def put(name: str, value: object) -> None:
        fields[f"{prefix}.{name}"] = _text(value)

    kind = next((k for k in _TYPE_KEYS if k in doc), "")
    if kind == "attribute" and doc["attribute"] in calc:
        put("type", "calculated")
    else:
        put("type", kind)
    if kind in _KEYED:
        put("key", doc[kind])
        _write_condition(doc, prefix, fields)
    elif kind == "consent":
        put("regulation", doc["consent"])
        put("purpose", doc.get("purpose", ""))
        put("state", doc.get("state", "consented"))
    elif kind == "first_seen":
        _write_condition({"op": doc["first_seen"], **_value_of(doc)}, prefix, fields)
    elif kind == "location_within":
        point = doc["location_within"]
        for key in ("latitude", "longitude", "km"):
            put(key, point.get(key, "") if isinstance(point, dict) else "")
    elif kind == "audience":
        put("audience", doc["audience"])
        put("member", "false" if doc.get("member") is False else "true")
    elif kind == "event":
        _write_event(doc, prefix, fields)
    elif kind == "cart_abandonment":
        settings = doc["cart_abandonment"]
        for key in ("within_days", "wait_minutes"):
            put(key, settings.get(key, "") if isinstance(settings, dict) else "")
    if "workspace" in doc:
        put("workspace", doc["workspace"])


_TYPE_KEYS = (
    "attribute",
    "account_attribute",
    "identity",
    "device",
    "consent",
    "first_seen",
    "audience",
    "attribution",
    "event",
    "cart_abandonment",
    "location",
    "location_within",
)


def _value_of(doc: Mapping[str, object]) -> dict[str, object]:
    return {"value": doc["value"]} if "value" in doc else {}


def _write_event(doc: Mapping[str, object], prefix: str, fields: Fields) -> None:
    fields[f"{prefix}.event_type"] = _text(doc["event"])
    for name in ("name", "action", "within_days"):
        if name in doc:
            fields[f"{prefix}.{name}"] = _text(doc[name])
    count = next((k for k in _COUNTS if k in doc), "")
    fields[f"{prefix}.count_op"] = count
    if count:
        fields[f"{prefix}.count"] = _text(doc[count])
    for n, item in enumerate(_list(doc.get("where"))):
        at = f"{prefix}.w.{n}"
        condition = item if isinstance(item, dict) else {}
        of = "product" if "product" in condition else "attribute"
        fields[f"{at}.type"] = of
        fields[f"{at}.key"] = _text(condition.get(of, ""))
        _write_condition(condition, at, fields)


def _write_condition(doc: Mapping[str, object], prefix: str, fields: Fields) -> None:
    fields[f"{prefix}.op"] = _text(doc.get("op", ""))
    if "value" not in doc:
        return
    value = doc["value"]
    if isinstance(value, list) and len(value) == 2:
        fields[f"{prefix}.value"] = _text(value[0])
        fields[f"{prefix}.value_to"] = _text(value[1])
        return
    fields[f"{prefix}.value"] = _text(value)
    if isinstance(value, bool):
        fields[f"{prefix}.value_kind"] = "boolean"
    elif isinstance(value, int | float):
        fields[f"{prefix}.value_kind"] = "number"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else str(value)


# --- structural steps --------------------------------------------------------------------


def apply_step(form: Fields, step: str) -> None:
    """A structural step of the form (no save): `add:PREFIX:TYPE` adds a child to a group,
    `cond:PREFIX` a condition to an event, `remove:PREFIX` takes a node and its fields
    away, `wrap:PREFIX` makes a criterion the first of an `and` group with a second one;
    anything else only redraws (a node's type changed without the page's script)."""
    verb, _, rest = step.partition(":")
    if verb == "add":
        prefix, _, kind = rest.rpartition(":")
        taken = [int(c.rsplit(".", 1)[1]) for c in children_of(form, prefix)]
        form[f"{prefix}.{max(taken, default=-1) + 1}.type"] = kind or "attribute"
    elif verb == "cond":
        taken = [int(c.rsplit(".", 1)[1]) for c in conditions_of(form, rest)]
        form[f"{rest}.w.{max(taken, default=-1) + 1}.type"] = "attribute"
    elif verb == "wrap" and rest:
        moved = {n: v for n, v in form.items() if n.startswith(rest + ".")}
        for name, value in moved.items():
            del form[name]
            form[f"{rest}.0.{name[len(rest) + 1 :]}"] = value
        form[f"{rest}.type"] = "and"
        form[f"{rest}.1.type"] = "attribute"
    elif verb == "remove" and rest:
        for name in [n for n in form if n.startswith(rest + ".")]:
            del form[name]


# --- refusals at their field ------------------------------------------------------------


_TOP_FIELDS = ("name", "external_name", "workspaces", "inputs", "tags", "lookback_days", "access")


def field_of(path: str, paths: Mapping[str, str]) -> str:
    """The field showing a refusal at `path` (InvalidBatch.path): a top-level field, or a
    criterion's field found through `paths` (definition_of's); "" when none does."""
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    if head in _TOP_FIELDS:
        return head
    node = max(
        (p for p in paths if path == p or path.startswith((p + ".", p + "["))), key=len, default=""
    )
    if not node:
        return ""
    prefix, rest = paths[node], path[len(node) :].lstrip(".")
    where = re.match(r"where\[([0-9]+)\]\.?(.*)", rest)
    if where:
        prefix, rest = f"{prefix}.w.{where[1]}", where[2]
    key = re.split(r"[.\[]", rest, maxsplit=1)[0] if rest else ""
    if rest.endswith("[1]") and key == "value":
        return f"{prefix}.value_to"
    if key in ("cart_abandonment", "location_within"):
        inner = rest.split(".")[-1]
        key = inner if inner != key else ""
    name = _FIELD_OF_KEY.get(key, key)
    return f"{prefix}.{name}" if name else f"{prefix}.type"


# --- the tree the template draws --------------------------------------------------------


@dataclass
class FormNode:
    """One node of the criteria tree as the template draws it."""

    prefix: str
    kind: str
    depth: int
    children: list[FormNode] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)  # an event's condition prefixes

    @property
    def group(self) -> bool:
        return self.kind in GROUP_TYPES


def form_tree(fields: Mapping[str, str], prefix: str = ROOT, depth: int = 0) -> FormNode:
    kind = fields.get(f"{prefix}.type", "")
    node = FormNode(prefix, kind, depth)
    if kind in GROUP_TYPES:
        node.children = [form_tree(fields, c, depth + 1) for c in children_of(fields, prefix)]
    elif kind == "event":
        node.conditions = conditions_of(fields, prefix)
    return node
