"""Criteria documents (JSON) -> checked trees, refusing anything invalid with the path of
the offending node (`criteria.and[2].value`). Runs when an audience is saved, never per
event.

    {"and": [C, ...]}   {"or": [C, ...]}   {"exclude": C}
    {"attribute": "tier", "op": "equals", "value": "gold"}
    {"identity": "email", "op": "exists"}
    {"device": "platform", "op": "equals", "value": "iOS"}
    {"consent": "gdpr", "purpose": "marketing", "state": "consented"}
    {"first_seen": "within_last_days", "value": 7}
    {"account_attribute": "plan", "op": "equals", "value": "pro"}
    {"audience": 12, "member": true}
    {"attribution": "campaign", "op": "contains", "value": "spring"}
    {"event": "custom_event", "name": "Play", "within_days": 7, "at_least": 3}

User-based criteria (attribute, identity, device, consent, first_seen, attribution,
location, location_within) take an optional `"workspace": ID`: read only that one of the
audience's workspaces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import get_args

from kindred.audiences.ast import (
    LOCATION_FIELDS,
    AccountAttributeCriterion,
    All,
    AnyOf,
    AttributeCriterion,
    AttributionCriterion,
    CartAbandonment,
    ConsentCriterion,
    DeviceCriterion,
    EventCondition,
    EventCriterion,
    Exclude,
    FirstSeenCriterion,
    IdentityCriterion,
    LocationCriterion,
    MembershipCriterion,
    Node,
    WithinDistance,
)
from kindred.audiences.operands import (
    BOOL_OPS,
    DATE_OPS,
    NUMBER_OPS,
    OPERATORS,
    PRESENCE_OPS,
    STRING_OPS,
    condition_of,
    count_value,
    days_value,
    number_value,
    only_keys,
    parse_date,
    text_value,
)
from kindred.domain.errors import InvalidBatch
from kindred.domain.identities import canonical_identity_type
from kindred.domain.observation import ProductActionName

__all__ = [
    "DEVICE_FIELDS",
    "EVENT_TYPES",
    "Catalog",
    "nested_audience_paths",
    "nested_audiences",
    "parse_criteria",
    "parse_date",
    "refuse_cycles",
    "refuse_nesting_when_nested",
]

# Events API `device_info` names.
DEVICE_FIELDS = frozenset(
    {
        "platform",
        "os_version",
        "device_model",
        "device_manufacturer",
        "brand",
        "network_carrier",
        "locale_country",
        "locale_language",
        "app_version",
    }
)
EVENT_TYPES = frozenset(
    {
        "custom_event",
        "commerce_event",
        "session_start",
        "session_end",
        "screen_view",
        "crash_report",
        "install",
        "uninstall",
        "upgrade",
        "attribution",
    }
)
_COUNT_KEYS = ("at_least", "at_most", "exactly")
_CONSENT_STATES = frozenset({"consented", "not_consented", "exists", "not_exists"})
MAX_DEPTH = 16


@dataclass(frozen=True)
class Catalog:
    """What criteria may refer to: other audiences (id -> the audiences each one nests);
    the workspaces a criterion may name (the audience's; None: any, unchecked).
    `saving`: the checks made only when an audience is saved, not when saved definitions
    are read back (only an audience that nests none may be nested)."""

    audiences: Mapping[int, frozenset[int]] = field(default_factory=dict)
    workspaces: frozenset[int] | None = None
    saving: bool = False


def _workspace(doc: dict[str, object], path: str, catalog: Catalog) -> int | None:
    """The workspace a user-based criterion reads, when it names one of the audience's."""
    if "workspace" not in doc:
        return None
    value, at = doc["workspace"], f"{path}.workspace"
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidBatch("workspace takes a workspace id", at)
    if catalog.workspaces is not None and value not in catalog.workspaces:
        known = ", ".join(map(str, sorted(catalog.workspaces)))
        raise InvalidBatch(f"workspace {value} is not one of the audience's ({known})", at)
    return value


def parse_criteria(doc: object, catalog: Catalog, audience_id: int | None = None) -> Node:
    """The checked tree; InvalidBatch naming the path of the first problem. `audience_id`:
    the audience being saved, so that nesting it in itself (directly or not) is refused."""
    node = _node(doc, "criteria", catalog, depth=0)
    if audience_id is not None:
        refuse_cycles(node, audience_id, catalog)
    return node


def _node(doc: object, path: str, catalog: Catalog, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise InvalidBatch(f"criteria nest deeper than {MAX_DEPTH} levels", path)
    if not isinstance(doc, dict) or not doc:
        raise InvalidBatch("a criterion must be a JSON object", path)
    for key, parse in _PARSERS.items():
        if key in doc:
            return parse(doc, path, catalog, depth)
    raise InvalidBatch(f"unknown criterion; one of {', '.join(_PARSERS)}", path)


def _combine(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    key = "and" if "and" in doc else "or"
    only_keys(doc, {key}, path)
    items = doc[key]
    if not isinstance(items, list) or not items:
        raise InvalidBatch(f"{key} takes a non-empty list of criteria", f"{path}.{key}")
    nodes = tuple(
        _node(item, f"{path}.{key}[{n}]", catalog, depth + 1) for n, item in enumerate(items)
    )
    return All(nodes) if key == "and" else AnyOf(nodes)


def _exclude(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    only_keys(doc, {"exclude"}, path)
    return Exclude(_node(doc["exclude"], f"{path}.exclude", catalog, depth + 1))


def _attribute(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"attribute", "op", "value", "workspace"}, path)
    key = text_value(doc["attribute"], f"{path}.attribute")
    test = condition_of(doc, path, OPERATORS)
    return AttributeCriterion(key, test, _workspace(doc, path, catalog))


def _account_attribute(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del catalog, depth
    only_keys(doc, {"account_attribute", "op", "value"}, path)
    key = text_value(doc["account_attribute"], f"{path}.account_attribute")
    return AccountAttributeCriterion(key, condition_of(doc, path, OPERATORS))


def _identity(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"identity", "op", "value", "workspace"}, path)
    name = text_value(doc["identity"], f"{path}.identity")
    canonical = canonical_identity_type(name)
    if canonical is None:
        raise InvalidBatch(f"unknown identity type {name!r}", f"{path}.identity")
    test = condition_of(doc, path, STRING_OPS | PRESENCE_OPS)
    return IdentityCriterion(canonical, test, _workspace(doc, path, catalog))


def _device(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"device", "op", "value", "workspace"}, path)
    name = text_value(doc["device"], f"{path}.device")
    if name not in DEVICE_FIELDS:
        raise InvalidBatch(
            f"unknown device field {name!r}; one of {', '.join(sorted(DEVICE_FIELDS))}",
            f"{path}.device",
        )
    test = condition_of(doc, path, STRING_OPS | PRESENCE_OPS | NUMBER_OPS)
    return DeviceCriterion(name, test, _workspace(doc, path, catalog))


def _consent(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"consent", "purpose", "state", "workspace"}, path)
    regime = doc["consent"]
    if regime not in ("gdpr", "ccpa"):
        raise InvalidBatch("consent is gdpr or ccpa", f"{path}.consent")
    purpose = doc.get("purpose")
    if regime == "gdpr":
        purpose = text_value(purpose, f"{path}.purpose").lower()
    elif purpose is not None:
        raise InvalidBatch("ccpa has no purposes", f"{path}.purpose")
    state = doc.get("state", "consented")
    if state not in _CONSENT_STATES:
        raise InvalidBatch(f"state is one of {', '.join(sorted(_CONSENT_STATES))}", f"{path}.state")
    workspace = _workspace(doc, path, catalog)
    return ConsentCriterion(regime, purpose, state, workspace)  # type: ignore[arg-type]  # checked above


def _first_seen(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"first_seen", "value", "workspace"}, path)
    op = doc["first_seen"]
    test = condition_of({"op": op, "value": doc.get("value")}, path, DATE_OPS)
    return FirstSeenCriterion(test, _workspace(doc, path, catalog))


