"""Evaluating a checked criteria tree for one profile at one instant (AUD-2 … AUD-4): which
values of the profile each criterion reads (how one value passes a condition is in
`conditions`)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from kindred.audiences.ast import (
    LOCATION_FIELDS,
    AccountAttributeCriterion,
    All,
    AnyOf,
    AttributeCriterion,
    AttributionCriterion,
    CartAbandonment,
    Condition,
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
from kindred.audiences.conditions import (
    DAY_MS,
    ISO_INSTANT,
    NEGATIVE,
    instant,
    matches,
    pattern_regex,
    text,
)
from kindred.audiences.definition import Selection
from kindred.domain.numbers import NUMERAL, number_of
from kindred.domain.observation import EventFact
from kindred.domain.profile import Device, Profile, WorkspaceProfile

__all__ = [
    "CART_HISTORIES",
    "DAY_MS",
    "EARTH_RADIUS_KM",
    "ISO_INSTANT",
    "LEAVES",
    "NEGATIVE",
    "NUMERAL",
    "Subject",
    "abandoned_cart",
    "admits",
    "cart_histories",
    "device_field",
    "distance_km",
    "evaluate",
    "event_key",
    "event_passes",
    "history_key",
    "instant",
    "matches",
    "number_of",
    "over_values",
    "pattern_regex",
    "text",
    "window_ms",
]


class Subject:
    """A profile as one audience sees it: its workspaces' data, at an instant.

    Made for every profile an evaluation reaches (twice: its memberships, then its due
    time), so a plain class with slots: a frozen dataclass's initializer and a
    `cached_property` (which takes a lock on Python 3.11) were ~7% of an activation's
    CPU. Not changed after it is made."""

    __slots__ = ("_seen_in_any", "memberships", "now_ms", "profile", "workspace_ids")

    def __init__(
        self,
        profile: Profile,
        workspace_ids: frozenset[int],
        now_ms: int,
        memberships: Mapping[int, bool] | None = None,
    ) -> None:
        """`memberships`: the profile's audiences as evaluated so far (nested audiences
        come first)."""
        self.profile = profile
        self.workspace_ids = workspace_ids
        self.now_ms = now_ms
        self.memberships: Mapping[int, bool] = {} if memberships is None else memberships
        # Asked for every audience sharing the subject: worked out once.
        self._seen_in_any = not workspace_ids.isdisjoint(profile.workspaces)

    def workspaces(self, only: int | None = None) -> Iterable[WorkspaceProfile]:
        """The profile's data in the audience's workspaces, or in the one of them a
        criterion names (`only`; none when the audience does not read it)."""
        held = self.profile.workspaces
        if only is not None:
            found = held.get(only) if only in self.workspace_ids else None
            return () if found is None else (found,)
        return (w for i, w in held.items() if i in self.workspace_ids)

    def first_seen(self, only: int | None = None) -> int | None:
        """When the profile was first seen in those workspaces; None when it never was."""
        return min((w.first_seen_ms for w in self.workspaces(only)), default=None)

    def seen(self, only: int | None = None) -> bool:
        """Whether the profile was seen in those workspaces (AUD-1: an audience counts
        only profiles with activity in its workspaces)."""
        if only is None:
            return self._seen_in_any
        return only in self.workspace_ids and only in self.profile.workspaces


def event_key(event_type: str, name: str | None) -> str:
    """The key of the events of a type (and name): `custom_event` or `custom_event:play`."""
    return event_type if name is None else f"{event_type}:{name.lower()}"


def history_key(node: EventCriterion) -> str:
    """How the profile's event history of the criterion is keyed: its event key, for an
    action or conditions a digest of them (`commerce_event@1f0c...`), and the tag of the
    audience it is bound to (`custom_event:play#12.1700000000000`)."""
    base = event_key(node.event_type, node.name)
    if node.action is None and not node.where:
        return base + node.tag
    digest = hashlib.sha1(msgspec.json.encode([node.action, node.where]), usedforsecurity=False)
    return f"{base}@{digest.hexdigest()[:16]}{node.tag}"


def window_ms(node: EventCriterion | CartAbandonment) -> int | None:
    """How far back events count for the criterion: its own `within_days` or its
    audience's lookback, whichever is shorter; None when neither bounds it."""
    days = [d for d in (node.within_days, node.lookback_days) if d]
    return min(days) * DAY_MS if days else None


