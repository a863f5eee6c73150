"""What an output receives (ENR-1, ENR-2, ENR-4; reference §1.10 and §7), built at
forwarding time from the stored profile. Pure: the batch, the profile and the instant are
passed in.

An event output gets the incoming batch with the profile's view of the user in place of the
batch's own: every user attribute of the workspace, every user identity (as the array that
raw-JSON outputs receive), consent state and the MPID; device info stays the batch's own.
An audience output gets one message per identity of a type it accepts.
"""

from __future__ import annotations

from typing import Any

from kindred.domain.forwarding import AudienceConnection, EventConnection, keep
from kindred.domain.observation import AttrValue, ConsentFact
from kindred.domain.profile import Profile, WorkspaceProfile

__all__ = [
    "CHANNELS",
    "audience_messages",
    "consented",
    "enrich_batch",
    "membership_batch",
]

# Source type of the input -> `source_info.channel` of outgoing batches (reference §1.10).
CHANNELS = {
    "web": "javascript",
    "ios": "native",
    "android": "native",
    "server": "server_to_server",
    "custom_feed": "partner",
    "partner_feed": "partner",
    "csv_import": "partner",
    "warehouse_sync": "partner",
}

# Batch fields the profile answers for: the batch's own values are replaced.
_PROFILE_FIELDS = ("user_attributes", "deleted_user_attributes", "user_identities")


def consented(profile: Profile, workspace_id: int, purpose: str | None) -> bool:
    """The consent gate of a connection (ENR-2): no purpose lets everyone through."""
    if purpose is None:
        return True
    workspace = profile.workspaces.get(workspace_id)
    fact = workspace.gdpr.get(purpose.lower()) if workspace else None
    return fact is not None and fact.consented


def enrich_batch(
    batch: dict[str, Any],
    profile: Profile | None,
    *,
    workspace_id: int,
    connection: EventConnection,
    received_ms: int,
    client_ip: str | None,
    channel: str,
    key: str,
    historical: bool = False,
) -> dict[str, Any] | None:
    """The message for one event connection, or None when nothing of it may go there
    (no events left after filtering, or the user did not consent). Without a profile (a
    read-only input's batch, never applied) the batch's own user data goes, filtered, and
    a consent gate lets nothing through."""
    if profile is None and connection.consent_purpose is not None:
        return None
    if profile is not None and not consented(profile, workspace_id, connection.consent_purpose):
        return None
    events = [e for e in (batch.get("events") or []) if _event_kept(e, connection)]
    if not events:
        return None
    out = dict(batch)
    out["events"] = [_filtered_event(e, connection) for e in events]
    out["idempotency_key"] = key
    out["schema_version"] = 2
    out["timestamp_unixtime_ms"] = received_ms
    out["source_info"] = {"channel": channel, "is_historical": historical}
    if profile is None:
        attributes = batch.get("user_attributes")
        if isinstance(attributes, dict):
            out["user_attributes"] = _kept_keys(attributes, connection)
    else:
        _from_profile(out, profile, profile.workspaces.get(workspace_id), connection)
    ip = batch.get("ip") or client_ip or (profile.ip if profile else None)
    out.pop("ip", None)
    if connection.enrich_ip and ip:
        out["ip"] = ip
    return out


def _from_profile(
    out: dict[str, Any],
    profile: Profile,
    workspace: WorkspaceProfile | None,
    connection: EventConnection,
) -> None:
    """The profile's view of the user in place of the batch's (ENR-1)."""
    for name in _PROFILE_FIELDS:
        out.pop(name, None)
    out["mpid"] = profile.mpid
    live = workspace.live_attributes() if workspace else {}
    out["user_attributes"] = _kept_keys(live, connection)
    out["user_identities"] = [
        {"identity_type": t, "identity": e.value, "timestamp_unixtime_ms": e.first_seen_ms}
        for t, e in sorted(profile.user_identities.items())
    ]
    out["consent_state"] = _consent(workspace)


def membership_batch(
    audience_id: int, audience_name: str, entered: bool, at_ms: int
) -> dict[str, Any]:
    """A membership change as an ordinary batch of one custom event (BEY-5)."""
    return {
        "environment": "production",
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "audience_entered" if entered else "audience_exited",
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": at_ms,
                    "custom_attributes": {
                        "audience_id": str(audience_id),
                        "audience_name": audience_name,
                    },
                },
            }
        ],
    }


