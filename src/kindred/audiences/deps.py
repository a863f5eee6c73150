"""What a criteria tree depends on, so that a batch re-evaluates only the audiences whose
fields it changed (AUD-5), and which event histories a profile must keep."""

from __future__ import annotations

from collections.abc import Iterable

from kindred.audiences.ast import (
    AccountAttributeCriterion,
    All,
    AnyOf,
    AttributeCriterion,
    AttributionCriterion,
    CartAbandonment,
    ConsentCriterion,
    Const,
    DeviceCriterion,
    EventCriterion,
    Exclude,
    FirstSeenCriterion,
    IdentityCriterion,
    LocationCriterion,
    MembershipCriterion,
    Node,
    WithinDistance,
)
from kindred.audiences.evaluate import cart_histories, event_key
from kindred.domain.changes import Change

__all__ = ["EVERYTHING", "dependencies", "event_criteria", "touched_by"]

EVERYTHING = "*"


def dependencies(node: Node) -> frozenset[str]:
    """Field names: `attr:KEY`, `account_attr:KEY`, `identity`, `device`, `consent`, `first_seen`,
    `attribution`, `location`, `event:KEY`, `audience:ID`."""
    if isinstance(node, All | AnyOf):
        return frozenset().union(*(dependencies(item) for item in node.items))
    if isinstance(node, Exclude):
        return dependencies(node.item)
    return _leaf(node)


def _leaf(node: Node) -> frozenset[str]:
    if isinstance(node, AttributeCriterion | AccountAttributeCriterion):
        prefix = "attr" if isinstance(node, AttributeCriterion) else "account_attr"
        return frozenset({f"{prefix}:{node.key}"})
    if isinstance(node, EventCriterion):
        return frozenset({f"event:{event_key(node.event_type, node.name)}"})
    if isinstance(node, CartAbandonment):
        return frozenset({"event:commerce_event"})
    if isinstance(node, MembershipCriterion):
        return frozenset({f"audience:{node.audience_id}"})
    if isinstance(node, Const):
        return frozenset()
    names = {
        IdentityCriterion: "identity",
        DeviceCriterion: "device",
        ConsentCriterion: "consent",
        FirstSeenCriterion: "first_seen",
        AttributionCriterion: "attribution",
        LocationCriterion: "location",
        WithinDistance: "location",
    }
    return frozenset({names[type(node)]})


def event_criteria(node: Node) -> tuple[EventCriterion, ...]:
    """The event histories the tree reads, as the criteria that define them."""
    if isinstance(node, All | AnyOf):
        return tuple(c for item in node.items for c in event_criteria(item))
    if isinstance(node, Exclude):
        return event_criteria(node.item)
    if isinstance(node, EventCriterion):
        return (node,)
    if isinstance(node, CartAbandonment):
        return cart_histories(node)
    return ()


_KINDS = {
    "identity_added": "identity",
    "identity_changed": "identity",
    "device_added": "device",
    "consent_changed": "consent",
    "attribution_changed": "attribution",
    "location_changed": "location",
}


def touched_by(changes: Iterable[Change], events: Iterable[str], *, device_seen: bool) -> set[str]:
    """The fields a batch changed: from its profile changes, the event keys it carried, and
    whether it described a device (its info may have changed without a new device)."""
    touched: set[str] = {f"event:{key}" for key in events}
    if device_seen:
        touched.add("device")
    for change in changes:
        if change.kind in ("profile_created", "workspace_added"):
            # Every criterion of the workspace's audiences reads something new.
            touched.add(EVERYTHING)
        elif change.kind in ("attribute_set", "attribute_deleted", "attribute_expired"):
            touched.add(f"attr:{change.key}")
        elif change.kind in ("account_attribute_set", "account_attribute_deleted"):
            touched.add(f"account_attr:{change.key}")
        elif change.kind in _KINDS:
            touched.add(_KINDS[change.kind])
    return touched
