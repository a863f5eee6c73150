"""Criteria compiled to SQL (AUD engine shape): a condition over a stored profile row
(`profiles`: `doc`; memberships from `audience_members`) that selects
exactly the profiles `evaluate` admits at one instant, for the audience's workspaces, with
memberships as stored. The backfill runs it over all profiles at once.

Both dialects walk the stored JSON document the same way (one value per workspace, the
devices of each workspace, the event times of a key); they differ in how a single stored
value is tested. SQLite calls the evaluator's own `matches` as an SQL function
(`kindred_test`, registered on every connection), so values test the same by construction.
PostgreSQL tests values with SQL and three helper functions its migrations create
(`kindred_text`, `kindred_number`, `kindred_instant`), which follow the same rules: the same
numerals and ISO instants, lower-cased text, `*`/`?` patterns. Where PostgreSQL's text of a
stored number differs from Python's (exponent forms such as 1e-05, beyond 15 significant
digits), string operators on such numbers may answer differently there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

from kindred.audiences.ast import Condition, Node
from kindred.audiences.evaluate import DAY_MS, EARTH_RADIUS_KM, matches, text
from kindred.audiences.parse import parse_date
from kindred.audiences.sqltree import Source, TreeSql, encode_test

__all__ = ["Dialect", "SqlCondition", "to_sql"]

Dialect = Literal["sqlite", "postgres"]


class SqlCondition(NamedTuple):
    """A boolean SQL expression over `profiles` and the values its placeholders take."""

    text: str
    params: dict[str, object]


def to_sql(node: Node, dialect: Dialect, workspace_ids: Sequence[int], now_ms: int) -> SqlCondition:
    builder: TreeSql = _Sqlite(now_ms) if dialect == "sqlite" else _Postgres(now_ms)
    workspaces = tuple(str(w) for w in sorted(workspace_ids))
    # Only profiles seen in the audience's workspaces count (`evaluate.admits`).
    condition = f"({builder.seen(workspaces)} AND {builder.node(node, workspaces)})"
    return SqlCondition(condition, builder.params)


class _Sqlite(TreeSql):
    """JSON as text, read with `->`; values tested by the evaluator itself."""

    def at(self, path: tuple[str, ...], base: str = "doc") -> str:
        if not any(map(_unspellable, path)):
            return f"nullif({base} -> {self.bind(_path(path))}, 'null')"
        # A JSON path cannot spell every key: step to such a key through json_each.
        cut = next(i for i, segment in enumerate(path) if _unspellable(segment))
        parent = self.at(path[:cut], base) if cut else base
        child = (
            f"(SELECT CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"
            f" WHEN 'null' THEN NULL WHEN 'object' THEN j.value WHEN 'array' THEN j.value"
            f" ELSE json_quote(j.value) END FROM json_each({parent}) AS j"
            f" WHERE j.key = {self.bind(path[cut])})"
        )
        return self.at(path[cut + 1 :], child) if cut + 1 < len(path) else child

    def entry(self, path: tuple[str, ...], test: Condition) -> Source:
        """The whole entry to one function call: one read of the document, not four;
        tested in SQL instead where SQL answers as the evaluator does (see _plain)."""
        python = f"kindred_entry({self.bind(encode_test(test, self.now_ms))}, {self.at(path)})"
        plain = None if any(map(_unspellable, path)) else self._plain(test)
        if plain is None:
            return ("tested", python)
        kind, tested = plain
        entry, value, deleted = (self.bind(_path(path + tail)) for tail in _ENTRY_PARTS)
        stored = f"(doc ->> {value})"
        guard = f"json_type(doc, {value}) = '{kind}' AND json_type(doc, {deleted}) IS NULL AND "
        guard += _PLAIN[kind].format(stored=stored)
        absent = self.true if matches(test, None, self.now_ms) else self.false
        return (
            "tested",
            f"(CASE WHEN json_type(doc, {entry}) IS NULL THEN {absent}"
            f" WHEN {guard} THEN {tested.format(stored=stored)} ELSE {python} END)",
        )

    def _plain(self, test: Condition) -> tuple[str, str] | None:
        """The test in SQL on a stored value of one JSON type, for the values _PLAIN lets
        through (any other value, a tombstone included, is left to the evaluator): a text
        of ASCII characters, which SQLite's lower() folds as str.lower() does, or an
        integer a float holds exactly, which SQLite compares with a float as Python does."""
        op, wanted = test.op, test.value
        if op in _TEXT_TESTS and text(wanted).isascii():
            needle = self.bind(text(wanted))
            return "text", _TEXT_TESTS[op].format(value="lower({stored})", needle=needle)
        if op in _COMPARISONS and _finite(wanted):
            return "integer", f"({{stored}} {_COMPARISONS[op]} {self.bind(float(wanted))})"  # type: ignore[arg-type]
        if op == "between" and isinstance(wanted, tuple) and all(map(_finite, wanted)):
            low, high = (self.bind(float(w)) for w in wanted)
            return "integer", f"({{stored}} BETWEEN {low} AND {high})"
        return None

    def each(self, container: str) -> str:
        return f"json_each({container}) AS d"

    def json_text(self, literal: str) -> str:
        return f"'{literal}'"

    def fact_time(self, fact: str) -> str:
        return f"({fact} ->> '$.timestamp_ms')"

    def fact_consented(self, fact: str, consented: bool) -> str:
        return f"(({fact} ->> '$.consented') = {1 if consented else 0})"

    def times(self, key: str) -> str:
        stored = self.at(("event_times", key))
        return f"(SELECT value AS t FROM json_each({stored})) AS {{}}"

    def stamp(self, path: tuple[str, ...]) -> str:
        return f"(doc ->> {self.bind(_path(path))})"  # workspace ids: a path spells them

    def least(self, values: list[str]) -> str:
        """SQLite's min() of several values is NULL when one is: each argument here is
        the first of them not NULL, starting from a different one."""
        if len(values) == 1:
            return values[0]
        turns = [values[n:] + values[:n] for n in range(len(values))]
        return "min(" + ", ".join(f"coalesce({', '.join(t)})" for t in turns) + ")"

    def number(self, path: tuple[str, ...]) -> str:
        """As JSON text: kindred_distance reads it as Python does (SQLite's own reading
        of a decimal may differ in the last bit)."""
        return self.at(path)

    def distance(self, lat1: str, lon1: str, lat2: str, lon2: str) -> str:
        return f"kindred_distance({lat1}, {lon1}, {lat2}, {lon2})"

    def test(self, test: Condition, value: str) -> str:
        return f"kindred_test({self.bind(encode_test(test, self.now_ms))}, {value})"


_ENTRY_PARTS: tuple[tuple[str, ...], ...] = ((), ("value",), ("deleted",))
# Text tests SQL answers exactly on a lower-cased ASCII text, with an ASCII needle.
_TEXT_TESTS = {
    "equals": "({value} = {needle})",
    "not_equals": "({value} <> {needle})",
    "contains": "(instr({value}, {needle}) > 0)",
    "not_contains": "(instr({value}, {needle}) = 0)",
}
# The stored values of each JSON type that SQL tests: ASCII text; integers of at most 53
# bits (float() keeps them exact; larger ones SQLite may read as REAL).
_PLAIN = {
    "text": "length(CAST({stored} AS BLOB)) = length({stored})",
    "integer": f"{{stored}} BETWEEN -{2**53} AND {2**53}",
}


def _finite(number: object) -> bool:
    return (
        isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number)
    )


def _unspellable(key: str) -> bool:
    """Whether SQLite's JSON path cannot name the key: it compares a quoted label with the
    key as written in the JSON text, where `"`, `\\` and control characters are escaped."""
    return any(c in '"\\' or c < " " for c in key)


def _path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{segment}"' for segment in path)


class _Postgres(TreeSql):
    """JSONB, read with `#>`; values tested in SQL by the rules of `conditions.matches`."""

    true = "TRUE"
    false = "FALSE"
    placeholder = "%({})s"

    def at(self, path: tuple[str, ...], base: str = "doc") -> str:
        return f"nullif({base} #> {self.bind(list(path))}::text[], 'null'::jsonb)"

    def each(self, container: str) -> str:
        return f"jsonb_each({container}) AS d"

    def json_text(self, literal: str) -> str:
        return f"'{literal}'::jsonb"

    def fact_time(self, fact: str) -> str:
        return f"(({fact} ->> 'timestamp_ms')::bigint)"

    def fact_consented(self, fact: str, consented: bool) -> str:
        return f"(({fact} -> 'consented') = '{'true' if consented else 'false'}'::jsonb)"

    def times(self, key: str) -> str:
        stored = self.at(("event_times", key))
        return f"(SELECT value::bigint AS t FROM jsonb_array_elements({stored})) AS {{}}"

    def stamp(self, path: tuple[str, ...]) -> str:
        return self.at(path)  # jsonb numbers order as numbers

    def least(self, values: list[str]) -> str:
        return f"least({', '.join(values)})"  # least() passes over NULLs

    def number(self, path: tuple[str, ...]) -> str:
        return f"(({self.at(path)}) #>> '{{}}')::float8"

    def distance(self, lat1: str, lon1: str, lat2: str, lon2: str) -> str:
        """The operations of distance_km in its order (libm underneath both)."""
        p1, p2 = f"radians({lat1}::float8)", f"radians({lat2})"
        half_lat = f"(({p2} - {p1}) / 2)"
        half_lon = f"((radians({lon2}) - radians({lon1}::float8)) / 2)"
        h = f"(power(sin({half_lat}), 2) + cos({p1}) * cos({p2}) * power(sin({half_lon}), 2))"
        return f"(2 * {EARTH_RADIUS_KM}::float8 * asin(sqrt(least(1.0::float8, {h}))))"

    def test(self, test: Condition, value: str) -> str:
        op = test.op
        if op in ("exists", "not_exists"):
            return self.true if op == "exists" else self.false
        if op in ("includes", "not_includes", "partial_match"):
            return self._list_test(op, test.value, value)
        scalar = self._scalar(test, "x.v")
        return (
            f"coalesce(CASE WHEN jsonb_typeof({value}) = 'array'"
            f" THEN EXISTS (SELECT 1 FROM jsonb_array_elements({value}) AS x(v) WHERE {scalar})"
            f" ELSE (SELECT {scalar} FROM (SELECT {value} AS v) AS x) END, FALSE)"
        )

    def _list_test(self, op: str, wanted: object, value: str) -> str:
        items = (
            f"jsonb_array_elements(CASE WHEN jsonb_typeof({value}) = 'array'"
            f" THEN {value} ELSE jsonb_build_array({value}) END) AS x(v)"
        )
        needle = self.bind(text(wanted))
        found = (
            f"strpos(kindred_text(x.v), {needle}) > 0"
            if op == "partial_match"
            else f"kindred_text(x.v) = {needle}"
        )
        exists = f"EXISTS (SELECT 1 FROM {items} WHERE {found})"
        return f"(NOT {exists})" if op == "not_includes" else exists

    def _scalar(self, test: Condition, v: str) -> str:  # noqa: PLR0911 - one per operator
        op, wanted = test.op, test.value
        stored = f"kindred_text({v})"
        if op in ("equals", "not_equals"):
            return f"({stored} {'=' if op == 'equals' else '<>'} {self.bind(text(wanted))})"
        if op in ("contains", "not_contains"):
            found = "> 0" if op == "contains" else "= 0"
            return f"(strpos({stored}, {self.bind(text(wanted))}) {found})"
        if op == "pattern":
            return f"({stored} LIKE {self.bind(_like(str(wanted).lower()))} ESCAPE '\\')"
        if op in ("is_true", "is_false"):
            return f"({stored} = '{'true' if op == 'is_true' else 'false'}')"
        number = f"kindred_number({v})"
        if op == "between":
            assert isinstance(wanted, tuple)
            low, high = self.bind(float(wanted[0])), self.bind(float(wanted[1]))
            return f"({number} BETWEEN {low} AND {high})"
        if op in _COMPARISONS:
            return f"({number} {_COMPARISONS[op]} {self.bind(float(wanted))})"  # type: ignore[arg-type]
        return self._date(op, wanted, f"kindred_instant({v})")

    def _date(self, op: str, wanted: object, at: str) -> str:
        now = self.now_ms
        if op in ("within_last_days", "not_within_last_days"):
            assert isinstance(wanted, int)
            since = self.bind(now - wanted * DAY_MS)
            if op == "within_last_days":
                return f"({at} BETWEEN {since} AND {self.bind(now)})"
            return f"({at} < {since})"
        if op == "between_dates":
            assert isinstance(wanted, tuple)
            low = parse_date(str(wanted[0]))
            high = parse_date(str(wanted[1])) + DAY_MS
            return f"({at} >= {self.bind(low)} AND {at} < {self.bind(high)})"
        day = parse_date(str(wanted))
        if op == "before":
            return f"({at} < {self.bind(day)})"
        if op == "after":
            return f"({at} >= {self.bind(day)})"
        return f"({at} >= {self.bind(day)} AND {at} < {self.bind(day + DAY_MS)})"


_COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _like(pattern: str) -> str:
    """A `*`/`?` pattern as a LIKE pattern with `\\` as its escape."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