def audience_messages(
    profile: Profile,
    connection: AudienceConnection,
    *,
    audience_id: int,
    audience_name: str,
    entered: bool,
    at_ms: int,
    key: str,
) -> list[dict[str, Any]]:
    """One message per identity of the profile of a type the output accepts (ENR-4), with
    only the shared attributes (none unless the connection names some)."""
    identities = _identities(profile, connection.identity_types)
    shared = _shared(profile, connection.shared_attributes)
    messages = []
    for number, (id_type, value) in enumerate(identities):
        message: dict[str, Any] = {
            "type": "audience_membership_change",
            "idempotency_key": f"{key}/{number}",
            "audience_id": audience_id,
            "audience_name": audience_name,
            "action": "add" if entered else "delete",
            "mpid": str(profile.mpid),
            "timestamp_ms": at_ms,
            "identity_type": id_type,
            "identity": value,
        }
        if shared:
            message["user_attributes"] = shared
        messages.append(message)
    return messages


def all_identities(profile: Profile) -> list[tuple[str, str]]:
    """Every (type, value) identity the profile holds, user identities then devices'."""
    found = [(t, e.value) for t, e in sorted(profile.user_identities.items())]
    for id_type, values in sorted(profile.device_identities().items()):
        found.extend((id_type, v) for v in sorted(values))
    return found


def removal_messages(
    mpid: int,
    identities: list[tuple[str, str]],
    connection: AudienceConnection,
    *,
    audience_id: int,
    audience_name: str,
    at_ms: int,
    key: str,
) -> list[dict[str, Any]]:
    """The removals of an erased profile from an audience, from the identities it held
    (nothing else of it is left): one per identity of a type the output accepts."""
    accepted = connection.identity_types
    chosen = [(t, v) for wanted in accepted for t, v in identities if t == wanted]
    return [
        {
            "type": "audience_membership_change",
            "idempotency_key": f"{key}/{number}",
            "audience_id": audience_id,
            "audience_name": audience_name,
            "action": "delete",
            "mpid": str(mpid),
            "timestamp_ms": at_ms,
            "identity_type": id_type,
            "identity": value,
        }
        for number, (id_type, value) in enumerate(chosen)
    ]


def _identities(profile: Profile, accepted: list[str]) -> list[tuple[str, str]]:
    devices = profile.device_identities()
    found: list[tuple[str, str]] = []
    for id_type in accepted:
        entry = profile.user_identities.get(id_type)
        if entry is not None:
            found.append((id_type, entry.value))
        found.extend((id_type, v) for v in sorted(devices.get(id_type, ())))
    return found


def _shared(profile: Profile, keys: list[str]) -> dict[str, AttrValue]:
    if not keys:
        return {}
    shared: dict[str, AttrValue] = {}
    for workspace in profile.workspaces.values():
        live = workspace.live_attributes()
        shared.update({k: live[k] for k in keys if k in live})
    return shared


def _event_name(event: dict[str, Any]) -> str | None:
    data = event.get("data") or {}
    name = data.get("event_name") or data.get("screen_name")
    return name if isinstance(name, str) else None


def _event_kept(event: Any, connection: EventConnection) -> bool:
    if not isinstance(event, dict):
        return False
    event_type = str(event.get("event_type", ""))
    if not keep(event_type, connection.event_types_allow, connection.event_types_block):
        return False
    name = _event_name(event)
    if name is None:
        return connection.event_names_allow is None
    return keep(name, connection.event_names_allow, connection.event_names_block)


def _filtered_event(event: dict[str, Any], connection: EventConnection) -> dict[str, Any]:
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("custom_attributes"), dict):
        return event
    allow, block = connection.attributes_allow, connection.attributes_block
    if allow is None and not block:
        return event
    kept = {k: v for k, v in data["custom_attributes"].items() if keep(k, allow, block)}
    return {**event, "data": {**data, "custom_attributes": kept}}


def _kept_keys(attributes: dict[str, Any], connection: EventConnection) -> dict[str, Any]:
    allow, block = connection.attributes_allow, connection.attributes_block
    return {k: v for k, v in attributes.items() if keep(k, allow, block)}


def _consent(workspace: WorkspaceProfile | None) -> dict[str, Any]:
    if workspace is None:
        return {}
    state: dict[str, Any] = {}
    if workspace.gdpr:
        state["gdpr"] = {p: _fact(f) for p, f in sorted(workspace.gdpr.items())}
    if workspace.ccpa is not None:
        state["ccpa"] = {"data_sale_opt_out": _fact(workspace.ccpa)}
    return state


def _fact(fact: ConsentFact) -> dict[str, Any]:
    return {
        "consented": fact.consented,
        "document": fact.document,
        "timestamp_unixtime_ms": fact.timestamp_ms,
        "location": fact.location,
        "hardware_id": fact.hardware_id,
    }
