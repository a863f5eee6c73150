"""A data subject's data for access and portability (RET-3): every profile of the subject
(each workspace's attributes, calculated values as of now, consent, devices; identities;
audience memberships), the batches of the event log attributed to them, and the merge
ledger's entries they took part in. Portability: one JSON document; access: the same as
readable text."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from kindred.domain.calculated_entries import refreshed
from kindred.domain.profile import Profile, WorkspaceProfile
from kindred.ports import EventLogReader, LogEntry, MergeEntry
from kindred.services.privacy.subjects import SubjectReader
from kindred.wire.dsr import iso_time

__all__ = ["ExportReader", "SubjectExport", "readable", "subject_document"]

_EVENTS_PER_PROFILE = 100_000
_MERGES_PER_PROFILE = 10_000
_ANY_JSON = msgspec.json.Decoder()


class ExportReader(SubjectReader, EventLogReader, Protocol):
    """The committed profiles, event log and merge ledger."""


class SubjectExport(msgspec.Struct, kw_only=True):
    profiles: list[Profile]
    events: list[LogEntry]
    merges: list[MergeEntry]

    @property
    def matched(self) -> bool:
        return bool(self.profiles or self.events or self.merges)


def gather(store: ExportReader, mpids: list[int], now_ms: int) -> SubjectExport:
    """What is kept of the profiles with these MPIDs (the live ones and their stubs)."""
    profiles = [refreshed(p, now_ms) for m in mpids if (p := store.get_profile(m)) is not None]
    events = sorted(
        (e for m in mpids for e in store.log_for_profile(m, _EVENTS_PER_PROFILE)),
        key=lambda e: e.id or 0,
    )
    merges = {e.id: e for m in mpids for e in store.list_merges(m, _MERGES_PER_PROFILE) if e.id}
    return SubjectExport(
        profiles=[p for p in profiles if p.merged_into is None],
        events=events,
        merges=[merges[k] for k in sorted(merges)],
    )


def subject_document(export: SubjectExport, *, request_id: str, now_ms: int) -> dict[str, Any]:
    """The portable document (JSON-ready): times in ISO 8601, MPIDs as strings."""
    return {
        "subject_request_id": request_id,
        "generated_time": iso_time(now_ms),
        "profiles": [_profile(p) for p in export.profiles],
        "events": [_event(e) for e in export.events],
        "merges": [_merge(m) for m in export.merges],
    }


def _profile(profile: Profile) -> dict[str, Any]:
    return {
        "mpid": str(profile.mpid),
        "created_time": iso_time(profile.created_ms),
        "last_updated_time": iso_time(profile.last_stored_ms),
        "user_identities": {t: e.value for t, e in sorted(profile.user_identities.items())},
        "is_opted_out": profile.is_opted_out,
        "ip": profile.ip,
        "workspaces": {str(i): _workspace(w) for i, w in sorted(profile.workspaces.items())},
        "audience_memberships": [
            {"audience_id": m.audience_id, "name": m.name, "since": iso_time(m.since_ms)}
            for _, m in sorted(profile.memberships.items())
        ],
    }


def _workspace(ws: WorkspaceProfile) -> dict[str, Any]:
    return {
        "first_seen": iso_time(ws.first_seen_ms),
        "last_seen": iso_time(ws.last_seen_ms),
        "attributes": dict(sorted(ws.live_attributes().items())),
        "calculated_attributes": sorted(ws.calculated),
        "consent": {
            "gdpr": {k: msgspec.to_builtins(v) for k, v in sorted(ws.gdpr.items())},
            "ccpa": None if ws.ccpa is None else msgspec.to_builtins(ws.ccpa),
        },
        "devices": [
            {
                "platform": d.platform,
                "identities": dict(sorted(d.identities.items())),
                "info": d.info,
                "first_seen": iso_time(d.first_seen_ms),
                "last_seen": iso_time(d.last_seen_ms),
            }
            for _, d in sorted(ws.devices.items())
        ],
        "location": None if ws.location is None else msgspec.to_builtins(ws.location),
    }


def _event(entry: LogEntry) -> dict[str, Any]:
    try:
        batch: Any = _ANY_JSON.decode(entry.body)
    except msgspec.DecodeError:
        batch = entry.body.decode("utf-8", "replace")
    return {
        "received_time": iso_time(entry.received_ms),
        "input": entry.input,
        "workspace_id": entry.workspace_id,
        "status": entry.status,
        "mpid": None if entry.mpid is None else str(entry.mpid),
        "batch": batch,
    }


def _merge(entry: MergeEntry) -> dict[str, Any]:
    return {
        "survivor": str(entry.survivor),
        "merged": str(entry.merged),
        "rule": entry.rule,
        "merged_time": iso_time(entry.merged_ms),
        "identity_type": entry.identity_type,
        "identity_value": entry.identity_value,
        "unmerged_time": None if entry.unmerged_ms is None else iso_time(entry.unmerged_ms),
    }


def readable(document: dict[str, Any]) -> str:
    """The document as text a person reads (the access request's results)."""
    lines = [
        "Your data",
        f"Request {document['subject_request_id']}, made {document['generated_time']}",
        "",
    ]
    for profile in document["profiles"]:
        lines.append(f"Profile {profile['mpid']} (since {profile['created_time']})")
        lines.extend(f"  {t}: {v}" for t, v in profile["user_identities"].items())
        for workspace_id, ws in profile["workspaces"].items():
            lines.append(f"  Workspace {workspace_id}")
            lines.extend(f"    {k}: {_text(v)}" for k, v in ws["attributes"].items())
            for purpose, consent in ws["consent"]["gdpr"].items():
                lines.append(f"    consent to {purpose}: {consent.get('consented')}")
            if ws["consent"]["ccpa"] is not None:
                lines.append(f"    CCPA consent: {ws['consent']['ccpa'].get('consented')}")
            for device in ws["devices"]:
                names = ", ".join(f"{t} {v}" for t, v in device["identities"].items())
                lines.append(f"    device ({device['platform'] or 'unknown'}): {names}")
        for membership in profile["audience_memberships"]:
            lines.append(f"  in audience {membership['name']} since {membership['since']}")
        lines.append("")
    lines.append(f"Batches of events received: {len(document['events'])}")
    for event in document["events"]:
        names = _event_names(event["batch"])
        lines.append(f"  {event['received_time']} from {event['input']}: {names}")
    lines.append("")
    lines.append(f"Profiles merged: {len(document['merges'])}")
    for merge in document["merges"]:
        into = f"{merge['merged']} into {merge['survivor']}"
        lines.append(f"  {merge['merged_time']}: {into} ({merge['rule']})")
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _event_names(batch: Any) -> str:
    events = batch.get("events") if isinstance(batch, dict) else None
    if not isinstance(events, list) or not events:
        return "(user data only)"
    names = []
    for event in events:
        data = event.get("data") if isinstance(event, dict) else None
        name = (data or {}).get("event_name") if isinstance(data, dict) else None
        names.append(str(name or (event.get("event_type") if isinstance(event, dict) else "?")))
    return ", ".join(names)
