"""Apply an observation to a profile: source priority, timestamps, guardrails (PRF-1..6).

`apply_observation` is pure: it returns a new profile (sharing what did not change), the
changes it made and the notes on what it refused.
"""

from __future__ import annotations

import msgspec

from kindred.domain.apply_context import ApplyContext, ApplyResult, Draft
from kindred.domain.changes import Change
from kindred.domain.dedup import fresh_events
from kindred.domain.devices import apply_device, device_key
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import AttrValue, ConsentFact, EventFact, LocationFact, Observation
from kindred.domain.profile import (
    AttributeEntry,
    IdentityEntry,
    Profile,
    WorkspaceProfile,
)

__all__ = [
    "ApplyContext",
    "ApplyResult",
    "apply_observation",
    "device_key",
    "identity_keys",
    "may_write",
    "same_value",
]

replace = msgspec.structs.replace


def apply_observation(profile: Profile | None, obs: Observation, ctx: ApplyContext) -> ApplyResult:
    if profile is None:
        profile = Profile(
            mpid=ctx.mpid, scope=ctx.scope, created_ms=obs.received_ms, last_stored_ms=0
        )
    held = profile.device_identities()
    room = ctx.guardrails.max_identities_per_profile - len(profile.user_identities)
    draft = Draft(identity_room=room - sum(map(len, held.values())), held_device_ids=held)
    if profile.version == 0:
        draft.changes.append(Change(kind="profile_created", new=ctx.mpid))
    events, recent = fresh_events(obs.events, profile.recent_messages)
    if len(events) != len(obs.events):
        obs = replace(obs, events=events)
    user_ids = _apply_user_identities(profile, ctx, obs.received_ms, draft)
    account = profile.account_attributes
    if ctx.account_attributes:
        account = _apply_attributes(account, obs, ctx, draft, account=True)
    workspace = _apply_workspace(profile, obs, ctx, draft)
    opted_out, opt_out_ts = _apply_opt_out(profile, obs.events, draft)
    lat = obs.device_info.get("limit_ad_tracking")
    new_profile = replace(
        profile,
        user_identities=user_ids,
        account_attributes=account,
        workspaces={**profile.workspaces, ctx.workspace_id: workspace},
        is_opted_out=opted_out,
        opt_out_ts_ms=opt_out_ts,
        limit_ad_tracking=lat if isinstance(lat, bool) else profile.limit_ad_tracking,
        ip=obs.ip or profile.ip,
        last_stored_ms=max(profile.last_stored_ms, obs.received_ms),
        recent_messages=recent,
        version=profile.version + 1,
    )
    return ApplyResult(new_profile, tuple(draft.changes), tuple(draft.notes), events)


def identity_keys(profile: Profile | None) -> set[IdentityKey]:
    """Every identity the profile holds; the identity index must link exactly these."""
    if profile is None:
        return set()
    keys = {IdentityKey(t, e.value) for t, e in profile.user_identities.items()}
    for id_type, values in profile.device_identities().items():
        keys.update(IdentityKey(id_type, v) for v in values)
    return keys


# --- identities -------------------------------------------------------------------------


def _apply_user_identities(
    profile: Profile, ctx: ApplyContext, now_ms: int, draft: Draft
) -> dict[str, IdentityEntry]:
    current = profile.user_identities
    if not ctx.user_identities:
        return current
    result = dict(current)
    for id_type, value in ctx.user_identities.items():
        existing = result.get(id_type)
        path = f"user_identities.{id_type}"
        if existing is not None and existing.value == value:
            result[id_type] = replace(existing, last_seen_ms=max(existing.last_seen_ms, now_ms))
        elif existing is not None and id_type == ctx.immutable_type:
            draft.note("immutable_conflict", path, f"{id_type} is immutable once set")
        elif existing is None and draft.identity_room <= 0:
            draft.note("identity_cap", path, "profile is at its identity cap")
        else:
            result[id_type] = IdentityEntry(value=value, first_seen_ms=now_ms, last_seen_ms=now_ms)
            draft.identity_room -= existing is None
            kind = "identity_added" if existing is None else "identity_changed"
            old = existing.value if existing else None
            draft.changes.append(Change(kind=kind, key=id_type, old=old, new=value))
    return result