def _audience(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"audience", "member"}, path)
    audience_id = doc["audience"]
    if not isinstance(audience_id, int) or isinstance(audience_id, bool):
        raise InvalidBatch("audience takes an audience id", f"{path}.audience")
    if audience_id not in catalog.audiences:
        raise InvalidBatch(f"no audience {audience_id}", f"{path}.audience")
    if catalog.saving and catalog.audiences[audience_id]:
        raise InvalidBatch(
            f"audience {audience_id} nests other audiences; only an audience that nests none"
            " may be nested",
            f"{path}.audience",
        )
    member = doc.get("member", True)
    if not isinstance(member, bool):
        raise InvalidBatch("member is true or false", f"{path}.member")
    return MembershipCriterion(audience_id, member)


def _attribution(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"attribution", "op", "value", "workspace"}, path)
    name = doc["attribution"]
    if name not in ("publisher", "campaign"):
        raise InvalidBatch("attribution is publisher or campaign", f"{path}.attribution")
    test = condition_of(doc, path, STRING_OPS | PRESENCE_OPS)
    return AttributionCriterion(name, test, _workspace(doc, path, catalog))


def _event(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del catalog, depth
    only_keys(doc, {"event", "name", "within_days", "action", "where", *_COUNT_KEYS}, path)
    event_type = doc["event"]
    if event_type not in EVENT_TYPES:
        raise InvalidBatch(
            f"unknown event type {event_type!r}; one of {', '.join(sorted(EVENT_TYPES))}",
            f"{path}.event",
        )
    name = doc.get("name")
    if name is not None:
        name = text_value(name, f"{path}.name")
    within = doc.get("within_days")
    if within is not None:
        within = days_value(within, f"{path}.within_days")
    given = [k for k in _COUNT_KEYS if k in doc]
    if len(given) > 1:
        raise InvalidBatch("give one of at_least, at_most, exactly", f"{path}.{given[1]}")
    count_op = given[0] if given else "at_least"
    count = count_value(doc[count_op], f"{path}.{count_op}", minimum=0) if given else 1
    action = _action(doc.get("action"), str(event_type), f"{path}.action")
    where = _where(doc.get("where", []), str(event_type), f"{path}.where")
    return EventCriterion(
        str(event_type),
        name,
        within,
        count_op,  # type: ignore[arg-type]  # one of _COUNT_KEYS
        count,
        action=action,
        where=where,
    )


PRODUCT_ACTIONS = frozenset(get_args(ProductActionName))
# Event conditions test what an event carries: no recency relative to now.
EVENT_CONDITION_OPS = (
    STRING_OPS | NUMBER_OPS | PRESENCE_OPS | BOOL_OPS | {"before", "after", "on", "between_dates"}
)


def _action(value: object, event_type: str, path: str) -> str | None:
    if value is None:
        return None
    if event_type != "commerce_event":
        raise InvalidBatch("only commerce events have a product action", path)
    action = text_value(value, path).lower()
    if action not in PRODUCT_ACTIONS:
        raise InvalidBatch(
            f"unknown product action; one of {', '.join(sorted(PRODUCT_ACTIONS))}", path
        )
    return action


def _where(value: object, event_type: str, path: str) -> tuple[EventCondition, ...]:
    if not isinstance(value, list):
        raise InvalidBatch("where takes a list of conditions", path)
    conditions = []
    for n, item in enumerate(value):
        at = f"{path}[{n}]"
        if not isinstance(item, dict):
            raise InvalidBatch("a condition is an object", at)
        of = "product" if "product" in item else "attribute"
        if of == "product" and event_type != "commerce_event":
            raise InvalidBatch("only commerce events have products", f"{at}.product")
        only_keys(item, {of, "op", "value"}, at)
        if of not in item:
            raise InvalidBatch("a condition names an attribute or a product field", at)
        key = text_value(item[of], f"{at}.{of}")
        conditions.append(EventCondition(of, key, condition_of(item, at, EVENT_CONDITION_OPS)))  # type: ignore[arg-type]  # checked above
    return tuple(conditions)


def _location(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    only_keys(doc, {"location", "op", "value", "workspace"}, path)
    name = doc["location"]
    if name not in LOCATION_FIELDS:
        known = ", ".join(LOCATION_FIELDS)
        raise InvalidBatch(f"unknown location field {name!r}; one of {known}", f"{path}.location")
    test = condition_of(doc, path, STRING_OPS | PRESENCE_OPS)
    return LocationCriterion(name, test, _workspace(doc, path, catalog))  # type: ignore[arg-type]  # checked above


def _settings(
    doc: dict[str, object], name: str, keys: tuple[str, ...], path: str, beside: frozenset[str]
) -> tuple[dict[str, object], str]:
    """A criterion written `{NAME: {KEY: ...}}` with every key required (and the keys
    `beside` allowed next to NAME): the inner object and its path."""
    only_keys(doc, {name, *beside}, path)
    inner, at = doc[name], f"{path}.{name}"
    if not isinstance(inner, dict):
        raise InvalidBatch(f"{name} takes {{{', '.join(keys)}}}", at)
    only_keys(inner, set(keys), at)
    for key in keys:
        if key not in inner:
            raise InvalidBatch(f"{key} is required", f"{at}.{key}")
    return inner, at


def _within(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del depth
    bounds = {"latitude": (-90.0, 90.0), "longitude": (-180.0, 180.0), "km": (0.0, 20_100.0)}
    point, at = _settings(doc, "location_within", tuple(bounds), path, frozenset({"workspace"}))
    found = {}
    for key, (low, high) in bounds.items():
        value = number_value(point[key], f"{at}.{key}")
        if not low <= value <= high:
            raise InvalidBatch(f"{key} is between {low:g} and {high:g}", f"{at}.{key}")
        found[key] = value
    workspace = _workspace(doc, path, catalog)
    return WithinDistance(found["latitude"], found["longitude"], found["km"], workspace)


def _cart(doc: dict[str, object], path: str, catalog: Catalog, depth: int) -> Node:
    del catalog, depth
    keys = ("within_days", "wait_minutes")
    settings, at = _settings(doc, "cart_abandonment", keys, path, frozenset())
    within = days_value(settings["within_days"], f"{at}.within_days")
    wait = count_value(settings["wait_minutes"], f"{at}.wait_minutes", minimum=0)
    if wait >= within * 24 * 60:
        raise InvalidBatch("the wait must be shorter than the window", f"{at}.wait_minutes")
    return CartAbandonment(within, wait)


_PARSERS: dict[str, Callable[[dict[str, object], str, Catalog, int], Node]] = {
    "and": _combine,
    "or": _combine,
    "exclude": _exclude,
    "attribute": _attribute,
    "account_attribute": _account_attribute,
    "identity": _identity,
    "device": _device,
    "consent": _consent,
    "first_seen": _first_seen,
    "audience": _audience,
    "attribution": _attribution,
    "event": _event,
    "cart_abandonment": _cart,
    "location": _location,
    "location_within": _within,
}


def refuse_cycles(node: Node, audience_id: int, catalog: Catalog) -> None:
    """No audience may nest itself, directly or through others (AUD-2)."""
    frontier = list(_nested(node))
    seen: set[int] = set()
    while frontier:
        current = frontier.pop()
        if current == audience_id:
            raise InvalidBatch(f"audience {audience_id} would nest itself", "criteria")
        if current not in seen:
            seen.add(current)
            frontier.extend(catalog.audiences.get(current, ()))


def refuse_nesting_when_nested(node: Node, audience_id: int, catalog: Catalog) -> None:
    """An audience another one nests may nest none itself (nested audiences are one level
    deep: see `Catalog.saving`)."""
    if not _nested(node):
        return
    outer = sorted(a for a, inner in catalog.audiences.items() if audience_id in inner)
    if outer:
        raise InvalidBatch(
            f"audience {audience_id} is nested in audience {outer[0]}, so it may nest no audience",
            "criteria",
        )


def _nested(node: Node) -> set[int]:
    if isinstance(node, MembershipCriterion):
        return {node.audience_id}
    if isinstance(node, All | AnyOf):
        return set().union(*(_nested(item) for item in node.items))
    if isinstance(node, Exclude):
        return _nested(node.item)
    return set()


def nested_audience_paths(doc: object, path: str = "criteria") -> list[tuple[str, int]]:
    """Each audience criteria nest, with the path of its id (`...audience`), from the
    criteria as saved (anything else in them is left to parse_criteria)."""
    if not isinstance(doc, dict):
        return []
    if "audience" in doc:
        found = doc["audience"]
        ok = isinstance(found, int) and not isinstance(found, bool)
        return [(f"{path}.audience", found)] if ok else []
    for key in ("and", "or"):
        items = doc.get(key)
        if isinstance(items, list):
            return [
                hit
                for n, item in enumerate(items)
                for hit in nested_audience_paths(item, f"{path}.{key}[{n}]")
            ]
    if "exclude" in doc:
        return nested_audience_paths(doc["exclude"], f"{path}.exclude")
    return []


def nested_audiences(node: Node) -> frozenset[int]:
    """Every audience this tree refers to."""
    return frozenset(_nested(node))
