"""Per-attribute expiry (RET-4): the pure rule. A value is gone from its set time plus the
shortest TTL of the rules matching its key; nothing else of the profile changes."""

from __future__ import annotations

import fnmatch

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindred.domain.calculated import CalcSpec, CalcState
from kindred.domain.errors import ConfigError
from kindred.domain.expiry import (
    EXPIRED_CHANGE,
    AttributeTtl,
    TtlRules,
    due_by_expiry,
    next_expiry,
    parse_duration_ms,
    parse_rules,
    without_expired,
)
from kindred.domain.profile import AttributeEntry, Profile, WorkspaceProfile

HOUR = 3_600_000
DAY = 24 * HOUR

keys = st.text(alphabet="abpi_x", min_size=1, max_size=6)
patterns = st.text(alphabet="abpi_x*?", min_size=1, max_size=5)
rules_st = st.lists(
    st.builds(AttributeTtl, patterns, st.integers(min_value=1, max_value=10 * DAY)),
    max_size=4,
).map(lambda found: TtlRules(tuple(found)))
entries = st.builds(
    AttributeEntry,
    value=st.one_of(st.none(), st.text(max_size=3), st.integers()),
    priority=st.just(30),
    source=st.just("s"),
    ts_ms=st.integers(min_value=0, max_value=20 * DAY),
    deleted=st.booleans(),
)
attribute_maps = st.dictionaries(keys, entries, max_size=6)


def _profile(*workspaces: dict[str, AttributeEntry]) -> Profile:
    return Profile(
        mpid=7,
        scope="a1",
        created_ms=0,
        last_stored_ms=0,
        workspaces={
            n: WorkspaceProfile(first_seen_ms=0, last_seen_ms=0, attributes=attrs)
            for n, attrs in enumerate(workspaces, start=1)
        },
        version=3,
    )


def _ttl(rules: TtlRules, key: str) -> int | None:
    """The model: fnmatch (no brackets are ever generated) and the shortest TTL."""
    found = [r.ttl_ms for r in rules.rules if fnmatch.fnmatchcase(key, r.pattern)]
    return min(found) if found else None


@given(rules_st, attribute_maps, attribute_maps, st.integers(min_value=0, max_value=30 * DAY))
def test_exactly_the_values_past_their_ttl_go(
    rules: TtlRules,
    first: dict[str, AttributeEntry],
    second: dict[str, AttributeEntry],
    now: int,
) -> None:
    profile = _profile(first, second)
    after, changes = without_expired(profile, {1: rules}, now)
    kept = after.workspaces[1].attributes
    for key, entry in first.items():
        ttl = _ttl(rules, key)
        gone = not entry.deleted and ttl is not None and entry.ts_ms + ttl <= now
        assert (key not in kept) == gone
        if not gone:
            assert kept[key] == entry
    # Workspace 2 has no rules: untouched; and so is everything but workspace 1's values.
    assert after.workspaces[2] == profile.workspaces[2]
    assert after.version == profile.version
    assert sorted(c.key for c in changes) == sorted(set(first) - set(kept))
    assert all(c.kind == EXPIRED_CHANGE and c.workspace_id == 1 for c in changes)
    assert all(c.old == first[c.key].value for c in changes)
    if not changes:
        assert after is profile


@given(rules_st, attribute_maps, st.integers(min_value=0, max_value=30 * DAY))
def test_the_next_expiry_is_the_first_instant_a_value_goes(
    rules: TtlRules, attrs: dict[str, AttributeEntry], now: int
) -> None:
    profile = _profile(attrs)
    at = next_expiry(profile, {1: rules}, now)
    if at is None:
        # Nothing more expires, however late.
        later = without_expired(profile, {1: rules}, now + 10**15)[0]
        assert later.workspaces[1].attributes.keys() == (
            without_expired(profile, {1: rules}, now)[0].workspaces[1].attributes.keys()
        )
        return
    assert at > now
    before = without_expired(profile, {1: rules}, at - 1)[0].workspaces[1].attributes
    at_it = without_expired(profile, {1: rules}, at)[0].workspaces[1].attributes
    held_now = without_expired(profile, {1: rules}, now)[0].workspaces[1].attributes
    assert before.keys() == held_now.keys()
    assert len(at_it) < len(before)


def test_a_value_expires_at_its_instant_and_a_new_write_starts_again() -> None:
    rules = {1: parse_rules({"pii_*": "2d"}, "t")}
    entry = AttributeEntry(value="x", priority=30, source="s", ts_ms=10)
    profile = _profile({"pii_email": entry, "tier": entry})
    assert without_expired(profile, rules, 10 + 2 * DAY - 1)[0] is profile
    gone = without_expired(profile, rules, 10 + 2 * DAY)[0].workspaces[1].attributes
    assert set(gone) == {"tier"}
    again = AttributeEntry(value="x", priority=30, source="s", ts_ms=DAY)
    rewritten = _profile({"pii_email": again})
    assert without_expired(rewritten, rules, 10 + 2 * DAY)[0] is rewritten


def test_calculated_values_never_expire() -> None:
    rules = {1: parse_rules({"*": "1h"}, "t")}
    entry = AttributeEntry(value=3, priority=60, source="calculated", ts_ms=0)
    workspace = WorkspaceProfile(
        first_seen_ms=0,
        last_seen_ms=0,
        attributes={"plays": entry, "name": entry},
        calculated={"plays": CalcState(spec=CalcSpec(kind="count"))},
    )
    profile = Profile(mpid=1, scope="a1", created_ms=0, last_stored_ms=0, workspaces={1: workspace})
    after = without_expired(profile, rules, 10 * DAY)[0]
    assert set(after.workspaces[1].attributes) == {"plays"}


def test_the_shortest_matching_ttl_wins() -> None:
    rules = parse_rules({"pii_*": "30d", "pii_email": "1h", "pii_?": "2h"}, "t")
    assert rules.ttl_ms("pii_email") == HOUR
    assert rules.ttl_ms("pii_x") == 2 * HOUR
    assert rules.ttl_ms("pii_phone") == 30 * DAY
    assert rules.ttl_ms("PII_phone") is None  # keys are case-sensitive
    assert rules.ttl_ms("email") is None


def test_the_due_time_comes_forward_to_the_next_expiry_only() -> None:
    rules = {1: parse_rules({"pii_*": "1d"}, "t")}
    profile = _profile({"pii_a": AttributeEntry(value=1, priority=30, source="s", ts_ms=0)})
    assert due_by_expiry(profile, rules, 0).audience_due_ms == DAY
    earlier = msgspec.structs.replace(profile, audience_due_ms=HOUR)
    assert due_by_expiry(earlier, rules, 0).audience_due_ms == HOUR
    assert due_by_expiry(profile, {}, 0) is profile


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30d", 30 * DAY),
        ("12h", 12 * HOUR),
        ("90m", 90 * 60_000),
        ("45s", 45_000),
        ("2w", 14 * DAY),
        ("1d12h", 36 * HOUR),
        (" 3D ", 3 * DAY),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text, "k") == ms


@pytest.mark.parametrize("text", ["", "30", "1.5d", "d", "-1d", "0d", "3x", "1d 2h", "1y"])
def test_bad_durations_are_refused_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^where\.'k': "):
        parse_rules({"k": text}, "where")


@pytest.mark.parametrize("pattern", ["", "  ", "pii_[ab]", "a]", "x" * 257])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"^where\."):
        parse_rules({pattern: "1d"}, "where")