def cart_histories(node: CartAbandonment) -> tuple[EventCriterion, EventCriterion]:
    """The two histories a cart abandonment criterion reads (CART_HISTORIES), bound as
    the criterion is."""
    if not node.tag and not node.lookback_days:
        return CART_HISTORIES
    added, purchased = (
        msgspec.structs.replace(h, tag=node.tag, lookback_days=node.lookback_days)
        for h in CART_HISTORIES
    )
    return added, purchased


def event_passes(node: EventCriterion, event: EventFact) -> bool:
    """Whether one event of the criterion's type and name counts for it."""
    if node.action is not None and (event.action or "").lower() != node.action:
        return False
    for condition in node.where:
        if condition.of == "attribute":
            if not matches(condition.test, event.attributes.get(condition.key), event.timestamp_ms):
                return False
        elif not any(
            matches(condition.test, product.get(condition.key), event.timestamp_ms)
            for product in event.products
        ):
            return False
    return True


# The two histories cart abandonment reads: products added to the cart, purchases.
CART_HISTORIES = (
    EventCriterion("commerce_event", None, None, "at_least", 1, action="add_to_cart"),
    EventCriterion("commerce_event", None, None, "at_least", 1, action="purchase"),
)


def admits(selection: Selection, profile: Profile) -> bool:
    """Whether the selection's criteria admit the profile, with its memberships as stored
    (what compiled SQL answers for a stored profile): a profile seen in one of the
    selection's workspaces that meets the criteria."""
    if profile.merged_into is not None:
        return False
    memberships = dict.fromkeys(profile.memberships, True)
    subject = Subject(profile, selection.workspace_ids, selection.now_ms, memberships)
    return subject.seen() and evaluate(selection.criteria, subject)


def evaluate(node: Node, subject: Subject) -> bool:
    """Whether the profile meets the criteria."""
    if isinstance(node, All):
        return all(evaluate(item, subject) for item in node.items)
    if isinstance(node, AnyOf):
        return any(evaluate(item, subject) for item in node.items)
    if isinstance(node, Exclude):
        return not evaluate(node.item, subject)
    if isinstance(node, Const):
        return node.value
    return LEAVES[type(node)](node, subject)


def _attribute(node: AttributeCriterion, subject: Subject) -> bool:
    values = [
        w.attributes[node.key].value
        for w in subject.workspaces(node.workspace)
        if node.key in w.attributes and not w.attributes[node.key].deleted
    ]
    return over_values(node.test, values, subject.now_ms)


def _account_attribute(node: AccountAttributeCriterion, subject: Subject) -> bool:
    entry = subject.profile.account_attributes.get(node.key)
    value = None if entry is None or entry.deleted else entry.value
    return over_values(node.test, [value], subject.now_ms)


def _identity(node: IdentityCriterion, subject: Subject) -> bool:
    """The user identity of the type when the profile has one and was seen in the
    workspaces (identities belong to the identity scope, the criterion to the workspaces:
    AUD-1); otherwise the device identities of that type on its devices there."""
    entry = subject.profile.user_identities.get(node.id_type)
    if entry is not None and subject.seen(node.workspace):
        return matches(node.test, entry.value, subject.now_ms)
    values = [
        device.identities[node.id_type]
        for workspace in subject.workspaces(node.workspace)
        for device in workspace.devices.values()
        if node.id_type in device.identities
    ]
    return over_values(node.test, values, subject.now_ms)


def _device(node: DeviceCriterion, subject: Subject) -> bool:
    values = [
        device_field(device, node.field)
        for workspace in subject.workspaces(node.workspace)
        for device in workspace.devices.values()
    ]
    return over_values(node.test, values, subject.now_ms)


def device_field(device: Device, name: str) -> object:
    """A device's field as criteria see it: the platform the batch named, else the one in
    its device info."""
    if name == "platform":
        return device.platform or device.info.get("platform")
    return device.info.get(name)


def over_values(test: Condition, values: Iterable[object], now_ms: int) -> bool:
    """A test over the values a profile holds for one fact (one per workspace, device ...):
    a positive test holds when one value passes, a negative test when every value does;
    with no value (None counts as none), the test of a missing value."""
    present = [v for v in values if v is not None]
    if not present:
        return matches(test, None, now_ms)
    if test.op in NEGATIVE:
        return all(matches(test, v, now_ms) for v in present)
    return any(matches(test, v, now_ms) for v in present)


