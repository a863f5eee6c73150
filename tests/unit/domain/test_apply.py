"""apply_observation: source priority, timestamps, tombstones, guardrails, consent, devices,
opt-out, attribution, purity and change records (PRF-1..PRF-6)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kindred.domain.apply import (
    ApplyContext,
    ApplyResult,
    apply_observation,
    identity_keys,
    may_write,
)
from kindred.domain.changes import Change
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import AttrValue, ConsentFact, EventFact, LocationFact, Observation
from kindred.domain.profile import AttributeEntry, Attribution, Profile
from kindred.domain.tenancy import Guardrails, SourceType, priority_of
from tests.strategies import (
    ATTRIBUTE_KEYS,
    SOURCE_PRIORITIES,
    TS_BASE,
    WORKSPACE_ID,
    observations,
    profiles,
)

WS = WORKSPACE_ID
T0 = TS_BASE
SDK = priority_of(SourceType.SERVER)
PARTNER = priority_of(SourceType.PARTNER_FEED)
DAS = {"device_application_stamp": "das-1"}

# The ladder of PRF-4, high to low; types on one rung share a priority.
LADDER: tuple[tuple[SourceType, ...], ...] = (
    (SourceType.CALCULATED,),
    (SourceType.ACCOUNT,),
    (SourceType.CUSTOM_FEED,),
    (SourceType.WEB, SourceType.IOS, SourceType.ANDROID, SourceType.SERVER),
    (SourceType.CSV_IMPORT, SourceType.WAREHOUSE_SYNC),
    (SourceType.PARTNER_FEED,),
)
HIGHER_LOWER = [
    (high, low)
    for i, upper in enumerate(LADDER)
    for lower in LADDER[i + 1 :]
    for high in upper[:1]
    for low in lower
]
SAME_RUNG = [(a, b) for rung in LADDER for a in rung for b in rung]


def ctx(
    *,
    priority: int = SDK,
    source: str = "server",
    may_set_consent: bool = True,
    guardrails: Guardrails | None = None,
    user: dict[str, str] | None = None,
    device: dict[str, str] | None = None,
    immutable: str | None = "customer_id",
    workspace_id: int = WS,
) -> ApplyContext:
    return ApplyContext(
        mpid=42,
        scope="a1",
        workspace_id=workspace_id,
        source=source,
        priority=priority,
        may_set_consent=may_set_consent,
        guardrails=guardrails or Guardrails(),
        immutable_type=immutable,
        user_identities=user or {},
        device_identities=device or {},
    )


def source_ctx(source: SourceType) -> ApplyContext:
    return ctx(
        priority=priority_of(source),
        source=str(source),
        may_set_consent=source is not SourceType.PARTNER_FEED,
    )


def obs(ts: int = T0, *, received: int | None = None, **fields: object) -> Observation:
    """An observation written at `ts` (effective_ms), received at `received` (default ts)."""
    return Observation(
        received_ms=ts if received is None else received,
        effective_ms=ts,
        **fields,  # type: ignore[arg-type]
    )


def attrs_obs(ts: int, values: dict[str, AttrValue], deleted: Iterable[str] = ()) -> Observation:
    return obs(ts, user_attributes=values, deleted_user_attributes=tuple(deleted))


def run(profile: Profile | None, *steps: tuple[Observation, ApplyContext]) -> Profile:
    for observation, context in steps:
        profile = apply_observation(profile, observation, context).profile
    assert profile is not None
    return profile


def live(profile: Profile | None, workspace_id: int = WS) -> dict[str, AttrValue]:
    assert profile is not None
    return profile.workspaces[workspace_id].live_attributes()


def entries(profile: Profile | None) -> dict[str, AttributeEntry]:
    assert profile is not None
    return profile.workspaces[WS].attributes


def kinds(result: ApplyResult) -> list[str]:
    return [c.kind for c in result.changes]


def reasons(result: ApplyResult) -> list[str]:
    return [n.reason for n in result.notes]


def seeded(values: dict[str, AttrValue], context: ApplyContext | None = None) -> Profile:
    result = apply_observation(None, attrs_obs(T0, values), context or ctx())
    return result.profile


# --- the priority ladder (PRF-4) ------------------------------------------------------------


def test_ladder_ranks_calculated_over_account_over_feed_over_sdk_over_csv_over_partner() -> None:
    ranks = [{priority_of(s) for s in rung} for rung in LADDER]
    assert all(len(r) == 1 for r in ranks), "each rung shares one priority"
    flat = [r.pop() for r in ranks]
    assert flat == sorted(flat, reverse=True)
    assert len(set(flat)) == len(flat)
    assert {s for rung in LADDER for s in rung} == set(SourceType)


@pytest.mark.parametrize(("high", "low"), HIGHER_LOWER)
def test_lower_priority_never_overrides_a_live_value_even_when_newer(
    high: SourceType, low: SourceType
) -> None:
    profile = seeded({"tier": "gold"}, source_ctx(high))
    result = apply_observation(profile, attrs_obs(T0 + 1000, {"tier": "bronze"}), source_ctx(low))
    assert live(result.profile) == {"tier": "gold"}
    assert entries(result.profile)["tier"].source == str(high)
    assert reasons(result) == ["lower_priority"]
    assert result.notes[0].path == "user_attributes.tier"
    assert "attribute_set" not in kinds(result)


@pytest.mark.parametrize(("high", "low"), HIGHER_LOWER)
def test_higher_priority_overrides_a_lower_value_even_when_older(
    high: SourceType, low: SourceType
) -> None:
    profile = seeded({"tier": "bronze"}, source_ctx(low))
    result = apply_observation(profile, attrs_obs(T0 - 1000, {"tier": "gold"}), source_ctx(high))
    assert live(result.profile) == {"tier": "gold"}
    entry = entries(result.profile)["tier"]
    assert (entry.priority, entry.source, entry.ts_ms) == (priority_of(high), str(high), T0 - 1000)
    assert result.changes == (
        Change(kind="attribute_set", key="tier", workspace_id=WS, old="bronze", new="gold"),
    )


@pytest.mark.parametrize(("first", "second"), SAME_RUNG)
def test_same_priority_sources_can_override_each_other(
    first: SourceType, second: SourceType
) -> None:
    profile = seeded({"tier": "bronze"}, source_ctx(first))
    result = apply_observation(profile, attrs_obs(T0 + 1, {"tier": "gold"}), source_ctx(second))
    assert live(result.profile) == {"tier": "gold"}
    assert entries(result.profile)["tier"].source == str(second)


def test_two_partner_feeds_can_override_each_other() -> None:
    feed_a = ctx(priority=PARTNER, source="partner-a", may_set_consent=False)
    feed_b = ctx(priority=PARTNER, source="partner-b", may_set_consent=False)
    profile = seeded({"k": 1}, feed_a)
    profile2 = run(profile, (attrs_obs(T0 + 5, {"k": 2}), feed_b))
    assert live(profile2) == {"k": 2}


# --- timestamps within one priority (PRF-3) ------------------------------------------------


def test_same_priority_most_recent_write_wins() -> None:
    profile = run(
        None, (attrs_obs(T0, {"a": "old"}), ctx()), (attrs_obs(T0 + 1, {"a": "new"}), ctx())
    )
    assert live(profile) == {"a": "new"}
    assert entries(profile)["a"].ts_ms == T0 + 1


def test_older_write_arriving_later_does_not_overwrite() -> None:
    profile = seeded({"a": "new"})
    late = attrs_obs(T0 - 1, {"a": "old"})
    result = apply_observation(profile, late, ctx())
    assert live(result.profile) == {"a": "new"}
    assert reasons(result) == ["stale_write"]
    assert result.changes == ()


def test_equal_timestamp_same_priority_write_wins() -> None:
    profile = run(None, (attrs_obs(T0, {"a": 1}), ctx()), (attrs_obs(T0, {"a": 2}), ctx()))
    assert live(profile) == {"a": 2}


def test_write_time_is_the_effective_time_not_the_arrival_time() -> None:
    early = obs(T0 - 60_000, received=T0 + 60_000, user_attributes={"a": "x"})
    profile = apply_observation(None, early, ctx()).profile
    assert entries(profile)["a"].ts_ms == T0 - 60_000
    newer = apply_observation(profile, attrs_obs(T0, {"a": "y"}), ctx()).profile
    assert live(newer) == {"a": "y"}


# --- may_write table --------------------------------------------------------------------------


def _entry(priority: int, ts: int, *, deleted: bool = False) -> AttributeEntry:
    return AttributeEntry(
        value=None if deleted else "v", priority=priority, source="s", ts_ms=ts, deleted=deleted
    )


@pytest.mark.parametrize(
    ("existing", "priority", "ts", "expected"),
    [
        (None, 10, 0, None),
        (_entry(30, 100), 40, 1, None),
        (_entry(30, 100), 20, 999, "lower_priority"),
        (_entry(30, 100), 30, 100, None),
        (_entry(30, 100), 30, 101, None),
        (_entry(30, 100), 30, 99, "stale_write"),
        (_entry(30, 100, deleted=True), 30, 99, "stale_write"),
        (_entry(30, 100, deleted=True), 30, 100, None),
        (_entry(30, 100, deleted=True), 10, 101, "lower_priority"),
        (_entry(30, 100, deleted=True), 10, 99, "lower_priority"),
        (_entry(30, 100, deleted=True), 40, 1, None),
    ],
)
def test_may_write(
    existing: AttributeEntry | None, priority: int, ts: int, expected: str | None
) -> None:
    assert may_write(existing, priority, ts) == expected


# --- deletions and tombstones ------------------------------------------------------------------


def test_deletion_leaves_a_tombstone_and_reports_the_old_value() -> None:
    profile = seeded({"a": "x", "b": "y"})
    result = apply_observation(profile, attrs_obs(T0 + 10, {}, deleted=["a"]), ctx())
    assert live(result.profile) == {"b": "y"}
    tomb = entries(result.profile)["a"]
    assert tomb.deleted
    assert tomb.ts_ms == T0 + 10
    assert result.changes == (Change(kind="attribute_deleted", key="a", workspace_id=WS, old="x"),)


def test_tombstone_stops_an_older_write_from_resurrecting_the_value() -> None:
    profile = run(seeded({"a": "x"}), (attrs_obs(T0 + 10, {}, deleted=["a"]), ctx()))
    result = apply_observation(profile, attrs_obs(T0 + 5, {"a": "x"}), ctx())
    assert live(result.profile) == {}
    assert reasons(result) == ["stale_write"]
    assert result.changes == ()


def test_a_higher_priority_write_wins_over_a_tombstone_whatever_its_time() -> None:
    profile = run(seeded({"a": "x"}), (attrs_obs(T0 + 10, {}, deleted=["a"]), ctx()))
    calc = source_ctx(SourceType.CALCULATED)
    result = apply_observation(profile, attrs_obs(T0 + 5, {"a": "x"}), calc)
    assert live(result.profile) == {"a": "x"}


def test_newer_write_after_a_deletion_brings_the_key_back() -> None:
    profile = run(seeded({"a": "x"}), (attrs_obs(T0 + 10, {}, deleted=["a"]), ctx()))
    result = apply_observation(profile, attrs_obs(T0 + 20, {"a": "z"}), ctx())
    assert live(result.profile) == {"a": "z"}
    assert result.changes == (
        Change(kind="attribute_set", key="a", workspace_id=WS, old=None, new="z"),
    )


def test_a_tombstone_keeps_its_priority_against_newer_lower_priority_writes() -> None:
    profile = seeded({"a": "x"}, source_ctx(SourceType.CUSTOM_FEED))
    profile = run(
        profile, (attrs_obs(T0 + 10, {}, deleted=["a"]), source_ctx(SourceType.CUSTOM_FEED))
    )
    result = apply_observation(
        profile, attrs_obs(T0 + 20, {"a": "p"}), source_ctx(SourceType.PARTNER_FEED)
    )
    assert live(result.profile) == {}
    assert reasons(result) == ["lower_priority"]


@pytest.mark.parametrize(("high", "low"), HIGHER_LOWER)
def test_deletion_from_a_lower_priority_is_refused(high: SourceType, low: SourceType) -> None:
    profile = seeded({"a": "x"}, source_ctx(high))
    result = apply_observation(profile, attrs_obs(T0 + 10, {}, deleted=["a"]), source_ctx(low))
    assert live(result.profile) == {"a": "x"}
    assert not entries(result.profile)["a"].deleted
    assert reasons(result) == ["lower_priority"]
    assert result.notes[0].path == "deleted_user_attributes.a"
    assert result.changes == ()


def test_older_deletion_does_not_remove_a_newer_value() -> None:
    profile = seeded({"a": "x"})
    result = apply_observation(profile, attrs_obs(T0 - 1, {}, deleted=["a"]), ctx())
    assert live(result.profile) == {"a": "x"}
    assert reasons(result) == ["stale_write"]


def test_deleting_an_unknown_key_records_a_tombstone_without_a_change() -> None:
    result = apply_observation(seeded({}), attrs_obs(T0 + 1, {}, deleted=["ghost"]), ctx())
    assert entries(result.profile)["ghost"].deleted
    assert "attribute_deleted" not in kinds(result)
    late = apply_observation(result.profile, attrs_obs(T0, {"ghost": "boo"}), ctx())
    assert live(late.profile) == {}


def test_setting_and_deleting_one_key_in_one_batch_ends_deleted() -> None:
    result = apply_observation(
        seeded({"a": "x"}), attrs_obs(T0 + 1, {"a": "y"}, deleted=["a"]), ctx()
    )
    assert live(result.profile) == {}


def test_lower_priority_tombstone_does_not_block_a_higher_priority_write() -> None:
    partner, feed = source_ctx(SourceType.PARTNER_FEED), source_ctx(SourceType.CUSTOM_FEED)
    delete_first = run(
        None,
        (attrs_obs(T0 + 100, {}, deleted=["tier"]), partner),
        (attrs_obs(T0 + 50, {"tier": "gold"}), feed),
    )
    write_first = run(
        None,
        (attrs_obs(T0 + 50, {"tier": "gold"}), feed),
        (attrs_obs(T0 + 100, {}, deleted=["tier"]), partner),
    )
    assert live(write_first) == {"tier": "gold"}
    assert live(delete_first) == live(write_first)


# --- tags and values ------------------------------------------------------------------------


def test_tag_is_an_attribute_with_value_none() -> None:
    result = apply_observation(None, attrs_obs(T0, {"vip": None}), ctx())
    assert live(result.profile) == {"vip": None}
    assert (
        Change(kind="attribute_set", key="vip", workspace_id=WS, old=None, new=None)
        in result.changes
    )
    again = apply_observation(result.profile, attrs_obs(T0 + 1, {"vip": None}), ctx())
    assert again.changes == ()
    valued = apply_observation(again.profile, attrs_obs(T0 + 2, {"vip": "yes"}), ctx())
    assert valued.changes == (
        Change(kind="attribute_set", key="vip", workspace_id=WS, old=None, new="yes"),
    )


def test_list_values_are_stored_whole() -> None:
    values: list[str | int | float | bool] = [f"item-{i}" for i in range(500)]
    result = apply_observation(None, attrs_obs(T0, {"l": values}), ctx())
    assert live(result.profile) == {"l": values}


def test_rewriting_the_same_value_emits_no_change() -> None:
    result = apply_observation(seeded({"a": [1, "x"]}), attrs_obs(T0 + 1, {"a": [1, "x"]}), ctx())
    assert result.changes == ()
    assert entries(result.profile)["a"].ts_ms == T0 + 1


def test_int_to_bool_is_a_change() -> None:
    result = apply_observation(seeded({"flag": 1}), attrs_obs(T0 + 1, {"flag": True}), ctx())
    assert result.changes == (
        Change(kind="attribute_set", key="flag", workspace_id=WS, old=1, new=True),
    )


def test_attributes_are_kept_per_workspace() -> None:
    profile = seeded({"a": "ws7"})
    other = run(profile, (attrs_obs(T0 + 1, {"a": "ws8"}), ctx(workspace_id=8)))
    assert live(other) == {"a": "ws7"}
    assert live(other, 8) == {"a": "ws8"}


# --- attribute cap (PRF-6) ------------------------------------------------------------------


def test_attribute_cap_refuses_new_keys_without_truncating_anything() -> None:
    capped = ctx(guardrails=Guardrails(max_attributes_per_profile=2))
    profile = seeded({"a": "1", "b": ["x", "y", "z"]}, capped)
    result = apply_observation(profile, attrs_obs(T0 + 1, {"c": "3", "a": "11"}), capped)
    assert live(result.profile) == {"a": "11", "b": ["x", "y", "z"]}
    assert reasons(result) == ["attribute_cap"]
    assert result.notes[0].path == "user_attributes.c"


def test_attribute_cap_within_one_batch_keeps_the_first_keys_whole() -> None:
    capped = ctx(guardrails=Guardrails(max_attributes_per_profile=2))
    result = apply_observation(None, attrs_obs(T0, {"a": "1", "b": "2", "c": "3"}), capped)
    assert live(result.profile) == {"a": "1", "b": "2"}
    assert reasons(result) == ["attribute_cap"]


def test_attribute_cap_counts_live_values_only() -> None:
    capped = ctx(guardrails=Guardrails(max_attributes_per_profile=2))
    profile = seeded({"a": "1", "b": "2"}, capped)
    profile = run(profile, (attrs_obs(T0 + 1, {}, deleted=["a"]), capped))
    result = apply_observation(profile, attrs_obs(T0 + 2, {"c": "3"}), capped)
    assert live(result.profile) == {"b": "2", "c": "3"}
    assert result.notes == ()


def test_attribute_cap_of_a_full_profile_refuses_a_deleted_key_coming_back() -> None:
    capped = ctx(guardrails=Guardrails(max_attributes_per_profile=1))
    profile = run(None, (attrs_obs(T0, {"a": 1}, deleted=["b"]), capped))
    result = apply_observation(profile, attrs_obs(T0 + 1, {"b": 2}), capped)
    assert live(result.profile) == {"a": 1}
    assert reasons(result) == ["attribute_cap"]


# --- identities ---------------------------------------------------------------------------


def test_identities_are_added_with_first_and_last_seen() -> None:
    result = apply_observation(None, obs(T0), ctx(user={"email": "a@b.c", "customer_id": "c1"}))
    ids = result.profile.user_identities
    assert {t: e.value for t, e in ids.items()} == {"email": "a@b.c", "customer_id": "c1"}
    assert ids["email"].first_seen_ms == ids["email"].last_seen_ms == T0
    assert Change(kind="identity_added", key="email", new="a@b.c") in result.changes
    again = apply_observation(result.profile, obs(T0 + 9), ctx(user={"email": "a@b.c"}))
    entry = again.profile.user_identities["email"]
    assert (entry.first_seen_ms, entry.last_seen_ms) == (T0, T0 + 9)
    assert again.changes == ()


def test_immutable_identity_never_changes() -> None:
    profile = apply_observation(None, obs(T0), ctx(user={"customer_id": "c1"})).profile
    result = apply_observation(profile, obs(T0 + 1), ctx(user={"customer_id": "c2"}))
    assert result.profile.user_identities["customer_id"].value == "c1"
    assert reasons(result) == ["immutable_conflict"]
    assert result.notes[0].path == "user_identities.customer_id"
    assert result.changes == ()


def test_mutable_identity_changes_value() -> None:
    profile = apply_observation(None, obs(T0), ctx(user={"email": "old@x"})).profile
    result = apply_observation(profile, obs(T0 + 1), ctx(user={"email": "new@x"}))
    assert result.profile.user_identities["email"].value == "new@x"
    assert result.changes == (
        Change(kind="identity_changed", key="email", old="old@x", new="new@x"),
    )
    assert IdentityKey("email", "old@x") not in identity_keys(result.profile)


def test_without_an_immutable_type_customer_id_may_change() -> None:
    free = ctx(immutable=None, user={"customer_id": "c1"})
    profile = apply_observation(None, obs(T0), free).profile
    result = apply_observation(
        profile, obs(T0 + 1), ctx(immutable=None, user={"customer_id": "c2"})
    )
    assert result.profile.user_identities["customer_id"].value == "c2"


def test_identity_cap_refuses_new_identity_types() -> None:
    capped = Guardrails(max_identities_per_profile=2)
    profile = apply_observation(
        None, obs(T0), ctx(guardrails=capped, user={"email": "e", "other": "o"})
    ).profile
    result = apply_observation(
        profile, obs(T0 + 1), ctx(guardrails=capped, user={"mobile_number": "m", "email": "e2"})
    )
    held = {t: e.value for t, e in result.profile.user_identities.items()}
    assert held == {"email": "e2", "other": "o"}
    assert reasons(result) == ["identity_cap"]
    assert result.notes[0].path == "user_identities.mobile_number"


def test_identity_cap_counts_device_identities() -> None:
    capped = Guardrails(max_identities_per_profile=1)
    profile = apply_observation(
        None, obs(T0, device_identities=DAS), ctx(guardrails=capped, device=DAS)
    ).profile
    result = apply_observation(profile, obs(T0 + 1), ctx(guardrails=capped, user={"email": "e"}))
    assert result.profile.user_identities == {}
    assert reasons(result) == ["identity_cap"]


def test_identity_cap_applies_to_new_device_identities() -> None:
    capped = Guardrails(max_identities_per_profile=1)
    profile = apply_observation(None, obs(T0), ctx(guardrails=capped, user={"email": "e"})).profile
    result = apply_observation(
        profile, obs(T0 + 1, device_identities=DAS), ctx(guardrails=capped, device=DAS)
    )
    assert identity_keys(result.profile) == {IdentityKey("email", "e")}
    assert "identity_cap" in reasons(result)


def test_identity_keys_lists_user_and_device_identities() -> None:
    device = {"device_application_stamp": "d1", "ios_idfv": "v1"}
    profile = apply_observation(
        None, obs(T0, device_identities=device), ctx(user={"email": "e"}, device=device)
    ).profile
    assert identity_keys(profile) == {
        IdentityKey("email", "e"),
        IdentityKey("device_application_stamp", "d1"),
        IdentityKey("ios_idfv", "v1"),
    }
    assert identity_keys(None) == set()


def test_only_resolved_identities_are_applied_not_the_raw_batch_ones() -> None:
    raw = obs(T0, user_identities={"email": "null", "customer_id": "c1"})
    result = apply_observation(None, raw, ctx(user={"customer_id": "c1"}))
    assert set(result.profile.user_identities) == {"customer_id"}


# --- consent --------------------------------------------------------------------------------


def _fact(consented: bool, ts: int, document: str | None = None) -> ConsentFact:
    return ConsentFact(consented=consented, timestamp_ms=ts, document=document)


def test_consent_newer_wins_older_is_ignored() -> None:
    profile = apply_observation(None, obs(T0, gdpr={"marketing": _fact(True, T0)}), ctx()).profile
    older = apply_observation(profile, obs(T0 + 1, gdpr={"marketing": _fact(False, T0 - 1)}), ctx())
    assert older.profile.workspaces[WS].gdpr["marketing"].consented is True
    assert older.changes == ()
    newer = apply_observation(profile, obs(T0 + 1, gdpr={"marketing": _fact(False, T0 + 1)}), ctx())
    assert newer.profile.workspaces[WS].gdpr["marketing"] == _fact(False, T0 + 1)
    assert newer.changes == (
        Change(kind="consent_changed", key="gdpr.marketing", workspace_id=WS, new=False),
    )


def test_same_consent_again_is_not_a_change() -> None:
    fact = _fact(True, T0, "doc_v1")
    profile = apply_observation(None, obs(T0, gdpr={"marketing": fact}), ctx()).profile
    again = apply_observation(profile, obs(T0 + 5, gdpr={"marketing": fact}), ctx())
    assert again.changes == ()


def test_ccpa_consent_newer_wins() -> None:
    profile = apply_observation(None, obs(T0, ccpa=_fact(True, T0)), ctx()).profile
    assert profile.workspaces[WS].ccpa == _fact(True, T0)
    stale = apply_observation(profile, obs(T0 + 1, ccpa=_fact(False, T0 - 5)), ctx())
    assert stale.profile.workspaces[WS].ccpa == _fact(True, T0)
    fresh = apply_observation(profile, obs(T0 + 1, ccpa=_fact(False, T0 + 1)), ctx())
    assert fresh.profile.workspaces[WS].ccpa == _fact(False, T0 + 1)
    assert fresh.changes == (
        Change(kind="consent_changed", key="ccpa.data_sale_opt_out", workspace_id=WS, new=False),
    )


def test_partner_feeds_may_not_set_consent() -> None:
    partner = source_ctx(SourceType.PARTNER_FEED)
    assert partner.may_set_consent is False
    result = apply_observation(
        None, obs(T0, gdpr={"marketing": _fact(True, T0)}, ccpa=_fact(True, T0)), partner
    )
    workspace = result.profile.workspaces[WS]
    assert workspace.gdpr == {}
    assert workspace.ccpa is None
    assert reasons(result) == ["consent_not_allowed"]
    assert result.notes[0].path == "consent_state"
    assert "consent_changed" not in kinds(result)


# --- devices -----------------------------------------------------------------------------------


def test_device_keyed_by_application_stamp_keeps_first_seen() -> None:
    first = obs(T0, device_identities=DAS, device_info={"platform": "web", "screen_width": 1})
    result = apply_observation(None, first, ctx(device=DAS))
    assert Change(kind="device_added", key="das-1", workspace_id=WS) in result.changes
    later = obs(T0 + 50, device_identities=DAS, device_info={"screen_width": 2, "os_version": "17"})
    again = apply_observation(result.profile, later, ctx(device=DAS))
    device = again.profile.workspaces[WS].devices["das-1"]
    assert (device.first_seen_ms, device.last_seen_ms) == (T0, T0 + 50)
    assert device.platform == "web"
    assert device.info == {"platform": "web", "screen_width": 2, "os_version": "17"}
    assert device.identities == DAS
    assert "device_added" not in kinds(again)
    assert list(again.profile.workspaces[WS].devices) == ["das-1"]


def test_device_without_stamp_is_keyed_by_its_best_device_id() -> None:
    ids = {"ios_idfv": "V", "ios_advertising_id": "A"}
    result = apply_observation(None, obs(T0, device_identities=ids), ctx(device=ids))
    assert list(result.profile.workspaces[WS].devices) == ["ios_idfv:V"]


def test_batch_without_device_ids_touches_no_device() -> None:
    result = apply_observation(None, obs(T0, device_info={"platform": "web"}), ctx())
    assert result.profile.workspaces[WS].devices == {}


def test_late_batch_does_not_move_device_first_or_last_seen() -> None:
    profile = apply_observation(None, obs(T0, device_identities=DAS), ctx(device=DAS)).profile
    late = apply_observation(profile, obs(T0 - 100, device_identities=DAS), ctx(device=DAS))
    device = late.profile.workspaces[WS].devices["das-1"]
    assert (device.first_seen_ms, device.last_seen_ms) == (T0, T0)


def test_device_cap_refuses_new_devices() -> None:
    capped = Guardrails(max_devices_per_workspace=1)
    profile = apply_observation(
        None, obs(T0, device_identities=DAS), ctx(device=DAS, guardrails=capped)
    ).profile
    other = {"device_application_stamp": "das-2"}
    result = apply_observation(
        profile, obs(T0 + 1, device_identities=other), ctx(device=other, guardrails=capped)
    )
    assert list(result.profile.workspaces[WS].devices) == ["das-1"]
    assert reasons(result) == ["device_cap"]


@pytest.mark.parametrize("id_type", ["push_token", "roku_advertising_id", "fire_advertising_id"])
def test_device_identities_without_a_device_key_are_kept(id_type: str) -> None:
    ids = {id_type: "X1"}
    result = apply_observation(None, obs(T0, device_identities=ids), ctx(device=ids))
    assert IdentityKey(id_type, "X1") in identity_keys(result.profile)


# --- ATT ---------------------------------------------------------------------------------------


def _att(ts: int, status: str, att_ts: int | None = None) -> Observation:
    info: dict[str, object] = {"att_authorization_status": status}
    if att_ts is not None:
        info["att_timestamp_unixtime_ms"] = att_ts
    return obs(ts, device_identities=DAS, device_info=info)


def test_att_status_newer_wins() -> None:
    profile = run(None, (_att(T0, "authorized", T0 - 10), ctx(device=DAS)))
    assert profile is not None
    device = profile.workspaces[WS].devices["das-1"]
    assert (device.att_status, device.att_ts_ms) == ("authorized", T0 - 10)
    stale = run(profile, (_att(T0 + 1, "denied", T0 - 20), ctx(device=DAS)))
    assert stale is not None
    assert stale.workspaces[WS].devices["das-1"].att_status == "authorized"
    fresh = run(profile, (_att(T0 + 1, "denied"), ctx(device=DAS)))
    assert fresh is not None
    device = fresh.workspaces[WS].devices["das-1"]
    assert (device.att_status, device.att_ts_ms) == ("denied", T0 + 1)


def test_att_status_kept_when_batch_has_none() -> None:
    profile = run(
        None,
        (_att(T0, "authorized"), ctx(device=DAS)),
        (obs(T0 + 1, device_identities=DAS), ctx(device=DAS)),
    )
    assert profile is not None
    assert profile.workspaces[WS].devices["das-1"].att_status == "authorized"


# --- install attribution ------------------------------------------------------------------------


def _attribution(ts: int, name: str = "attribution", **fields: object) -> EventFact:
    return EventFact(
        event_type="custom_event",
        timestamp_ms=ts,
        name=name,
        custom_event_type="attribution",
        **fields,  # type: ignore[arg-type]
    )


def _with_events(ts: int, *events: EventFact) -> Observation:
    return obs(ts, device_identities=DAS, events=events)


def _device_attribution(profile: Profile | None) -> Attribution | None:
    assert profile is not None
    return profile.workspaces[WS].devices["das-1"].attribution


def test_install_attribution_from_attribution_custom_event() -> None:
    event = _attribution(
        T0, "Attribution", attribution_publisher="pub", attribution_campaign="camp"
    )
    result = apply_observation(None, _with_events(T0, event), ctx(device=DAS))
    stored = _device_attribution(result.profile)
    assert stored is not None
    assert (stored.publisher, stored.campaign, stored.ts_ms) == ("pub", "camp", T0)
    assert "attribution_changed" in kinds(result)


@pytest.mark.parametrize(
    "event",
    [
        _attribution(T0, "re-engagement", attribution_publisher="pub"),
        EventFact(
            event_type="custom_event",
            timestamp_ms=T0,
            name="attribution",
            custom_event_type="navigation",
            attribution_publisher="pub",
        ),
    ],
)
def test_other_events_are_not_install_attribution(event: EventFact) -> None:
    result = apply_observation(None, _with_events(T0, event), ctx(device=DAS))
    assert _device_attribution(result.profile) is None
    assert "attribution_changed" not in kinds(result)


def test_older_attribution_does_not_replace_newer() -> None:
    profile = run(
        None, (_with_events(T0, _attribution(T0, attribution_publisher="new")), ctx(device=DAS))
    )
    result = apply_observation(
        profile,
        _with_events(T0 + 1, _attribution(T0 - 1, attribution_publisher="old")),
        ctx(device=DAS),
    )
    stored = _device_attribution(result.profile)
    assert stored is not None
    assert stored.publisher == "new"
    assert "attribution_changed" not in kinds(result)


def test_attribution_deletion_removes_it() -> None:
    profile = run(
        None, (_with_events(T0, _attribution(T0, attribution_publisher="p")), ctx(device=DAS))
    )
    result = apply_observation(
        profile,
        _with_events(T0 + 5, _attribution(T0 + 5, attribution_delete=True)),
        ctx(device=DAS),
    )
    stored = _device_attribution(result.profile)
    assert stored is not None
    assert stored.deleted
    assert stored.publisher is None
    assert Change(kind="attribution_changed", workspace_id=WS, new=None) in result.changes


def test_older_attribution_deletion_is_ignored() -> None:
    profile = run(
        None, (_with_events(T0, _attribution(T0, attribution_publisher="p")), ctx(device=DAS))
    )
    result = apply_observation(
        profile,
        _with_events(T0 + 5, _attribution(T0 - 5, attribution_delete=True)),
        ctx(device=DAS),
    )
    stored = _device_attribution(result.profile)
    assert stored is not None
    assert stored.publisher == "p"


def test_older_attribution_arriving_after_a_deletion_does_not_resurrect_it() -> None:
    profile = run(
        None,
        (_with_events(T0, _attribution(T0, attribution_publisher="p")), ctx(device=DAS)),
        (_with_events(T0 + 10, _attribution(T0 + 10, attribution_delete=True)), ctx(device=DAS)),
        (
            _with_events(T0 + 20, _attribution(T0 + 5, attribution_publisher="late")),
            ctx(device=DAS),
        ),
    )
    stored = _device_attribution(profile)
    assert stored is not None
    assert stored.deleted


# --- opt-out, LAT, IP, timestamps, version -------------------------------------------------------


def _opt(ts: int, value: bool) -> EventFact:
    return EventFact(event_type="opt_out", timestamp_ms=ts, is_opted_out=value)


def test_opt_out_latest_wins() -> None:
    result = apply_observation(None, obs(T0, events=(_opt(T0, True),)), ctx())
    assert result.profile.is_opted_out is True
    assert result.profile.opt_out_ts_ms == T0
    assert Change(kind="opt_out_changed", new=True) in result.changes
    stale = apply_observation(result.profile, obs(T0 + 1, events=(_opt(T0 - 1, False),)), ctx())
    assert stale.profile.is_opted_out is True
    assert "opt_out_changed" not in kinds(stale)
    fresh = apply_observation(result.profile, obs(T0 + 1, events=(_opt(T0 + 1, False),)), ctx())
    assert fresh.profile.is_opted_out is False
    assert fresh.changes == (Change(kind="opt_out_changed", new=False),)


def test_opt_out_within_one_batch_by_event_time_not_position() -> None:
    result = apply_observation(
        None, obs(T0, events=(_opt(T0 + 2, True), _opt(T0 + 1, False))), ctx()
    )
    assert result.profile.is_opted_out is True


def test_repeated_opt_out_is_not_a_change() -> None:
    profile = run(None, (obs(T0, events=(_opt(T0, True),)), ctx()))
    result = apply_observation(profile, obs(T0 + 1, events=(_opt(T0 + 1, True),)), ctx())
    assert result.changes == ()


@pytest.mark.parametrize(
    ("sent", "expected"), [(True, True), (False, False), ("yes", None), (None, None)]
)
def test_limit_ad_tracking(sent: object, expected: bool | None) -> None:
    info = {} if sent is None else {"limit_ad_tracking": sent}
    result = apply_observation(None, obs(T0, device_info=info), ctx())
    assert result.profile.limit_ad_tracking is expected


def test_limit_ad_tracking_is_kept_when_absent() -> None:
    profile = run(
        None, (obs(T0, device_info={"limit_ad_tracking": True}), ctx()), (obs(T0 + 1), ctx())
    )
    assert profile is not None
    assert profile.limit_ad_tracking is True


def test_ip_is_the_latest_seen_and_kept_when_absent() -> None:
    profile = run(
        None,
        (obs(T0, ip="10.0.0.1"), ctx()),
        (obs(T0 + 1, ip="10.0.0.2"), ctx()),
        (obs(T0 + 2), ctx()),
    )
    assert profile is not None
    assert profile.ip == "10.0.0.2"


def test_created_and_last_stored() -> None:
    result = apply_observation(None, obs(T0 - 500, received=T0), ctx())
    profile = result.profile
    assert (profile.created_ms, profile.last_stored_ms) == (T0, T0)
    assert (profile.mpid, profile.scope) == (42, "a1")
    assert result.changes[0] == Change(kind="profile_created", new=42)
    later = apply_observation(profile, obs(T0 + 10), ctx()).profile
    assert (later.created_ms, later.last_stored_ms) == (T0, T0 + 10)
    late = apply_observation(later, obs(T0 + 1), ctx()).profile
    assert late.last_stored_ms == T0 + 10
    assert "profile_created" not in kinds(apply_observation(later, obs(T0 + 20), ctx()))


def test_workspace_first_and_last_seen() -> None:
    profile = run(None, (obs(T0), ctx()), (obs(T0 + 7), ctx()), (obs(T0 + 3), ctx()))
    assert profile is not None
    workspace = profile.workspaces[WS]
    assert (workspace.first_seen_ms, workspace.last_seen_ms) == (T0, T0 + 7)


def test_version_increments_on_every_apply() -> None:
    first = apply_observation(None, obs(T0), ctx()).profile
    second = apply_observation(first, obs(T0), ctx()).profile
    third = apply_observation(second, obs(T0 - 1), ctx()).profile
    assert (first.version, second.version, third.version) == (1, 2, 3)


# --- properties ---------------------------------------------------------------------------------


def _frozen(value: object) -> bytes:
    return msgspec.json.encode(value)


@settings(max_examples=30, deadline=None)
@given(profile=st.none() | profiles(), observation=observations())
def test_apply_does_not_mutate_its_inputs(
    profile: Profile | None, observation: Observation
) -> None:
    before_profile, before_obs = _frozen(profile), copy.deepcopy(observation)
    context = ctx(
        user=dict(observation.user_identities), device=dict(observation.device_identities)
    )
    result = apply_observation(profile, observation, context)
    assert _frozen(profile) == before_profile
    assert observation == before_obs
    # Applying again to the result must not reach back into the input either.
    apply_observation(result.profile, observation, context)
    assert _frozen(profile) == before_profile


@settings(max_examples=40, deadline=None)
@given(profile=st.none() | profiles(), observation=observations())
def test_applying_an_observation_twice_equals_applying_it_once(
    profile: Profile | None, observation: Observation
) -> None:
    context = ctx(
        user=dict(observation.user_identities), device=dict(observation.device_identities)
    )
    once = apply_observation(profile, observation, context).profile
    twice = apply_observation(once, observation, context)
    assert msgspec.structs.replace(twice.profile, version=once.version) == once
    assert twice.changes == ()


# Values that differ under ==, so "changed" is unambiguous (1 == True is a separate xfail).
_PLAIN: list[AttrValue] = ["x", "y", ["x"], ["x", "y"], None, 3, 2.5, ""]
_PLAIN_VALUES: st.SearchStrategy[AttrValue] = st.sampled_from(_PLAIN)


@settings(max_examples=40, deadline=None)
@given(profile=st.none() | profiles(), observation=observations(values=_PLAIN_VALUES))
def test_attribute_changes_are_reported_exactly_when_values_change(
    profile: Profile | None, observation: Observation
) -> None:
    before: dict[str, AttrValue] = {}
    if profile is not None and WS in profile.workspaces:
        before = profile.workspaces[WS].live_attributes()
    result = apply_observation(profile, observation, ctx())
    after = live(result.profile)
    changed = {
        k
        for k in before.keys() | after.keys()
        if (k in before, before.get(k)) != (k in after, after.get(k))
    }
    reported = [c for c in result.changes if c.kind in ("attribute_set", "attribute_deleted")]
    assert sorted(c.key for c in reported) == sorted(changed)
    for change in reported:
        assert change.old == before.get(change.key)
        assert change.new == after.get(change.key)
        assert (change.kind == "attribute_deleted") == (change.key not in after)


@st.composite
def _same_priority_writes(draw: st.DrawFn) -> list[Observation]:
    """Observations of one priority with distinct write times: sets and deletions."""
    count = draw(st.integers(1, 8))
    times = draw(
        st.lists(st.integers(T0, T0 + 10_000), min_size=count, max_size=count, unique=True)
    )
    result = []
    for ts in times:
        values = draw(st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS), _PLAIN_VALUES, max_size=3))
        free = [k for k in ATTRIBUTE_KEYS if k not in values]
        deleted = draw(st.lists(st.sampled_from(free), max_size=2, unique=True))
        result.append(attrs_obs(ts, values, deleted))
    return result


def _oracle_same_priority(writes: list[Observation]) -> dict[str, AttrValue]:
    latest: dict[str, tuple[int, bool, AttrValue]] = {}
    for w in writes:
        for key, value in w.user_attributes.items():
            if key not in latest or latest[key][0] < w.effective_ms:
                latest[key] = (w.effective_ms, True, value)
        for key in w.deleted_user_attributes:
            if key not in latest or latest[key][0] < w.effective_ms:
                latest[key] = (w.effective_ms, False, None)
    return {k: v for k, (_, is_set, v) in latest.items() if is_set}


@settings(max_examples=60, deadline=None)
@given(writes=_same_priority_writes(), data=st.data())
def test_same_priority_result_is_independent_of_arrival_order(
    writes: list[Observation], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(writes))
    sources = data.draw(
        st.lists(st.sampled_from(LADDER[3]), min_size=len(writes), max_size=len(writes))
    )
    in_order = run(None, *((w, ctx()) for w in writes))
    any_order = run(None, *((w, source_ctx(s)) for w, s in zip(shuffled, sources, strict=True)))
    assert live(in_order) == live(any_order) == _oracle_same_priority(writes)
    in_entries = {k: (e.ts_ms, e.deleted, e.value) for k, e in entries(in_order).items()}
    any_entries = {k: (e.ts_ms, e.deleted, e.value) for k, e in entries(any_order).items()}
    assert in_entries == any_entries


@st.composite
def _prioritized_sets(draw: st.DrawFn) -> list[tuple[Observation, int]]:
    count = draw(st.integers(1, 8))
    times = draw(
        st.lists(st.integers(T0, T0 + 10_000), min_size=count, max_size=count, unique=True)
    )
    return [
        (
            attrs_obs(
                ts,
                draw(
                    st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS[:3]), _PLAIN_VALUES, min_size=1)
                ),
            ),
            draw(st.sampled_from(SOURCE_PRIORITIES)),
        )
        for ts in times
    ]


@settings(max_examples=60, deadline=None)
@given(writes=_prioritized_sets(), data=st.data())
def test_sets_across_priorities_end_with_the_highest_priority_newest_value(
    writes: list[tuple[Observation, int]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(writes))
    profile = run(None, *((w, ctx(priority=p, source=f"p{p}")) for w, p in shuffled))
    best: dict[str, tuple[int, int, AttrValue]] = {}
    for w, p in writes:
        for key, value in w.user_attributes.items():
            rank = (p, w.effective_ms, value)
            if key not in best or best[key][:2] < rank[:2]:
                best[key] = rank
    assert live(profile) == {k: v for k, (_, _, v) in best.items()}
    assert {k: e.priority for k, e in entries(profile).items()} == {
        k: p for k, (p, _, _) in best.items()
    }


@st.composite
def _high_then_low(draw: st.DrawFn) -> tuple[int, list[Observation], int, list[Observation]]:
    high, low = sorted(
        draw(st.lists(st.sampled_from(SOURCE_PRIORITIES), min_size=2, max_size=2, unique=True)),
        reverse=True,
    )
    stamp = st.integers(T0 - 10_000, T0 + 10_000)
    keys = st.sampled_from(ATTRIBUTE_KEYS)
    high_writes = [
        attrs_obs(draw(stamp), draw(st.dictionaries(keys, _PLAIN_VALUES, min_size=1, max_size=3)))
        for _ in range(draw(st.integers(1, 3)))
    ]
    low_writes = [
        attrs_obs(
            draw(stamp),
            draw(st.dictionaries(keys, _PLAIN_VALUES, max_size=3)),
            draw(st.lists(keys, max_size=3, unique=True)),
        )
        for _ in range(draw(st.integers(1, 5)))
    ]
    return high, high_writes, low, low_writes


@settings(max_examples=50, deadline=None)
@given(case=_high_then_low(), data=st.data())
def test_lower_priority_never_changes_a_key_a_higher_priority_set(
    case: tuple[int, list[Observation], int, list[Observation]], data: st.DataObject
) -> None:
    high, high_writes, low, low_writes = case
    hctx, lctx = ctx(priority=high, source="high"), ctx(priority=low, source="low")
    after_high = run(None, *((w, hctx) for w in high_writes))
    final = run(after_high, *((w, lctx) for w in data.draw(st.permutations(low_writes))))
    for key, entry in entries(after_high).items():
        assert entries(final)[key] == entry, key


def test_the_newest_location_is_kept_and_a_move_is_a_change() -> None:
    paris = LocationFact(ts_ms=T0, latitude=48.8566, longitude=2.3522, city_name="Paris")
    london = LocationFact(ts_ms=T0 + 10, latitude=51.5074, longitude=-0.1278, city_name="London")
    first = apply_observation(None, obs(T0, location=paris), ctx())
    assert first.profile.workspaces[WS].location == paris
    assert "location_changed" in kinds(first)
    moved = apply_observation(first.profile, obs(T0 + 10, location=london), ctx())
    assert moved.profile.workspaces[WS].location == london
    assert "location_changed" in kinds(moved)
    late = apply_observation(moved.profile, obs(T0 + 20, location=paris), ctx())
    assert late.profile.workspaces[WS].location == london  # stamped earlier: kept out
    assert "location_changed" not in kinds(late)
    still = msgspec.structs.replace(london, ts_ms=T0 + 30)
    again = apply_observation(moved.profile, obs(T0 + 30, location=still), ctx())
    assert again.profile.workspaces[WS].location == still
    assert "location_changed" not in kinds(again)  # the same place, seen again


# --- account-level attributes (PRF-4) ---------------------------------------------------

ACCOUNT = priority_of(SourceType.ACCOUNT)


def account_ctx(source: str = "crm", workspace_id: int = WS) -> ApplyContext:
    """An input with `account_attributes`: its user attributes are the account's."""
    return dataclasses.replace(
        ctx(priority=ACCOUNT, source=source, workspace_id=workspace_id), account_attributes=True
    )