# --- per-workspace data -----------------------------------------------------------------


def _apply_workspace(
    profile: Profile, obs: Observation, ctx: ApplyContext, draft: Draft
) -> WorkspaceProfile:
    workspace = profile.workspaces.get(ctx.workspace_id)
    if workspace is None:
        workspace = WorkspaceProfile(first_seen_ms=obs.received_ms, last_seen_ms=obs.received_ms)
        draft.changes.append(Change(kind="workspace_added", workspace_id=ctx.workspace_id))
    attributes = workspace.attributes
    if not ctx.account_attributes:
        attributes = _apply_attributes(
            attributes, obs, ctx, draft, outranked=profile.account_attributes
        )
    gdpr, ccpa = _apply_consent(workspace, obs, ctx, draft)
    devices = apply_device(workspace.devices, obs, ctx, draft)
    return replace(
        workspace,
        attributes=attributes,
        gdpr=gdpr,
        ccpa=ccpa,
        devices=devices,
        location=_apply_location(workspace.location, obs, ctx, draft),
        last_seen_ms=max(workspace.last_seen_ms, obs.received_ms),
    )


def _apply_location(
    current: LocationFact | None, obs: Observation, ctx: ApplyContext, draft: Draft
) -> LocationFact | None:
    """The newer of the stored location and the batch's (the stored one on a tie)."""
    given = obs.location
    if given is None or (current is not None and given.ts_ms <= current.ts_ms):
        return current
    if current is None or replace(current, ts_ms=given.ts_ms) != given:
        draft.changes.append(Change(kind="location_changed", workspace_id=ctx.workspace_id))
    return given


def may_write(existing: AttributeEntry | None, priority: int, ts_ms: int) -> str | None:
    """None when a source of `priority` may write (or delete) at `ts_ms`; otherwise the
    refusal reason.

    A deletion is a write of "absent" and follows the same rule, so the stored entry is
    always the write with the highest (priority, timestamp) whatever order they arrived
    in: higher-priority sources always win; lower ones never override (PRF-4); equal ones
    win when not older (PRF-3).
    """
    if existing is None or priority > existing.priority:
        return None
    if priority < existing.priority:
        return "lower_priority"
    return "stale_write" if ts_ms < existing.ts_ms else None


def same_value(old: AttrValue, new: AttrValue) -> bool:
    """Equal and of the same type: 1 -> True is a change, though 1 == True."""
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(map(same_value, old, new))
    return type(old) is type(new) and old == new


def _apply_attributes(
    current: dict[str, AttributeEntry],
    obs: Observation,
    ctx: ApplyContext,
    draft: Draft,
    *,
    account: bool = False,
    outranked: dict[str, AttributeEntry] | None = None,
) -> dict[str, AttributeEntry]:
    """The batch's user attributes written into `current` (a workspace's, or with
    `account` the account's). `outranked`: the account's attributes, whose live values a
    workspace source of a lower rank may not set or delete (PRF-4)."""
    if not obs.user_attributes and not obs.deleted_user_attributes:
        return current
    result = dict(current)
    write = _Write(result, ctx, draft, account=account, outranked=outranked or {})
    live = sum(1 for e in result.values() if not e.deleted)
    for key, value in obs.user_attributes.items():
        live += write.set(key, value=value, live=live, ts_ms=obs.effective_ms)
    for key in obs.deleted_user_attributes:
        live -= write.delete(key, obs.effective_ms)
    return result


