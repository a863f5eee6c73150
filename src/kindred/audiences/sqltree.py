"""The part of compiled criteria (audiences/sql.py) both dialects share: walking the tree,
where each fact's values are in the stored document (one value per workspace, the devices
of each workspace, the event times of a history), how several values combine, consent,
events, cart abandonment and location. A dialect says how to read JSON and test a value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from kindred.audiences.ast import (
    LOCATION_FIELDS,
    USER_BASED,
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
from kindred.audiences.evaluate import (
    NEGATIVE,
    cart_histories,
    history_key,
    matches,
    window_ms,
)

__all__ = ["Source", "TreeSql", "encode_test"]


def encode_test(test: Condition, now_ms: int) -> str:
    """How `kindred_test` receives a test: its JSON with the instant it is evaluated at."""
    return msgspec.json.encode([test.op, test.value, now_ms]).decode()


# A source of values for one fact: ("one", expr) is a single JSON value or NULL;
# ("rows", from, value) the values `value` takes over the rows of `from`; ("tested", expr)
# a condition that already holds exactly when the source passes (absent values included).
Source = (
    tuple[Literal["one"], str] | tuple[Literal["rows"], str, str] | tuple[Literal["tested"], str]
)


class TreeSql(ABC):
    """The tree walked into SQL; a dialect says how values are read and tested."""

    true = "1"
    false = "0"

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.params: dict[str, object] = {}

    def bind(self, value: object) -> str:
        """A named placeholder for the value (named, so that an expression holding it may
        appear more than once)."""
        name = f"k{len(self.params)}"
        self.params[name] = value
        return self.placeholder.format(name)

    placeholder = ":{}"

    # --- the tree -------------------------------------------------------------------

    def node(self, node: Node, ws: tuple[str, ...]) -> str:
        if isinstance(node, All | AnyOf):
            joiner = " AND " if isinstance(node, All) else " OR "
            return "(" + joiner.join(self.node(item, ws) for item in node.items) + ")"
        if isinstance(node, Exclude):
            return f"(NOT {self.node(node.item, ws)})"
        if isinstance(node, Const):
            return self.true if node.value else self.false
        leaf: Callable[[Any, tuple[str, ...]], str] = getattr(self, _LEAVES[type(node)])
        return leaf(node, self.scoped(node, ws))

    @staticmethod
    def scoped(node: Node, ws: tuple[str, ...]) -> tuple[str, ...]:
        """The workspaces a leaf reads: the audience's, or the one of them it names."""
        only: int | None = (
            getattr(node, "workspace", None) if isinstance(node, USER_BASED) else None
        )
        if only is None:
            return ws
        return (str(only),) if str(only) in ws else ()

    def seen(self, ws: tuple[str, ...]) -> str:
        """Whether the profile was seen in one of the workspaces (`Subject.seen`)."""
        held = [f"{self.at(('workspaces', w))} IS NOT NULL" for w in ws]
        return "(" + " OR ".join(held) + ")" if held else self.false

    def attribute_leaf(self, node: AttributeCriterion, ws: tuple[str, ...]) -> str:
        return self.over(node.test, [self.attribute(w, node.key, node.test) for w in ws])

    def device_leaf(self, node: DeviceCriterion, ws: tuple[str, ...]) -> str:
        return self.over(node.test, [self.device_values(w, node.field) for w in ws])

    def attribution_leaf(self, node: AttributionCriterion, ws: tuple[str, ...]) -> str:
        return self.over(node.test, [self.attribution_values(w, node.field) for w in ws])

    def account_attribute_leaf(self, node: AccountAttributeCriterion, _ws: tuple[str, ...]) -> str:
        return self.over(node.test, [self.entry(("account_attributes", node.key), node.test)])

    def first_seen_leaf(self, node: FirstSeenCriterion, ws: tuple[str, ...]) -> str:
        """The earliest first-seen time of the workspaces (`Subject.first_seen`)."""
        stamps = [self.stamp(("workspaces", w, "first_seen_ms")) for w in ws]
        return self.over(node.test, [("one", self.least(stamps))] if stamps else [])

    def membership_leaf(self, node: MembershipCriterion, _ws: tuple[str, ...]) -> str:
        held = (
            "EXISTS (SELECT 1 FROM audience_members AS held WHERE held.audience_id ="
            f" {self.bind(node.audience_id)} AND held.mpid = profiles.mpid)"
        )
        return f"({held})" if node.member else f"(NOT {held})"

    def location_leaf(self, node: LocationCriterion, ws: tuple[str, ...]) -> str:
        name = LOCATION_FIELDS[node.field]
        places: list[Source] = [("one", self.at(("workspaces", w, "location", name))) for w in ws]
        return self.over(node.test, places)

    def within_leaf(self, node: WithinDistance, ws: tuple[str, ...]) -> str:
        near = []
        for w in ws:
            lat, lon = (
                self.number(("workspaces", w, "location", f)) for f in ("latitude", "longitude")
            )
            distance = self.distance(self.bind(node.latitude), self.bind(node.longitude), lat, lon)
            near.append(
                f"({lat} IS NOT NULL AND {lon} IS NOT NULL AND {distance} <= {self.bind(node.km)})"
            )
        return "(" + " OR ".join(near) + ")" if near else self.false

    def over(self, test: Condition, sources: Sequence[Source]) -> str:
        """`evaluate.over_values` in SQL: a positive test passes on one present value, a
        negative test on every one; with none, the answer for a missing value."""
        if not sources:
            return self.true if matches(test, None, self.now_ms) else self.false
        negative = test.op in NEGATIVE
        parts = []
        for source in sources:
            if source[0] == "tested":
                parts.append(source[1])
            elif source[0] == "one":
                value = source[1]
                parts.append(
                    f"({value} IS NULL OR {self.test(test, value)})"
                    if negative
                    else f"({value} IS NOT NULL AND {self.test(test, value)})"
                )
            else:
                _, rows, value = source
                if negative:
                    parts.append(
                        f"(NOT EXISTS (SELECT 1 FROM {rows} WHERE {value} IS NOT NULL"
                        f" AND NOT {self.test(test, value)}))"
                    )
                else:
                    parts.append(
                        f"(EXISTS (SELECT 1 FROM {rows} WHERE {value} IS NOT NULL"
                        f" AND {self.test(test, value)}))"
                    )
        return "(" + (" AND " if negative else " OR ").join(parts) + ")"

    def identity_leaf(self, node: IdentityCriterion, ws: tuple[str, ...]) -> str:
        user = self.at(("user_identities", node.id_type, "value"))
        devices = [self.device_identities(w, node.id_type) for w in ws]
        return (
            f"(CASE WHEN {user} IS NOT NULL AND {self.seen(ws)} THEN {self.test(node.test, user)}"
            f" ELSE {self.over(node.test, devices)} END)"
        )

    def consent_leaf(self, node: ConsentCriterion, ws: tuple[str, ...]) -> str:
        facts = [
            self.at(("workspaces", w, "gdpr", node.purpose or ""))
            if node.regime == "gdpr"
            else self.at(("workspaces", w, "ccpa"))
            for w in ws
        ]
        if not facts:
            return self.true if node.state == "not_exists" else self.false
        if node.state in ("exists", "not_exists"):
            present = " OR ".join(f"{f} IS NOT NULL" for f in facts)
            return f"({present})" if node.state == "exists" else f"(NOT ({present}))"
        return self.newest_consent(facts, node.state == "consented")

    def newest_consent(self, facts: list[str], consented: bool) -> str:
        """Whether the newest fact says `consented`; on a tie, "not consented" wins."""
        options = []
        for fact in facts:
            ts, agrees = self.fact_time(fact), self.fact_consented(fact, consented)
            beaten = []
            for other in facts:
                if other is fact:
                    continue
                other_ts = self.fact_time(other)
                if consented:  # a tie with a "not consented" fact loses
                    beats = (
                        f"({other_ts} > {ts} OR ({other_ts} = {ts}"
                        f" AND {self.fact_consented(other, False)}))"
                    )
                else:
                    beats = f"({other_ts} > {ts})"
                beaten.append(f"({other} IS NOT NULL AND {beats})")
            newest = " AND ".join(f"NOT {b}" for b in beaten) or self.true
            options.append(f"({fact} IS NOT NULL AND {agrees} AND {newest})")
        return "(" + " OR ".join(options) + ")"

    def event_leaf(self, node: EventCriterion, _ws: tuple[str, ...]) -> str:
        window = window_ms(node)
        since = self.now_ms - window if window is not None else None
        count = self.count_times(history_key(node), since, self.now_ms)
        op = {"at_least": ">=", "at_most": "<=", "exactly": "="}[node.count_op]
        return f"({count} {op} {self.bind(node.count)})"

    def cart_leaf(self, node: CartAbandonment, _ws: tuple[str, ...]) -> str:
        """`evaluate.abandoned_cart` in SQL: an add to the cart in the window, old enough,
        after the last purchase up to now."""
        added, purchased = (self.times(history_key(h)) for h in cart_histories(node))
        window = window_ms(node)
        assert window is not None  # within_days is required
        now = self.bind(self.now_ms)
        since = self.bind(self.now_ms - window)
        until = self.bind(self.now_ms - node.wait_minutes * 60_000)
        last_purchase = f"(SELECT max(p.t) FROM {purchased.format('p')} WHERE p.t <= {now})"
        return (
            f"(EXISTS (SELECT 1 FROM {added.format('a')} WHERE a.t >= {since}"
            f" AND a.t <= {until} AND (a.t > {last_purchase} OR {last_purchase} IS NULL)))"
        )

    # --- where values are -------------------------------------------------------------

    def attribute(self, ws: str, key: str, test: Condition) -> Source:
        return self.entry(("workspaces", ws, "attributes", key), test)

    def entry(self, entry: tuple[str, ...], test: Condition) -> Source:
        """The value of the attribute entry at the path; none when removed."""
        del test  # tested by `over`
        deleted = self.at((*entry, "deleted"))
        return ("one", f"(CASE WHEN {deleted} IS NULL THEN {self.at((*entry, 'value'))} END)")

    def _devices(self, ws: str) -> str:
        return self.each(self.at(("workspaces", ws, "devices")))

    def device_values(self, ws: str, field: str) -> Source:
        info = self.at(("info", field), "d.value")
        if field != "platform":
            return ("rows", self._devices(ws), info)
        empty = self.json_text('""')
        named = f"nullif({self.at(('platform',), 'd.value')}, {empty})"
        return ("rows", self._devices(ws), f"coalesce({named}, {info})")

    def device_identities(self, ws: str, id_type: str) -> Source:
        return ("rows", self._devices(ws), self.at(("identities", id_type), "d.value"))

    def attribution_values(self, ws: str, field: str) -> Source:
        deleted = self.at(("attribution", "deleted"), "d.value")
        value = self.at(("attribution", field), "d.value")
        return ("rows", self._devices(ws), f"(CASE WHEN {deleted} IS NULL THEN {value} END)")

    # --- dialect parts ----------------------------------------------------------------

    @abstractmethod
    def at(self, path: tuple[str, ...], base: str = "doc") -> str:
        """The JSON value at the path under `base`, NULL when absent or JSON null."""

    @abstractmethod
    def each(self, container: str) -> str:
        """The rows `d(key, value)` of a JSON object's entries."""

    @abstractmethod
    def json_text(self, literal: str) -> str:
        """A JSON value written in SQL, to compare stored values with."""

    @abstractmethod
    def fact_time(self, fact: str) -> str: ...

    @abstractmethod
    def fact_consented(self, fact: str, consented: bool) -> str: ...

    @abstractmethod
    def times(self, key: str) -> str:
        """The rows `{}(t)` of a history's times (a format string for the alias)."""

    def count_times(self, key: str, since: int | None, until: int) -> str:
        low = "" if since is None else f"e.t >= {self.bind(since)} AND "
        return (
            f"(SELECT count(*) FROM {self.times(key).format('e')}"
            f" WHERE {low}e.t <= {self.bind(until)})"
        )

    @abstractmethod
    def stamp(self, path: tuple[str, ...]) -> str:
        """The JSON integer at the path as SQL compares it, NULL when absent."""

    @abstractmethod
    def least(self, values: list[str]) -> str:
        """The least of the values (stamps) that are not NULL; NULL when all are, as a
        value `test` takes."""

    @abstractmethod
    def number(self, path: tuple[str, ...]) -> str:
        """The JSON number at the path as an SQL float, NULL when absent."""

    @abstractmethod
    def distance(self, lat1: str, lon1: str, lat2: str, lon2: str) -> str:
        """`evaluate.distance_km` in SQL."""

    @abstractmethod
    def test(self, test: Condition, value: str) -> str:
        """Whether one present stored value passes the test (never NULL)."""


# The builder method for each kind of leaf.
_LEAVES: dict[type, str] = {
    AttributeCriterion: "attribute_leaf",
    AccountAttributeCriterion: "account_attribute_leaf",
    IdentityCriterion: "identity_leaf",
    DeviceCriterion: "device_leaf",
    AttributionCriterion: "attribution_leaf",
    ConsentCriterion: "consent_leaf",
    FirstSeenCriterion: "first_seen_leaf",
    MembershipCriterion: "membership_leaf",
    EventCriterion: "event_leaf",
    CartAbandonment: "cart_leaf",
    LocationCriterion: "location_leaf",
    WithinDistance: "within_leaf",
}