def _consent(node: ConsentCriterion, subject: Subject) -> bool:
    facts = []
    for workspace in subject.workspaces(node.workspace):
        fact = workspace.gdpr.get(node.purpose or "") if node.regime == "gdpr" else workspace.ccpa
        if fact is not None:
            facts.append(fact)
    if node.state in ("exists", "not_exists"):
        return bool(facts) == (node.state == "exists")
    # The newest fact decides; on a tie between workspaces, "not consented" does.
    newest = max(facts, key=lambda f: (f.timestamp_ms, not f.consented)) if facts else None
    return newest is not None and newest.consented == (node.state == "consented")


def _first_seen(node: FirstSeenCriterion, subject: Subject) -> bool:
    return matches(node.test, subject.first_seen(node.workspace), subject.now_ms)


def _membership(node: MembershipCriterion, subject: Subject) -> bool:
    return subject.memberships.get(node.audience_id, False) == node.member


def _attribution(node: AttributionCriterion, subject: Subject) -> bool:
    values = [
        getattr(d.attribution, node.field)
        for w in subject.workspaces(node.workspace)
        for d in w.devices.values()
        if d.attribution is not None and not d.attribution.deleted
    ]
    return over_values(node.test, values, subject.now_ms)


def _event(node: EventCriterion, subject: Subject) -> bool:
    times = subject.profile.event_times.get(history_key(node), ())
    window = window_ms(node)
    since = subject.now_ms - window if window is not None else None
    count = sum(1 for t in times if (since is None or t >= since) and t <= subject.now_ms)
    if node.count_op == "at_least":
        return count >= node.count
    if node.count_op == "at_most":
        return count <= node.count
    return count == node.count


EARTH_RADIUS_KM = 6371.0088


def _location(node: LocationCriterion, subject: Subject) -> bool:
    name = LOCATION_FIELDS[node.field]
    values = [
        getattr(w.location, name)
        for w in subject.workspaces(node.workspace)
        if w.location is not None
    ]
    return over_values(node.test, values, subject.now_ms)


def _within(node: WithinDistance, subject: Subject) -> bool:
    return any(
        distance_km(node.latitude, node.longitude, w.location.latitude, w.location.longitude)
        <= node.km
        for w in subject.workspaces(node.workspace)
        if w.location is not None
        and w.location.latitude is not None
        and w.location.longitude is not None
    )


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine). The stores compute it with the same operations
    in the same order, so that SQL and Python agree to the last bit."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    half_lat = (p2 - p1) / 2
    half_lon = (math.radians(lon2) - math.radians(lon1)) / 2
    h = math.sin(half_lat) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(half_lon) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def _cart_abandonment(node: CartAbandonment, subject: Subject) -> bool:
    return abandoned_cart(node, subject.profile.event_times, subject.now_ms) is not None


def abandoned_cart(
    node: CartAbandonment, event_times: Mapping[str, Sequence[int]], now_ms: int
) -> int | None:
    """When the abandoned product was added (the latest such time), or None: an add to
    the cart within the window, `wait_minutes` or more ago, and no purchase at or after it
    (up to now)."""
    added, purchased = (event_times.get(history_key(h), ()) for h in cart_histories(node))
    last_purchase = max((t for t in purchased if t <= now_ms), default=None)
    window = window_ms(node)
    assert window is not None  # within_days is required
    since, until = now_ms - window, now_ms - node.wait_minutes * 60_000
    found = [
        t for t in added if since <= t <= until and (last_purchase is None or t > last_purchase)
    ]
    return max(found) if found else None


LEAVES: dict[type, Callable[[Any, Subject], bool]] = {
    AttributeCriterion: _attribute,
    AccountAttributeCriterion: _account_attribute,
    IdentityCriterion: _identity,
    DeviceCriterion: _device,
    ConsentCriterion: _consent,
    FirstSeenCriterion: _first_seen,
    MembershipCriterion: _membership,
    AttributionCriterion: _attribution,
    EventCriterion: _event,
    CartAbandonment: _cart_abandonment,
    LocationCriterion: _location,
    WithinDistance: _within,
}