def test_an_account_input_writes_the_accounts_attributes_not_the_workspaces() -> None:
    result = apply_observation(seeded({"a": 1}), attrs_obs(T0 + 1, {"plan": "pro"}), account_ctx())
    profile = result.profile
    assert profile.live_account_attributes() == {"plan": "pro"}
    assert profile.account_attributes["plan"].priority == ACCOUNT
    assert live(profile) == {"a": 1}
    assert Change(kind="account_attribute_set", key="plan", new="pro") in result.changes
    deleted = apply_observation(profile, attrs_obs(T0 + 2, {}, ["plan"]), account_ctx("other"))
    assert deleted.profile.live_account_attributes() == {}
    assert Change(kind="account_attribute_deleted", key="plan", old="pro") in deleted.changes


@pytest.mark.parametrize(
    "low",
    [SourceType.CUSTOM_FEED, SourceType.SERVER, SourceType.CSV_IMPORT, SourceType.PARTNER_FEED],
)
def test_no_workspace_source_below_the_account_rank_sets_or_deletes_a_key_it_holds(
    low: SourceType,
) -> None:
    profile = run(None, (attrs_obs(T0, {"plan": "old"}), source_ctx(low)))
    profile = run(profile, (attrs_obs(T0 + 1, {"plan": "pro"}), account_ctx()))
    for workspace_id in (WS, WS + 1):  # every workspace of the account
        writer = dataclasses.replace(source_ctx(low), workspace_id=workspace_id)
        newer = apply_observation(profile, attrs_obs(T0 + 5, {"plan": "free"}), writer)
        assert reasons(newer) == ["lower_priority"]
        assert "attribute_set" not in kinds(newer)
        gone = apply_observation(profile, attrs_obs(T0 + 5, {}, ["plan"]), writer)
        assert reasons(gone) == ["lower_priority"]
    assert live(profile) == {"plan": "old"}  # what the workspace held before stays


