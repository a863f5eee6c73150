"""An audience's definition history: what makes a version, the version in force at an
instant, and the diff between two (BEY-3)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef
from kindred.audiences.versions import (
    AudienceVersion,
    DefinitionChange,
    definition_of,
    diff,
    in_force,
    is_new_version,
)

GOLD = AudienceDef(
    name="Gold",
    workspaces=[1],
    criteria={"and": [{"attribute": "tier", "op": "equals", "value": "gold"}]},
    created_ms=10,
    updated_ms=10,
)


def test_only_what_the_owner_decides_makes_a_version() -> None:
    assert is_new_version(None, GOLD)
    progress = msgspec.structs.replace(GOLD, backfill_done=9, updated_ms=99, updated_by="x")
    assert not is_new_version(GOLD, progress)
    assert is_new_version(GOLD, msgspec.structs.replace(GOLD, status="active"))
    assert is_new_version(GOLD, msgspec.structs.replace(GOLD, tags=["vip"]))
    private = msgspec.structs.replace(GOLD, access="private", updated_by="ana")
    assert is_new_version(GOLD, private)
    assert diff(GOLD, private) == [
        DefinitionChange(path="access", before="usable", after="private", change="changed")
    ]


def test_the_diff_names_each_changed_value_by_its_path() -> None:
    edited = msgspec.structs.replace(
        GOLD,
        name="Gold or silver",
        criteria={
            "and": [
                {"attribute": "tier", "op": "in", "value": ["gold", "silver"]},
                {"consent": "gdpr", "purpose": "marketing", "state": "consented"},
            ]
        },
        external_name="gold-silver",
    )
    assert diff(GOLD, edited) == [
        DefinitionChange(path="name", before="Gold", after="Gold or silver", change="changed"),
        DefinitionChange(path="external_name", before=None, after="gold-silver", change="changed"),
        DefinitionChange(path="criteria.and[0].op", before="equals", after="in", change="changed"),
        DefinitionChange(
            path="criteria.and[0].value",
            before="gold",
            after=["gold", "silver"],
            change="changed",
        ),
        DefinitionChange(
            path="criteria.and[1]",
            after={"consent": "gdpr", "purpose": "marketing", "state": "consented"},
            change="added",
        ),
    ]
    assert diff(edited, edited) == []


def test_the_version_in_force_is_the_last_saved_by_then() -> None:
    versions = [
        AudienceVersion(
            audience_id=1, version=n, audience=msgspec.structs.replace(GOLD, updated_ms=at)
        )
        for n, at in ((1, 10), (2, 20), (3, 30))
    ]
    assert in_force(versions, 9) is None
    assert [in_force(versions, at).version for at in (10, 19, 20, 29, 30, 10**15)] == [  # type: ignore[union-attr]
        1,
        1,
        2,
        2,
        3,
        3,
    ]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text("ab", max_size=2),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("xyz", min_size=1, max_size=1), inner, max_size=3)
    ),
    max_leaves=8,
)


def _at(value: Any, path: str) -> Any:
    """The value at a diff path (`criteria.a[1].b`), or a marker when it is absent."""
    for name, index in re.findall(r"\.([^.\[]*)|\[(\d+)\]", "." + path.split(".", 1)[1]):
        if index:
            if not isinstance(value, list) or int(index) >= len(value):
                return "<absent>"
            value = value[int(index)]
        else:
            if not isinstance(value, dict) or name not in value:
                return "<absent>"
            value = value[name]
    return value


@given(
    before=st.dictionaries(st.text("xyz", min_size=1, max_size=1), _JSON, max_size=3),
    after=st.dictionaries(st.text("xyz", min_size=1, max_size=1), _JSON, max_size=3),
)
def test_a_diff_is_empty_exactly_when_nothing_changed_and_says_what_each_side_held(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    old = msgspec.structs.replace(GOLD, criteria=before)
    new = msgspec.structs.replace(GOLD, criteria=after)
    changes = diff(old, new)
    assert (changes == []) == (definition_of(old) == definition_of(new))
    for change in changes:
        assert change.path.startswith("criteria")
        if change.change != "added":
            assert _at(before, change.path) == change.before
        if change.change != "removed":
            assert _at(after, change.path) == change.after
