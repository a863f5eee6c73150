"""Devices of a profile's workspace: keyed by application stamp, with their identities,
info, ATT status and install attribution (PRF-1)."""

from __future__ import annotations

import msgspec

from kindred.domain.apply_context import ApplyContext, Draft
from kindred.domain.changes import Change
from kindred.domain.observation import EventFact, Observation
from kindred.domain.profile import Attribution, Device

__all__ = ["apply_device", "device_key"]

replace = msgspec.structs.replace


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


def apply_device(
    devices: dict[str, Device], obs: Observation, ctx: ApplyContext, draft: Draft
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


def _updated_device(device: Device, obs: Observation, ctx: ApplyContext, draft: Draft) -> Device:
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


def _device_identities(device: Device, ctx: ApplyContext, draft: Draft) -> dict[str, str]:
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
    current: Attribution | None, events: tuple[EventFact, ...], ctx: ApplyContext, draft: Draft
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