def test_calculated_attributes_outrank_the_account() -> None:
    profile = run(None, (attrs_obs(T0, {"plan": "pro"}), account_ctx()))
    calc = apply_observation(
        profile, attrs_obs(T0 - 5, {"plan": 3}), source_ctx(SourceType.CALCULATED)
    )
    assert reasons(calc) == []
    assert live(calc.profile) == {"plan": 3}


def test_once_the_account_deletes_a_key_the_workspaces_may_set_it_again() -> None:
    profile = run(
        None,
        (attrs_obs(T0, {"plan": "pro"}), account_ctx()),
        (attrs_obs(T0 + 1, {}, ["plan"]), account_ctx()),
        (attrs_obs(T0 + 2, {"plan": "free"}), source_ctx(SourceType.SERVER)),
    )
    assert live(profile) == {"plan": "free"}
    assert profile.live_account_attributes() == {}


def test_account_writers_share_one_rung_the_latest_write_wins() -> None:
    profile = run(
        None,
        (attrs_obs(T0 + 5, {"plan": "pro"}), account_ctx("crm")),
        (attrs_obs(T0 + 1, {"plan": "stale"}), account_ctx("billing", workspace_id=WS + 1)),
    )
    assert profile.live_account_attributes() == {"plan": "pro"}
    profile = run(profile, (attrs_obs(T0 + 9, {"plan": "team"}), account_ctx("billing")))
    assert profile.live_account_attributes() == {"plan": "team"}


def test_a_batch_first_seen_in_a_workspace_notes_it() -> None:
    profile = seeded({"a": 1})
    assert "workspace_added" not in kinds(
        apply_observation(profile, attrs_obs(T0 + 1, {"a": 2}), ctx())
    )
    other = apply_observation(profile, attrs_obs(T0 + 1, {"a": 2}), ctx(workspace_id=WS + 1))
    assert Change(kind="workspace_added", workspace_id=WS + 1) in other.changes
