"""Calculated attribute values written into a workspace's user attributes (CA-2, PRF-4):
with the highest rank of the priority ladder, so they win over every other source and are
read wherever a user attribute is (Profile API, audience criteria, forwarded events)."""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from kindred.domain.calculated_values import next_change, value
from kindred.domain.profile import AttributeEntry, Profile, WorkspaceProfile
from kindred.domain.tenancy import SourceType, priority_of

__all__ = ["CALCULATED_SOURCE", "next_due", "refreshed", "values_written", "with_values"]

CALCULATED_SOURCE = str(SourceType.CALCULATED)
_PRIORITY = priority_of(SourceType.CALCULATED)


def with_values(
    workspace: WorkspaceProfile, now_ms: int, names: Collection[str] | None = None
) -> WorkspaceProfile:
    """The workspace with each state's value at `now_ms` as an attribute (only those of
    `names` when given: the others are known not to have changed); values that are none,
    and those of states no longer kept, removed."""
    return values_written(workspace, now_ms, names)[0]


def values_written(
    workspace: WorkspaceProfile, now_ms: int, names: Collection[str] | None = None
) -> tuple[WorkspaceProfile, list[str]]:
    """with_values, and the attributes it set or removed."""
    attributes = dict(workspace.attributes)
    written: list[str] = []
    if names is None:
        for name, entry in workspace.attributes.items():
            if entry.source == CALCULATED_SOURCE and name not in workspace.calculated:
                del attributes[name]
                written.append(name)
    for name in workspace.calculated if names is None else names:
        current = attributes.get(name)
        new = value(workspace.calculated[name], now_ms)
        if new is None:
            if current is not None and current.source == CALCULATED_SOURCE:
                del attributes[name]
                written.append(name)
        elif current is None or current.source != CALCULATED_SOURCE or current.value != new:
            attributes[name] = AttributeEntry(
                value=new, priority=_PRIORITY, source=CALCULATED_SOURCE, ts_ms=now_ms
            )
            written.append(name)
    if not written:
        return workspace, written
    return msgspec.structs.replace(workspace, attributes=attributes), written


def next_due(profile: Profile, now_ms: int) -> int | None:
    """The earliest instant time alone changes one of the profile's calculated values."""
    instants = [
        at
        for workspace in profile.workspaces.values()
        for state in workspace.calculated.values()
        # Only windows of the last N days move with time (checked here: it is most states).
        if state.spec.within_days is not None and (at := next_change(state, now_ms)) is not None
    ]
    return min(instants, default=None)


def refreshed(profile: Profile, now_ms: int) -> Profile:
    """Every workspace's calculated values as of `now_ms`."""
    workspaces = {
        i: with_values(w, now_ms) if w.calculated else w for i, w in profile.workspaces.items()
    }
    if all(workspaces[i] is w for i, w in profile.workspaces.items()):
        return profile
    return msgspec.structs.replace(profile, workspaces=workspaces)
