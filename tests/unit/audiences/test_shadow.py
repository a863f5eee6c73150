"""The pure part of shadow edits (BEY-4): which shadow is pending, its tag, its preview."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kindred.audiences.definition import AudienceDef, ShadowEdit, ShadowPreview
from kindred.audiences.shadow import pending_shadow, promoted, shadow_tag, tally

LIVE = AudienceDef(
    id=4,
    name="live",
    workspaces=[1],
    criteria={"event": "screen_view"},
    status="active",
    updated_ms=1_000,
)
NEW = msgspec.structs.replace(LIVE, name="new", criteria={"event": "custom_event"})


def _shadow(**changes: object) -> ShadowEdit:
    base = ShadowEdit(definition=NEW, base_updated_ms=LIVE.updated_ms, started_ms=2_000)
    return msgspec.structs.replace(base, **changes)


@given(st.lists(st.tuples(st.integers(1, 10_000), st.booleans()), unique_by=lambda t: t[0]))
def test_the_preview_counts_every_profile_and_keeps_the_smallest(
    moves: list[tuple[int, bool]],
) -> None:
    preview = ShadowPreview(as_of_ms=0)
    for mpid, entering in moves:
        tally(preview, mpid, entering, 5)
    entering_all = sorted(m for m, e in moves if e)
    leaving_all = sorted(m for m, e in moves if not e)
    assert (preview.entering, preview.leaving) == (len(entering_all), len(leaving_all))
    assert preview.entering_sample == entering_all[:5]
    assert preview.leaving_sample == leaving_all[:5]


def test_a_shadow_is_void_once_the_audience_changed_otherwise() -> None:
    pending = msgspec.structs.replace(LIVE, shadow=_shadow())
    assert pending_shadow(pending) is not None
    edited = msgspec.structs.replace(pending, updated_ms=1_500)
    assert pending_shadow(edited) is None
    inactive = msgspec.structs.replace(pending, status="inactive")
    assert pending_shadow(inactive) is None
    promoting = msgspec.structs.replace(LIVE, shadow=_shadow(phase="promoting"))
    assert pending_shadow(promoting) is None


@given(st.integers(0, 5_000), st.none() | st.integers(0, 5_000))
def test_the_tag_is_never_the_live_definitions(now: int, tag: int | None) -> None:
    live = msgspec.structs.replace(LIVE, history_tag_ms=tag)
    own = live.updated_ms if tag is None else tag
    assert shadow_tag(live, now) != own
    assert shadow_tag(live, now) >= now


def test_promoted_takes_the_new_definition_and_its_histories() -> None:
    shadow = _shadow(definition=msgspec.structs.replace(NEW, history_tag_ms=2_000, history_to=9))
    after = promoted(LIVE, shadow, 3_000, "someone")
    assert (after.name, after.criteria) == ("new", NEW.criteria)
    assert (after.history_tag_ms, after.history_to, after.history_from) == (2_000, 9, None)
    assert (after.updated_ms, after.updated_by, after.created_ms) == (3_000, "someone", 0)
    assert after.shadow is not None
    assert after.shadow.phase == "promoting"
    assert pending_shadow(after) is None
