"""Apply an observation to a profile: source priority, timestamps, guardrails (PRF-1..6).

`apply_observation` is pure: it returns a new profile (sharing what did not change), the
changes it made and the notes on what it refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from kindred.domain.changes import Change, Note
from kindred.domain.dedup import fresh_events
from kindred.domain.identities import IdentityKey
from kindred.domain.observation import AttrValue, ConsentFact, EventFact, Observation
from kindred.domain.profile import (
    AttributeEntry,
    Attribution,
    Device,
    IdentityEntry,
    Profile,
    WorkspaceProfile,
)
from kindred.domain.tenancy import Guardrails

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


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """Who writes, into which profile slot, under which limits."""

    mpid: int
    scope: str
    workspace_id: int
    source: str
    priority: int
    may_set_consent: bool
    guardrails: Guardrails
    immutable_type: str | None
    # The identities resolution accepted for this profile (junk and conflicts removed).
    user_identities: dict[str, str] = field(default_factory=dict)
    device_identities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    profile: Profile
    changes: tuple[Change, ...]
    notes: tuple[Note, ...]
    # The batch's events minus those the profile had already seen (ING-4).
    events: tuple[EventFact, ...] = ()


@dataclass(slots=True)
class _Draft:
    """Collects changes and notes while the new profile is assembled, and how many more
    identities the profile may take (PRF-6) given those it already holds."""

    identity_room: int
    held_device_ids: dict[str, set[str]]
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def note(self, reason: str, path: str, detail: str) -> None:
        self.notes.append(Note(reason=reason, path=path, detail=detail))


def apply_observation(profile: Profile | None, obs: Observation, ctx: ApplyContext) -> ApplyResult:
    if profile is None:
        profile = Profile(
            mpid=ctx.mpid, scope=ctx.scope, created_ms=obs.received_ms, last_stored_ms=0
        )
    held = profile.device_identities()
    room = ctx.guardrails.max_identities_per_profile - len(profile.user_identities)
    draft = _Draft(identity_room=room - sum(map(len, held.values())), held_device_ids=held)
    if profile.version == 0:
        draft.changes.append(Change(kind="profile_created", new=ctx.mpid))
    events, recent = fresh_events(obs.events, profile.recent_messages)
    if len(events) != len(obs.events):
        obs = replace(obs, events=events)
    user_ids = _apply_user_identities(profile, ctx, obs.received_ms, draft)
    workspace = _apply_workspace(profile, obs, ctx, draft)
    opted_out, opt_out_ts = _apply_opt_out(profile, obs.events, draft)
    lat = obs.device_info.get("limit_ad_tracking")
    new_profile = replace(
        profile,
        user_identities=user_ids,
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
    profile: Profile, ctx: ApplyContext, now_ms: int, draft: _Draft
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
    profile: Profile, obs: Observation, ctx: ApplyContext, draft: _Draft
) -> WorkspaceProfile:
    workspace = profile.workspaces.get(ctx.workspace_id) or WorkspaceProfile(
        first_seen_ms=obs.received_ms, last_seen_ms=obs.received_ms
    )
    attributes = _apply_attributes(workspace.attributes, obs, ctx, draft)
    gdpr, ccpa = _apply_consent(workspace, obs, ctx, draft)
    devices = _apply_device(workspace.devices, obs, ctx, draft)
    return replace(
        workspace,
        attributes=attributes,
        gdpr=gdpr,
        ccpa=ccpa,
        devices=devices,
        last_seen_ms=max(workspace.last_seen_ms, obs.received_ms),
    )


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
    current: dict[str, AttributeEntry], obs: Observation, ctx: ApplyContext, draft: _Draft
) -> dict[str, AttributeEntry]:
    if not obs.user_attributes and not obs.deleted_user_attributes:
        return current
    result = dict(current)
    live = sum(1 for e in result.values() if not e.deleted)
    for key, value in obs.user_attributes.items():
        live += _set_attribute(
            result, key, value=value, live=live, ts_ms=obs.effective_ms, ctx=ctx, draft=draft
        )
    for key in obs.deleted_user_attributes:
        live -= _delete_attribute(result, key, obs.effective_ms, ctx, draft)
    return result


def _set_attribute(
    attrs: dict[str, AttributeEntry],
    key: str,
    *,
    value: AttrValue,
    live: int,
    ts_ms: int,
    ctx: ApplyContext,
    draft: _Draft,
) -> int:
    """Write one attribute; returns how the live attribute count changed (0 or 1)."""
    existing = attrs.get(key)
    path = f"user_attributes.{key}"
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
    attrs[key] = AttributeEntry(value=value, priority=ctx.priority, source=ctx.source, ts_ms=ts_ms)
    if is_new or existing is None or not same_value(existing.value, value):
        old = None if existing is None or existing.deleted else existing.value
        draft.changes.append(
            Change(kind="attribute_set", key=key, workspace_id=ctx.workspace_id, old=old, new=value)
        )
    return 1 if is_new else 0


def _delete_attribute(
    attrs: dict[str, AttributeEntry], key: str, ts_ms: int, ctx: ApplyContext, draft: _Draft
) -> int:
    """Delete one attribute, leaving a tombstone; returns 1 when a live value went away."""
    existing = attrs.get(key)
    refusal = may_write(existing, ctx.priority, ts_ms)
    if refusal is not None:
        draft.note(refusal, f"deleted_user_attributes.{key}", "deletion refused")
        return 0
    attrs[key] = AttributeEntry(priority=ctx.priority, source=ctx.source, ts_ms=ts_ms, deleted=True)
    if existing is None or existing.deleted:
        return 0
    draft.changes.append(
        Change(kind="attribute_deleted", key=key, workspace_id=ctx.workspace_id, old=existing.value)
    )
    return 1


def _apply_consent(
    workspace: WorkspaceProfile, obs: Observation, ctx: ApplyContext, draft: _Draft
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


def _consent_change(draft: _Draft, ctx: ApplyContext, key: str, fact: ConsentFact) -> None:
    draft.changes.append(
        Change(kind="consent_changed", key=key, workspace_id=ctx.workspace_id, new=fact.consented)
    )


# --- devices ----------------------------------------------------------------------------

_DEVICE_KEY_ORDER = ("ios_idfv", "android_uuid", "ios_advertising_id", "android_advertising_id")


def device_key(identities: dict[str, str]) -> str | None:
    """The device a batch came from: its application stamp, else its most stable device id,
    else any device id it carries."""
    das = identities.get("device_application_stamp")
    if das:
        return das
    for id_type in (*_DEVICE_KEY_ORDER, *sorted(identities)):
        value = identities.get(id_type)
        if value:
            return f"{id_type}:{value}"
    return None


def _apply_device(
    devices: dict[str, Device], obs: Observation, ctx: ApplyContext, draft: _Draft
) -> dict[str, Device]:
    key = device_key(ctx.device_identities)
    if key is None:
        return devices
    device = devices.get(key)
    if device is None:
        if len(devices) >= ctx.guardrails.max_devices_per_workspace:
            draft.note("device_cap", "device_info", "workspace already holds its cap of devices")
            return devices
        device = Device(key=key, first_seen_ms=obs.received_ms, last_seen_ms=obs.received_ms)
        draft.changes.append(Change(kind="device_added", key=key, workspace_id=ctx.workspace_id))
    return {**devices, key: _updated_device(device, obs, ctx, draft)}


def _updated_device(device: Device, obs: Observation, ctx: ApplyContext, draft: _Draft) -> Device:
    info = {**device.info, **obs.device_info} if obs.device_info else device.info
    platform = obs.device_info.get("platform")
    att_status, att_ts = _att(device, obs)
    return replace(
        device,
        last_seen_ms=max(device.last_seen_ms, obs.received_ms),
        platform=platform if isinstance(platform, str) else device.platform,
        info=info,
        identities=_device_identities(device, ctx, draft),
        att_status=att_status,
        att_ts_ms=att_ts,
        attribution=_attribution(device.attribution, obs.events, ctx, draft),
    )


def _device_identities(device: Device, ctx: ApplyContext, draft: _Draft) -> dict[str, str]:
    """The device's identities with the batch's; values the profile does not hold yet count
    against its identity cap (PRF-6)."""
    if not ctx.device_identities:
        return device.identities
    result = dict(device.identities)
    for id_type, value in ctx.device_identities.items():
        if value in draft.held_device_ids.get(id_type, ()):
            result[id_type] = value
        elif draft.identity_room > 0:
            result[id_type] = value
            draft.identity_room -= 1
            draft.held_device_ids.setdefault(id_type, set()).add(value)
        else:
            draft.note("identity_cap", f"device_info.{id_type}", "profile is at its identity cap")
    return result


def _att(device: Device, obs: Observation) -> tuple[str | None, int | None]:
    status = obs.device_info.get("att_authorization_status")
    if not isinstance(status, str):
        return device.att_status, device.att_ts_ms
    ts = obs.device_info.get("att_timestamp_unixtime_ms")
    if isinstance(ts, str) and ts.isdecimal():
        ts = int(ts)
    ts_ms = ts if isinstance(ts, int) and not isinstance(ts, bool) else obs.effective_ms
    if device.att_ts_ms is not None and ts_ms < device.att_ts_ms:
        return device.att_status, device.att_ts_ms
    return status, ts_ms


def _attribution(
    current: Attribution | None, events: tuple[EventFact, ...], ctx: ApplyContext, draft: _Draft
) -> Attribution | None:
    """Install attribution: the latest `attribution` custom event, or its deletion."""
    result = current
    for event in events:
        if event.custom_event_type != "attribution" or (event.name or "").lower() != "attribution":
            continue
        if result is not None and event.timestamp_ms < result.ts_ms:
            continue
        if event.attribution_delete:
            result = Attribution(ts_ms=event.timestamp_ms, deleted=True)
        else:
            result = Attribution(
                publisher=event.attribution_publisher,
                campaign=event.attribution_campaign,
                ts_ms=event.timestamp_ms,
            )
    if result != current:
        live = None if result is None or result.deleted else result
        draft.changes.append(
            Change(kind="attribution_changed", workspace_id=ctx.workspace_id, new=live)
        )
    return result


def _apply_opt_out(
    profile: Profile, events: tuple[EventFact, ...], draft: _Draft
) -> tuple[bool, int]:
    opted_out, ts = profile.is_opted_out, profile.opt_out_ts_ms
    for event in events:
        if event.is_opted_out is not None and event.timestamp_ms >= ts:
            opted_out, ts = event.is_opted_out, event.timestamp_ms
    if opted_out != profile.is_opted_out:
        draft.changes.append(Change(kind="opt_out_changed", new=opted_out))
    return opted_out, ts
