"""Shadow edits of an active audience (BEY-4), the pure part: which shadow is pending, the
definition it proposes as it is evaluated and as it is promoted, and its preview tallied.

The services (`services.audiences.shadows`) fold the event log into the proposed
definition's histories, decide every profile, and swap the definitions.
"""

from __future__ import annotations

from bisect import insort

import msgspec

from kindred.audiences.definition import AudienceDef, ShadowEdit, ShadowPreview

__all__ = [
    "SAMPLE",
    "pending_shadow",
    "promoted",
    "proposed",
    "shadow_tag",
    "tally",
]

# How many MPIDs of those entering and of those leaving a preview keeps.
SAMPLE = 20


def pending_shadow(audience: AudienceDef) -> ShadowEdit | None:
    """The audience's shadow while it is computed or waits to be promoted: None when there
    is none, when it is being promoted (then the audience's definition is already the new
    one), or when it is void (the audience was changed otherwise since it was started:
    edited, deactivated, deleted)."""
    shadow = audience.shadow
    if (
        shadow is None
        or shadow.phase == "promoting"
        or audience.status != "active"
        or audience.kind != "real_time"
        or shadow.base_updated_ms != audience.updated_ms
    ):
        return None
    return shadow


def shadow_tag(live: AudienceDef, now_ms: int) -> int:
    """The tag of a new shadow's histories: never the live definition's own (its events
    would be counted twice), otherwise the instant it starts."""
    live_tag = live.updated_ms if live.history_tag_ms is None else live.history_tag_ms
    return max(now_ms, live_tag + 1)


def proposed(shadow: ShadowEdit) -> AudienceDef:
    """The proposed definition as it is evaluated in shadow: active, histories complete
    (the fold is the shadow's own phase, not a warming of the audience)."""
    return msgspec.structs.replace(shadow.definition, status="active", history_from=None)


def promoted(live: AudienceDef, shadow: ShadowEdit, now_ms: int, by: str) -> AudienceDef:
    """The audience with the shadow's definition in force from `now_ms`: its histories the
    shadow's (same tag, same log cut), nothing left to backfill, the shadow marked as being
    promoted until its memberships are switched."""
    new = shadow.definition
    return msgspec.structs.replace(
        live,
        name=new.name,
        external_name=new.external_name,
        workspaces=new.workspaces,
        inputs=new.inputs,
        criteria=new.criteria,
        tags=new.tags,
        lookback_days=new.lookback_days,
        updated_ms=now_ms,
        updated_by=by,
        history_tag_ms=new.history_tag_ms,
        history_to=new.history_to,
        history_from=None,
        backfill_scope=None,
        backfill_from=None,
        shadow=msgspec.structs.replace(shadow, phase="promoting", base_updated_ms=now_ms),
    )


def tally(preview: ShadowPreview, mpid: int, entering: bool, sample: int) -> None:
    """Count one profile whose membership the new definition changes, keeping the `sample`
    smallest MPIDs of each side."""
    if entering:
        preview.entering += 1
        _keep(preview.entering_sample, mpid, sample)
    else:
        preview.leaving += 1
        _keep(preview.leaving_sample, mpid, sample)


def _keep(kept: list[int], mpid: int, sample: int) -> None:
    if len(kept) < sample:
        insort(kept, mpid)
    elif sample and mpid < kept[-1]:
        kept.pop()
        insort(kept, mpid)
