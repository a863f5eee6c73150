"""The backfill's first pass on SQLite lets through every stored document whose profile
meets the criteria (it may let through more, never fewer)."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec
from hypothesis import given, settings

from kindred.audiences.evaluate import Subject, evaluate
from kindred.audiences.parse import Catalog, parse_criteria
from kindred.audiences.prefilter import Has, needles
from kindred.domain.profile import Membership, Profile
from kindred.storage.codec import encode_profile
from kindred.storage.sqlite.setops import needle_sql
from tests.strategies import TS_BASE, WORKSPACE_ID, profiles
from tests.unit.audiences.test_compile import criteria, plays, with_plays


def passes(doc: bytes, sql_and_params: tuple[str, list[object]]) -> bool:
    sql, params = sql_and_params
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE profiles (doc TEXT)")
        conn.execute("INSERT INTO profiles VALUES (?)", (doc.decode(),))
        return bool(
            conn.execute(f"SELECT count(*) FROM profiles WHERE {sql}", params).fetchone()[0]
        )


@settings(max_examples=400)
@given(criteria, profiles(), plays)
def test_no_matching_profile_is_filtered_out(
    doc: dict[str, Any], profile: Profile, times: list[int]
) -> None:
    node = parse_criteria(doc, Catalog())
    wanted = needles(node)
    profile = with_plays(profile, times)
    if wanted is None or not evaluate(node, Subject(profile, frozenset({WORKSPACE_ID}), TS_BASE)):
        return
    assert passes(encode_profile(profile), needle_sql(wanted))


def test_a_current_member_is_let_through() -> None:
    profile = Profile(
        mpid=1,
        scope="a1",
        created_ms=1,
        last_stored_ms=1,
        memberships={12: Membership(audience_id=12, name="x", since_ms=1)},
    )
    assert passes(encode_profile(profile), needle_sql(Has('"audience_id":12,')))
    assert not passes(encode_profile(profile), needle_sql(Has('"audience_id":1,')))
    assert msgspec.json.decode(encode_profile(profile))["memberships"]["12"]["audience_id"] == 12
