"""The criteria tree of an audience, after parsing and checking.

Leaves test one fact of a profile; `All`, `AnyOf` and `Exclude` combine them. Operators
are closed sets (see OPERATORS), so evaluation never meets one it does not know.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "LOCATION_FIELDS",
    "USER_BASED",
    "AccountAttributeCriterion",
    "All",
    "AnyOf",
    "AttributeCriterion",
    "AttributionCriterion",
    "CartAbandonment",
    "Condition",
    "ConsentCriterion",
    "Const",
    "DeviceCriterion",
    "EventCondition",
    "EventCriterion",
    "Exclude",
    "FirstSeenCriterion",
    "IdentityCriterion",
    "LocationCriterion",
    "MembershipCriterion",
    "Node",
    "WithinDistance",
]

Scalar = str | int | float | bool


class Condition(msgspec.Struct, frozen=True):
    """An operator and its operand(s): `("equals", "gold")`, `("between", (1, 5))`."""

    op: str
    value: Scalar | tuple[Scalar, ...] | None = None


class Const(msgspec.Struct, frozen=True, tag="const"):
    value: bool


class All(msgspec.Struct, frozen=True, tag="and"):
    items: tuple[Node, ...]


class AnyOf(msgspec.Struct, frozen=True, tag="or"):
    items: tuple[Node, ...]


class Exclude(msgspec.Struct, frozen=True, tag="exclude"):
    """True when the inner criterion is false: "exclude users who ..."."""

    item: Node


class AttributeCriterion(msgspec.Struct, frozen=True, tag="attribute"):
    key: str
    test: Condition
    # User-based criteria read the audience's workspaces, or only this one of them.
    workspace: int | None = None


class AccountAttributeCriterion(msgspec.Struct, frozen=True, tag="account_attribute"):
    """An account-level user attribute (PRF-4): one value for the profile, whichever
    workspace wrote it."""

    key: str
    test: Condition


class IdentityCriterion(msgspec.Struct, frozen=True, tag="identity"):
    """A user or device identity type; its value tested (exists, pattern ...)."""

    id_type: str
    test: Condition
    workspace: int | None = None


class DeviceCriterion(msgspec.Struct, frozen=True, tag="device"):
    """A field of any of the profile's devices in the audience's workspaces."""

    field: str
    test: Condition
    workspace: int | None = None


class ConsentCriterion(msgspec.Struct, frozen=True, tag="consent"):
    regime: Literal["gdpr", "ccpa"]
    purpose: str | None
    state: Literal["consented", "not_consented", "exists", "not_exists"]
    workspace: int | None = None


class FirstSeenCriterion(msgspec.Struct, frozen=True, tag="first_seen"):
    """When the profile was first seen in the audience's workspaces (or the one named)."""

    test: Condition
    workspace: int | None = None


class MembershipCriterion(msgspec.Struct, frozen=True, tag="audience"):
    audience_id: int
    member: bool


class AttributionCriterion(msgspec.Struct, frozen=True, tag="attribution"):
    field: Literal["publisher", "campaign"]
    test: Condition
    workspace: int | None = None


class EventCondition(msgspec.Struct, frozen=True, array_like=True):
    """A test on the events counted: one of the event's attributes, or a field of one of
    its products (commerce events; a product that passes is enough)."""

    of: Literal["attribute", "product"]
    key: str
    test: Condition


class EventCriterion(msgspec.Struct, frozen=True, tag="event"):
    """Events of a type (and name; for commerce, a product action), that pass every
    condition of `where`, within the last `within_days` days (all the lookback when None),
    counted against `count` (at_least 1 by default).

    An audience's compiled tree binds each event criterion to the audience: `tag` makes
    its history key the audience's own (see evaluate.history_key), and no event older
    than `lookback_days` counts (0: parsed alone, unbound, no lookback)."""

    event_type: str
    name: str | None
    within_days: int | None
    count_op: Literal["at_least", "at_most", "exactly"]
    count: int
    action: str | None = None
    where: tuple[EventCondition, ...] = ()
    tag: str = ""
    lookback_days: int = 0


# The fields of a location criterion, as the stored location names them.
LOCATION_FIELDS = {
    "city": "city_name",
    "state": "region_code",
    "zip": "postal_code",
    "dma": "dma_code",
    "country": "country_code",
}


class LocationCriterion(msgspec.Struct, frozen=True, tag="location"):
    """A field of the profile's newest location in the audience's workspaces."""

    field: Literal["city", "state", "zip", "dma", "country"]
    test: Condition
    workspace: int | None = None


class WithinDistance(msgspec.Struct, frozen=True, tag="location_within"):
    """The newest location (in one of the workspaces) lies within `km` of the point."""

    latitude: float
    longitude: float
    km: float
    workspace: int | None = None


class CartAbandonment(msgspec.Struct, frozen=True, tag="cart_abandonment"):
    """A product added to the cart within the last `within_days` days, at least
    `wait_minutes` ago, with no purchase since. `tag` and `lookback_days` as for an
    EventCriterion."""

    within_days: int
    wait_minutes: int
    tag: str = ""
    lookback_days: int = 0


Node = (
    Const
    | All
    | AnyOf
    | Exclude
    | AttributeCriterion
    | AccountAttributeCriterion
    | IdentityCriterion
    | DeviceCriterion
    | ConsentCriterion
    | FirstSeenCriterion
    | MembershipCriterion
    | AttributionCriterion
    | EventCriterion
    | CartAbandonment
    | LocationCriterion
    | WithinDistance
)


# The criteria that read a workspace's data (the audience's, or the one a criterion names
# with `workspace`).
USER_BASED: tuple[type, ...] = (
    AttributeCriterion,
    IdentityCriterion,
    DeviceCriterion,
    ConsentCriterion,
    FirstSeenCriterion,
    AttributionCriterion,
    LocationCriterion,
    WithinDistance,
)
