"""SQL functions Kindred registers on its SQLite connections.

`kindred_test(test, value)` tests one stored value as the audience evaluator does, and
`kindred_entry(test, entry)` a user attribute entry: the compiled criteria (audiences.sql)
call them, so a value passes in SQL exactly when it passes in `conditions.matches`;
`kindred_distance` is `evaluate.distance_km`."""

from __future__ import annotations

import sqlite3
from functools import lru_cache

import msgspec

from kindred.audiences.ast import Condition
from kindred.audiences.evaluate import distance_km, matches

__all__ = ["register_functions"]


def register_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("kindred_test", 2, _kindred_test, deterministic=True)
    conn.create_function("kindred_entry", 2, _kindred_entry, deterministic=True)
    conn.create_function("kindred_distance", 4, _kindred_distance, deterministic=True)


@lru_cache(maxsize=512)
def _decoded_test(encoded: str) -> tuple[Condition, int]:
    op, wanted, now_ms = msgspec.json.decode(encoded)
    return Condition(op, tuple(wanted) if isinstance(wanted, list) else wanted), now_ms


def _kindred_test(encoded: str, value: object) -> int:
    """`value` is JSON text as `->` gives it, or a plain SQL number (a column)."""
    test, now_ms = _decoded_test(encoded)
    if isinstance(value, str):
        value = msgspec.json.decode(value)
    return int(matches(test, value, now_ms))


def _kindred_entry(encoded: str, entry: str | None) -> int:
    """A user attribute entry (JSON text, or NULL when absent) against the test: a removed
    entry or one without a value tests as a missing value."""
    test, now_ms = _decoded_test(encoded)
    fields = msgspec.json.decode(entry) if entry is not None else {}
    value = None if fields.get("deleted") else fields.get("value")
    return int(matches(test, value, now_ms))


def _kindred_distance(lat1: float, lon1: float, lat2: str | float, lon2: str | float) -> float:
    """distance_km from a point to a stored one (JSON text, read as Python reads it)."""
    return distance_km(lat1, lon1, float(lat2), float(lon2))
