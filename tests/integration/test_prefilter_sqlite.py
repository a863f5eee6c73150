"""The backfill's first pass on SQLite lets through every stored document whose profile
meets the criteria (it may let through more, never fewer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given, settings

from kindred.audiences.evaluate import Subject, evaluate
from kindred.audiences.parse import Catalog, parse_criteria
from kindred.audiences.prefilter import Has, Held, needles
from kindred.domain.profile import AttributeEntry, Membership, Profile, WorkspaceProfile
from kindred.storage.codec import encode_profile
from kindred.storage.sqlite import SqliteStore
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
    doc: dict[str, Any], profile: Profile, times: dict[str, list[int]]
) -> None:
    node = parse_criteria(doc, Catalog())
    wanted = needles(node)
    profile = with_plays(profile, times)
    if wanted is None or not evaluate(node, Subject(profile, frozenset({WORKSPACE_ID}), TS_BASE)):
        return
    assert passes(encode_profile(profile), needle_sql(wanted))


def test_a_current_member_is_let_through(tmp_path: Path) -> None:
    """Memberships live beside the document: the pass asks audience_members."""
    store = SqliteStore(tmp_path / "kindred.db")
    store.migrate()
    held = {12: Membership(audience_id=12, name="x", since_ms=1)}
    with store.unit_of_work() as uow:
        uow.profiles.save(
            Profile(mpid=1, scope="a1", created_ms=1, last_stored_ms=1, memberships=held, version=1)
        )
    for audience_id, expected in ((12, 1), (1, 0)):
        sql, params = needle_sql(Held(audience_id))
        with sqlite3.connect(tmp_path / "kindred.db") as conn:
            found = conn.execute(f"SELECT count(*) FROM profiles WHERE {sql}", params).fetchone()
        assert found[0] == expected
    store.close()


def test_a_value_equal_only_through_the_kelvin_sign_is_let_through() -> None:
    """Python lowers the Kelvin sign to k; SQLite's LIKE does not: the pass allows for it."""
    node = parse_criteria({"attribute": "tier", "op": "equals", "value": "king"}, Catalog())
    entry = AttributeEntry(value="\u212aING", priority=1, source="s", ts_ms=1)
    workspace = WorkspaceProfile(first_seen_ms=1, last_seen_ms=1, attributes={"tier": entry})
    profile = Profile(
        mpid=1, scope="a1", created_ms=1, last_stored_ms=1, workspaces={WORKSPACE_ID: workspace}
    )
    assert evaluate(node, Subject(profile, frozenset({WORKSPACE_ID}), TS_BASE))
    wanted = needles(node)
    assert wanted is not None
    assert passes(encode_profile(profile), needle_sql(wanted))


def test_a_text_is_looked_for_as_written() -> None:
    """Case counts unless folded; wildcard characters of the SQL patterns are letters."""
    for text in ('"tier"', "a*b?[c]", "x%y_z"):
        assert passes(f'{{"k": "..{text}.."}}'.encode(), needle_sql(Has(text)))
        assert not passes(f'{{"k": "..{text.upper()}.."}}'.encode(), needle_sql(Has(text)))
        assert passes(f'{{"k": "..{text.upper()}.."}}'.encode(), needle_sql(Has(text, True)))
    assert not passes(b'{"k": "a-b?[c]"}', needle_sql(Has("a*b?[c]")))
    assert not passes(b'{"k": "xay_z"}', needle_sql(Has("x%y_z")))