class _Write:
    """Writes of one batch into one attribute map, with the changes and refusals noted."""

    def __init__(
        self,
        attrs: dict[str, AttributeEntry],
        ctx: ApplyContext,
        draft: Draft,
        *,
        account: bool,
        outranked: dict[str, AttributeEntry],
    ) -> None:
        self.attrs, self.ctx, self.draft, self.outranked = attrs, ctx, draft, outranked
        # A change to an account attribute concerns no single workspace.
        self.kind = "account_attribute" if account else "attribute"
        self.workspace_id = None if account else ctx.workspace_id

    def _above(self, key: str) -> AttributeEntry | None:
        """The account's live value of the key when it outranks this source."""
        held = self.outranked.get(key)
        if held is None or held.deleted or held.priority <= self.ctx.priority:
            return None
        return held

    def set(self, key: str, *, value: AttrValue, live: int, ts_ms: int) -> int:
        """Write one attribute; returns how the live attribute count changed (0 or 1)."""
        ctx, draft = self.ctx, self.draft
        path = f"user_attributes.{key}"
        above = self._above(key)
        if above is not None:
            draft.note("lower_priority", path, f"kept the account-level value of {above.source}")
            return 0
        existing = self.attrs.get(key)
        refusal = may_write(existing, ctx.priority, ts_ms)
        if refusal is not None:
            draft.note(
                refusal, path, f"kept the value written by {existing.source if existing else ''}"
            )
            return 0
        is_new = existing is None or existing.deleted
        cap = ctx.guardrails.max_attributes_per_profile
        if is_new and live >= cap:
            draft.note("attribute_cap", path, f"profile already holds {cap} attributes")
            return 0
        self.attrs[key] = AttributeEntry(
            value=value, priority=ctx.priority, source=ctx.source, ts_ms=ts_ms
        )
        if is_new or existing is None or not same_value(existing.value, value):
            old = None if existing is None or existing.deleted else existing.value
            draft.changes.append(
                Change(
                    kind=f"{self.kind}_set",
                    key=key,
                    workspace_id=self.workspace_id,
                    old=old,
                    new=value,
                )
            )
        return 1 if is_new else 0

    def delete(self, key: str, ts_ms: int) -> int:
        """Delete one attribute, leaving a tombstone; returns 1 when a live value went away."""
        ctx, draft = self.ctx, self.draft
        path = f"deleted_user_attributes.{key}"
        existing = self.attrs.get(key)
        refusal = "lower_priority" if self._above(key) is not None else None
        refusal = refusal or may_write(existing, ctx.priority, ts_ms)
        if refusal is not None:
            draft.note(refusal, path, "deletion refused")
            return 0
        self.attrs[key] = AttributeEntry(
            priority=ctx.priority, source=ctx.source, ts_ms=ts_ms, deleted=True
        )
        if existing is None or existing.deleted:
            return 0
        draft.changes.append(
            Change(
                kind=f"{self.kind}_deleted",
                key=key,
                workspace_id=self.workspace_id,
                old=existing.value,
            )
        )
        return 1


def _apply_consent(
    workspace: WorkspaceProfile, obs: Observation, ctx: ApplyContext, draft: Draft
) -> tuple[dict[str, ConsentFact], ConsentFact | None]:
    if not obs.gdpr and obs.ccpa is None:
        return workspace.gdpr, workspace.ccpa
    if not ctx.may_set_consent:
        draft.note("consent_not_allowed", "consent_state", f"{ctx.source} may not set consent")
        return workspace.gdpr, workspace.ccpa
    gdpr = dict(workspace.gdpr)
    for purpose, fact in obs.gdpr.items():
        if _newer_consent(gdpr.get(purpose), fact):
            gdpr[purpose] = fact
            _consent_change(draft, ctx, f"gdpr.{purpose}", fact)
    ccpa = workspace.ccpa
    if obs.ccpa is not None and _newer_consent(ccpa, obs.ccpa):
        ccpa = obs.ccpa
        _consent_change(draft, ctx, "ccpa.data_sale_opt_out", obs.ccpa)
    return gdpr, ccpa


def _newer_consent(existing: ConsentFact | None, fact: ConsentFact) -> bool:
    return existing is None or (fact.timestamp_ms >= existing.timestamp_ms and fact != existing)


def _consent_change(draft: Draft, ctx: ApplyContext, key: str, fact: ConsentFact) -> None:
    draft.changes.append(
        Change(kind="consent_changed", key=key, workspace_id=ctx.workspace_id, new=fact.consented)
    )


def _apply_opt_out(
    profile: Profile, events: tuple[EventFact, ...], draft: Draft
) -> tuple[bool, int]:
    opted_out, ts = profile.is_opted_out, profile.opt_out_ts_ms
    for event in events:
        if event.is_opted_out is not None and event.timestamp_ms >= ts:
            opted_out, ts = event.is_opted_out, event.timestamp_ms
    if opted_out != profile.is_opted_out:
        draft.changes.append(Change(kind="opt_out_changed", new=opted_out))
    return opted_out, ts
